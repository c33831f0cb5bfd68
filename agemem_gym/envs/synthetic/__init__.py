"""Synthetic memory families generated from the seed: ``AgeMem/FactUpdate-v0``, ``AgeMem/LongRecall-v0``."""

from agemem_gym.envs.synthetic.env import FactUpdateEnv, LongRecallEnv, SyntheticMemoryEnv
from agemem_gym.envs.synthetic.generator import DIFFICULTIES, Difficulty, generate

__all__ = ["DIFFICULTIES", "Difficulty", "FactUpdateEnv", "LongRecallEnv", "SyntheticMemoryEnv", "generate"]
