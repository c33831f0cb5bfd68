"""``AgeMem/SciWorld-v0``: ScienceWorld experiments (a JVM simulator) with memory tools."""

from agemem_gym.envs.sciworld.env import SciWorldEnv
from agemem_gym.envs.sciworld.panel import DEFAULT_TASKS

__all__ = ["DEFAULT_TASKS", "SciWorldEnv"]
