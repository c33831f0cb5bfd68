"""Launching the GRPO trainer on several processes and machines: the bundled ``accelerate`` configs.

The configs ship inside the package (``accelerate_configs/*.yaml``), so after ``pip install``:

    CFG=$(agemem train --print-accelerate-config ddp)
    accelerate launch --config_file "$CFG" -m agemem_gym.adapters.grpo --config paper

``ddp`` runs one replica per process (gradients summed once per optimizer step); ``fsdp``
shards the parameters with FSDP2 (:mod:`~agemem_gym.adapters.grpo.sharding`: rollouts and
scoring on gathered weights, update micro-batches padded to the same count on every rank).
``zero2`` and ``zero3`` are validated against accelerate's launcher but refused by the trainer
(:func:`check_distributed_type`): DeepSpeed's engine owns backward and the optimizer step.
This module imports neither torch nor accelerate. See ``docs/scale-out-training.md``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from agemem_gym.error import InvalidConfig, unknown_name

__all__ = [
    "ACCELERATE_CONFIGS",
    "REFUSED_DISTRIBUTED_TYPES",
    "SHARDINGS",
    "accelerate_config_path",
    "check_distributed_type",
    "resolve_sharding",
]

ACCELERATE_CONFIGS = ("ddp", "fsdp", "zero2", "zero3")
"""The names of the bundled ``accelerate`` config files."""

REFUSED_DISTRIBUTED_TYPES = frozenset({"DEEPSPEED", "MEGATRON_LM"})
"""``accelerate``'s ``DistributedType`` names the trainer refuses: engines that own backward and the step."""

SHARDINGS = ("auto", "replicate", "fsdp2")
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
        InvalidConfig: DeepSpeed or Megatron-LM: the trainer would otherwise run as plain
            replicas and silently shard nothing. ``FSDP`` passes (:func:`resolve_sharding`).
    """
    name = _type_name(distributed_type)
    if name not in REFUSED_DISTRIBUTED_TYPES:
        return
    raise InvalidConfig(
        f"the GRPO trainer does not run under accelerate's {name} yet: its engine owns backward and the "
        "optimizer step, while the trainer pads each rank's micro-batches to a common count itself; launch "
        f"with --config_file {accelerate_config_path('fsdp')} (FSDP2: sharded parameters) or "
        f"{accelerate_config_path('ddp')} (data parallel) instead"
    )


def resolve_sharding(requested: str, distributed_type: object, fsdp_version: int | None = None) -> str:
    """The parameter layout a run uses: ``"replicate"`` or ``"fsdp2"``.

    Args:
        requested: :attr:`GRPOConfig.sharding <agemem_gym.adapters.grpo.config.GRPOConfig.sharding>`:
            ``"auto"`` follows the launch (FSDP2 under accelerate's ``FSDP``, replicas otherwise),
            ``"replicate"`` or ``"fsdp2"`` force one (``"fsdp2"`` is how CPU runs shard: accelerate
            1.15 turns an FSDP config into plain ``MULTI_CPU`` on CPU).
        distributed_type: ``accelerator.distributed_type`` (a ``DistributedType`` or its name).
        fsdp_version: ``accelerator.state.fsdp_plugin.fsdp_version`` under ``FSDP``.

    Returns:
        ``"fsdp2"`` or ``"replicate"``.

    Raises:
        InvalidConfig: A refused engine (:func:`check_distributed_type`), FSDP1, or
            ``"replicate"`` asked for under an FSDP launch.

    >>> resolve_sharding("auto", "FSDP", 2), resolve_sharding("auto", "MULTI_CPU")
    ('fsdp2', 'replicate')
    """
    if requested not in SHARDINGS:
        raise InvalidConfig(f"sharding must be one of {', '.join(SHARDINGS)}, got {requested!r}")
    check_distributed_type(distributed_type)
    if _type_name(distributed_type) != "FSDP":
        return "replicate" if requested == "auto" else requested
    if fsdp_version not in (None, 2):
        raise InvalidConfig(
            f"the GRPO trainer shards with FSDP2 only, the launch asks for FSDP{fsdp_version}: "
            f"set fsdp_version: 2 (as {accelerate_config_path('fsdp')} does)"
        )
    if requested == "replicate":
        raise InvalidConfig("sharding = 'replicate' contradicts the FSDP launch: use 'auto' or 'fsdp2'")
    return "fsdp2"
