"""Step-wise GRPO for memory-managing LLM agents (needs the ``[train]`` extra).

>>> from agemem_gym.adapters.grpo import load_config
>>> load_config("paper").group_size
8
"""

from typing import Any

from agemem_gym.adapters.grpo.config import PRESETS, GRPOConfig, load_config
from agemem_gym.adapters.grpo.launch import ACCELERATE_CONFIGS, accelerate_config_path

__all__ = ["ACCELERATE_CONFIGS", "GRPOConfig", "PRESETS", "accelerate_config_path", "load_config", "train"]


def __getattr__(name: str) -> Any:  # torch is imported only when training starts
    if name == "train":
        from agemem_gym.adapters.grpo.trainer import train

        return train
    raise AttributeError(name)
