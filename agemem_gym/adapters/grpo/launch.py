"""Launching the GRPO trainer on several processes and machines: the bundled ``accelerate`` configs.

The configs ship inside the package (``accelerate_configs/*.yaml``), so after ``pip install``:

    CFG=$(agemem train --print-accelerate-config ddp)
    accelerate launch --config_file "$CFG" -m agemem_gym.adapters.grpo --config paper

``ddp`` is what the trainer runs on: one replica per process, gradients summed once per
optimizer step. ``fsdp``, ``zero2`` and ``zero3`` are validated against accelerate's launcher
but refused by the trainer (:func:`check_distributed_type`): its ranks generate their own
episodes, so they run different numbers of forward and backward passes, and sharded
parameters or engine-owned gradients need every rank in every pass. This module imports
neither torch nor accelerate. See ``docs/scale-out-training.md``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from agemem_gym.error import InvalidConfig, unknown_name

__all__ = ["ACCELERATE_CONFIGS", "SHARDED_DISTRIBUTED_TYPES", "accelerate_config_path", "check_distributed_type"]

ACCELERATE_CONFIGS = ("ddp", "fsdp", "zero2", "zero3")
"""The names of the bundled ``accelerate`` config files."""

SHARDED_DISTRIBUTED_TYPES = frozenset({"FSDP", "DEEPSPEED", "MEGATRON_LM"})
"""``accelerate``'s ``DistributedType`` names the trainer refuses: engines that shard or own the model."""


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


def check_distributed_type(distributed_type: object) -> None:
    """Refuse a launch whose ``accelerate`` distributed type the trainer cannot honour.

    Args:
        distributed_type: ``accelerator.distributed_type`` (a ``DistributedType`` or its name).

    Raises:
        InvalidConfig: FSDP, DeepSpeed, Megatron-LM or another sharding engine: the trainer
            would otherwise run as plain replicas and silently shard nothing.
    """
    name = str(getattr(distributed_type, "value", distributed_type)).rsplit(".", 1)[-1]
    if name not in SHARDED_DISTRIBUTED_TYPES:
        return
    raise InvalidConfig(
        f"the GRPO trainer does not run under accelerate's {name} yet: each process generates its own "
        "episodes, so processes run different numbers of forward and backward passes, which sharded "
        "parameters (FSDP, ZeRO-3) and engine-owned gradients (ZeRO-2) cannot follow; launch with "
        f"--config_file {accelerate_config_path('ddp')} (data parallel) instead"
    )
