"""Registry-driven helpers shared by the environment tests."""

from __future__ import annotations

import importlib.util

import gymnasium as gym

import agemem_gym

# optional packages each family needs (none yet for the HotpotQA family)
_REQUIRES: dict[str, tuple[str, ...]] = {}


def _available(env_id: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in _REQUIRES.get(env_id, ()))


ALL_IDS = agemem_gym.env_ids()
TESTABLE_IDS = [i for i in ALL_IDS if _available(i)]


def rollout(env: gym.Env, actions, seed: int, options=None):
    """Reset with ``seed`` and play ``actions``; return every (obs, reward, term, trunc, info)."""
    out = [env.reset(seed=seed, options=options)]
    for a in actions:
        step = env.step(a)
        out.append(step)
        if step[2] or step[3]:
            break
    return out
