"""Adapters: the LLM policy, the step-wise GRPO trainer, stable-baselines3 and PettingZoo bridges.

Each adapter imports its heavy dependency lazily and names the extra to install when it is
missing (``[train]``, ``[sb3]``, ``[pettingzoo]``).
"""
