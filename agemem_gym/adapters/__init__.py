"""Bridges to other frameworks: step-wise GRPO (torch, accelerate), stable-baselines3, PettingZoo.

LLM policies live in :mod:`agemem_gym.policies.llm`. Each bridge imports its heavy
dependency lazily and names the extra to install when it is missing (``[train]``,
``[sb3]``, ``[pettingzoo]``).
"""
