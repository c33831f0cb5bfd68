"""``AgeMem/BabyAI-v0``: minigrid's BabyAI levels as text (text view, env)."""

from agemem_gym.envs.babyai.env import DEFAULT_LEVELS, BabyAIEnv

__all__ = ["BabyAIEnv", "DEFAULT_LEVELS"]
