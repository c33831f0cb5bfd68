"""Launching the GRPO trainer on several processes and machines: the bundled ``accelerate`` configs.

The configs ship inside the package (``accelerate_configs/*.yaml``), so after ``pip install``:

    CFG=$(agemem train --print-accelerate-config ddp)
    accelerate launch --config_file "$CFG" -m agemem_gym.adapters.grpo --config paper

``ddp`` runs one replica per process (gradients summed once per optimizer step); ``fsdp``
shards the parameters with FSDP2 (:mod:`~agemem_gym.adapters.grpo.sharding`: rollouts and
scoring on gathered weights, update micro-batches padded to the same count on every rank).
``zero2`` runs DeepSpeed ZeRO stage 2 (:mod:`~agemem_gym.adapters.grpo.zero`: the engine owns
backward and the step; the same lockstep micro-batches as FSDP2), ``zero3`` stage 3 (weights
partitioned too, gathered whole for each rollout, scoring phase and update micro-batch).
Megatron-LM is refused (:func:`check_distributed_type`).
:func:`default_threads` sizes torch's CPU thread pool when several processes share the cores.
This module imports neither torch nor accelerate. See ``docs/scale-out-training.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from agemem_gym.error import InvalidConfig, unknown_name

__all__ = [
    "ACCELERATE_CONFIGS",
    "REFUSED_DISTRIBUTED_TYPES",
    "SHARDINGS",
    "accelerate_config_path",
    "check_distributed_type",
    "default_threads",
    "resolve_sharding",
]

ACCELERATE_CONFIGS = ("ddp", "fsdp", "zero2", "zero3")
"""The names of the bundled ``accelerate`` config files."""

REFUSED_DISTRIBUTED_TYPES = frozenset({"MEGATRON_LM"})
"""``accelerate``'s ``DistributedType`` names the trainer refuses (``DEEPSPEED`` runs: ZeRO stages 2 and 3)."""

SHARDINGS = ("auto", "replicate", "fsdp2", "zero2", "zero3")
"""The values of :attr:`~agemem_gym.adapters.grpo.config.GRPOConfig.sharding`."""


def accelerate_config_path(name: str) -> Path:
    """The path of a bundled ``accelerate`` config file.

    Args:
        name: One of :data:`ACCELERATE_CONFIGS` (``"ddp"``, ``"fsdp"``, ``"zero2"``, ``"zero3"``).

    Returns:
        The YAML file, for ``accelerate launch --config_file``.

    Raises:
        UnknownName: ``name`` is not a bundled config.

    >>> accelerate_config_path("ddp").name
    'ddp.yaml'
    """
    if name not in ACCELERATE_CONFIGS:
        raise unknown_name("accelerate config", name, ACCELERATE_CONFIGS)
    path = Path(str(resources.files("agemem_gym.adapters.grpo") / "accelerate_configs" / f"{name}.yaml"))
    if not path.is_file():  # pragma: no cover - a broken install
        raise FileNotFoundError(f"{path} is missing from the installed package; reinstall agemem-gym")
    return path


def _type_name(distributed_type: object) -> str:
    """``"FSDP"`` from ``DistributedType.FSDP``, ``"DistributedType.FSDP"`` or ``"FSDP"``."""
    return str(getattr(distributed_type, "value", distributed_type)).rsplit(".", 1)[-1]


def check_distributed_type(distributed_type: object) -> None:
    """Refuse a launch whose ``accelerate`` distributed type the trainer cannot honour.

    Args:
        distributed_type: ``accelerator.distributed_type`` (a ``DistributedType`` or its name).

    Raises:
        InvalidConfig: Megatron-LM: the trainer would otherwise run as plain replicas and
            silently shard nothing. ``FSDP`` and ``DEEPSPEED`` pass (:func:`resolve_sharding`).
    """
    name = _type_name(distributed_type)
    if name not in REFUSED_DISTRIBUTED_TYPES:
        return
    raise InvalidConfig(
        f"the GRPO trainer does not run under accelerate's {name}: launch with --config_file "
        f"{accelerate_config_path('fsdp')} (FSDP2), {accelerate_config_path('zero2')} (DeepSpeed ZeRO-2) or "
        f"{accelerate_config_path('ddp')} "
        "(data parallel) instead"
    )


def resolve_sharding(
    requested: str, distributed_type: object, fsdp_version: int | None = None, zero_stage: int | None = None
) -> str:
    """The parameter layout a run uses: ``"replicate"``, ``"fsdp2"``, ``"zero2"`` or ``"zero3"``.

    Args:
        requested: :attr:`GRPOConfig.sharding <agemem_gym.adapters.grpo.config.GRPOConfig.sharding>`:
            ``"auto"`` follows the launch (FSDP2 under accelerate's ``FSDP``, ZeRO-2 or ZeRO-3 under
            its ``DEEPSPEED`` with ``zero_stage`` 2 or 3, replicas otherwise); the others force one
            (``"fsdp2"`` is how CPU runs shard: accelerate 1.15 turns an FSDP config into plain
            ``MULTI_CPU`` on CPU; ``"zero2"`` and ``"zero3"`` also run under ``torchrun``).
        distributed_type: ``accelerator.distributed_type`` (a ``DistributedType`` or its name).
        fsdp_version: ``accelerator.state.fsdp_plugin.fsdp_version`` under ``FSDP``.
        zero_stage: ``accelerator.state.deepspeed_plugin.zero_stage`` under ``DEEPSPEED``.

    Returns:
        One of ``"replicate"``, ``"fsdp2"``, ``"zero2"``, ``"zero3"``.

    Raises:
        InvalidConfig: A refused engine (:func:`check_distributed_type`), FSDP1, ZeRO stage 0 or
            1, or a ``requested`` layout that contradicts the launch.

    >>> resolve_sharding("auto", "FSDP", 2), resolve_sharding("auto", "MULTI_CPU")
    ('fsdp2', 'replicate')
    >>> resolve_sharding("auto", "DEEPSPEED", None, 2), resolve_sharding("auto", "DEEPSPEED", None, 3)
    ('zero2', 'zero3')
    """
    if requested not in SHARDINGS:
        raise InvalidConfig(f"sharding must be one of {', '.join(SHARDINGS)}, got {requested!r}")
    check_distributed_type(distributed_type)
    name = _type_name(distributed_type)
    if name == "DEEPSPEED":
        return _deepspeed_layout(requested, zero_stage)
    if name != "FSDP":
        return "replicate" if requested == "auto" else requested
    if fsdp_version not in (None, 2):
        raise InvalidConfig(
            f"the GRPO trainer shards with FSDP2 only, the launch asks for FSDP{fsdp_version}: "
            f"set fsdp_version: 2 (as {accelerate_config_path('fsdp')} does)"
        )
    if requested != "auto" and requested != "fsdp2":
        raise InvalidConfig(f"sharding = {requested!r} contradicts the FSDP launch: use 'auto' or 'fsdp2'")
    return "fsdp2"


def _deepspeed_layout(requested: str, zero_stage: int | None) -> str:
    """``"zero2"`` or ``"zero3"`` under accelerate's DeepSpeed launch of that ZeRO stage; stages 0 and 1 are refused."""
    if zero_stage not in (2, 3):
        raise InvalidConfig(
            f"the GRPO trainer runs DeepSpeed ZeRO stages 2 and 3 only, the launch asks for stage {zero_stage}: "
            f"use {accelerate_config_path('zero2')} or {accelerate_config_path('zero3')}"
        )
    layout = f"zero{zero_stage}"
    if requested not in ("auto", layout):
        raise InvalidConfig(
            f"sharding = {requested!r} contradicts the DeepSpeed ZeRO-{zero_stage} launch: use 'auto' or {layout!r}"
        )
    return layout


def default_threads(
    cores: int | None = None, environ: Mapping[str, str] | None = None, load: float | None = None
) -> int:
    """CPU threads for torch that do not oversubscribe cores shared with other processes.

    ``cores ÷ (LOCAL_WORLD_SIZE × AGEMEM_JOBS)``, rounded down: the processes of this launch on
    this machine (``torchrun`` and ``accelerate launch`` set ``LOCAL_WORLD_SIZE``) and the number
    of jobs the user says share the machine (``AGEMEM_JOBS``, default 1); then at most the cores
    the 1-minute load average leaves free at start-up; at least 1. OpenMP threads that outnumber
    the free cores spin and wait on each other: on a 2-core machine shared by four jobs, two
    threads per job ran 4× slower than one.

    Args:
        cores: The cores this process may run on (default: its CPU affinity).
        environ: The environment to read (default: ``os.environ``).
        load: The 1-minute load average (default: ``os.getloadavg()``, none where unsupported).

    Returns:
        The thread count, >= 1.
    """
    env = os.environ if environ is None else environ
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if load is None and hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
    sharers = max(1, int(env.get("LOCAL_WORLD_SIZE", "1") or 1)) * max(1, int(env.get("AGEMEM_JOBS", "1") or 1))
    threads = cores // sharers
    if load is not None:
        threads = min(threads, cores - int(round(load)))
    return max(1, threads)
