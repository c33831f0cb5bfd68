"""Registry-driven helpers shared by the environment tests."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import gymnasium as gym

import agemem_gym

# optional packages each family needs (none for the HotpotQA and synthetic families)
_REQUIRES: dict[str, tuple[str, ...]] = {
    **{
        i: ("minigrid",)
        for i in (
            "AgeMem/BabyAI-v0",
            "AgeMem/BabyAI-GoToLocal-v0",
            "AgeMem/BabyAI-PickupLoc-v0",
            "AgeMem/BabyAI-PutNextLocal-v0",
            "AgeMem/BabyAI-BossLevel-v0",
        )
    },
    "AgeMem/PDDL-v0": ("pddl",),
    "AgeMem/SciWorld-v0": ("scienceworld",),  # and `java` on PATH (CI installs default-jre-headless)
    "AgeMem/ALFWorld-v0": ("textworld", "alfworld", "fast_downward"),
}

# LoCoMo is never bundled: the registry-wide tests run AgeMem/LoCoMo-v0 on the small fixture
# written in its format (the env reads AGEMEM_LOCOMO_PATH when no data_path is given)
os.environ.setdefault("AGEMEM_LOCOMO_PATH", str(Path(__file__).parent.parent / "data" / "locomo_mini.json"))


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
