"""Step-wise GRPO for memory-managing LLM agents (needs the ``[train]`` extra).

>>> from agemem_gym.adapters.grpo import load_config
>>> load_config("paper").group_size
8
"""

from typing import Any

from agemem_gym.adapters.grpo.config import PRESETS, GRPOConfig, load_config

__all__ = ["GRPOConfig", "PRESETS", "load_config", "train"]


def __getattr__(name: str) -> Any:  # torch is imported only when training starts
    if name == "train":
        from agemem_gym.adapters.grpo.trainer import train

        return train
    raise AttributeError(name)
