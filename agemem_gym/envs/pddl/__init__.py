"""``AgeMem/PDDL-v0``: PDDL planning problems on a small STRIPS simulator (parser glue, simulator, search, env)."""

from agemem_gym.envs.pddl.env import PDDLEnv
from agemem_gym.envs.pddl.strips import StripsSimulator

__all__ = ["PDDLEnv", "StripsSimulator"]
