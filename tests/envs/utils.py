"""Registry-driven helpers shared by the environment tests."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import gymnasium as gym

import agemem_gym
from agemem_gym.tools import format_answer

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
# LongMemEval likewise: AgeMem/LongMemEval-v0 runs on the tiny fixture in its official schema
os.environ.setdefault("AGEMEM_LONGMEMEVAL", str(Path(__file__).parent.parent / "data" / "longmemeval_tiny.json"))


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


# an answer that acknowledges a Stage-1/2 message and moves the episode on
ACK = format_answer("ok")


def to_stage3(env: gym.Env, task_id=0, seed: int = 0):
    """Reset to ``task_id`` and acknowledge every message until Stage 3 (the task) begins."""
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    while info["stage"] < 3:
        obs, _, _, _, info = env.step(ACK)
    return obs, info


def play(env: gym.Env, policy, task_id, seed: int = 0, limit: int = 300) -> dict:
    """Play ``policy`` on ``task_id`` to the end of the episode; return the last info."""
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    policy.reset()
    for _ in range(limit):
        obs, _, term, trunc, info = env.step(policy.act(obs, info))
        if term or trunc:
            return info
    raise AssertionError("episode did not end")
