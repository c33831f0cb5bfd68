"""``AgeMem/ALFWorld-v0``: ALFWorld household tasks through TextWorld's PDDL backend, with memory tools."""

from agemem_gym.envs.alfworld.env import ALFWorldEnv
from agemem_gym.envs.alfworld.games import TASK_TYPES

__all__ = ["ALFWorldEnv", "TASK_TYPES"]
