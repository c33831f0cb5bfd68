"""agemem-gym: Gymnasium environments and trainers for LLM agents that manage their memory.

Importing the package registers every ``AgeMem/*`` environment id::

    import gymnasium as gym
    import agemem_gym  # noqa: F401  (or gym.make("agemem_gym:AgeMem/HotpotQA-v0"))
    env = gym.make("AgeMem/HotpotQA-v0")
"""

from agemem_gym.registration import env_ids, register_envs
from agemem_gym.version import __version__

register_envs()

__all__ = ["__version__", "env_ids", "register_envs"]
