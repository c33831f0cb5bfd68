"""Recordings the viewer tests draw: two rollouts of one task and one with hostile text."""

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym import policies
from agemem_gym.tools import format_answer, format_tool_call
from agemem_gym.wrappers.record import RecordEpisode, read_episode

HOTPOT = "AgeMem/HotpotQA-v0"
EVIL = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def _record(folder, policy_name, act=None, **env_kwargs):
    env = RecordEpisode(gym.make(HOTPOT, **env_kwargs), folder, metadata={"policy": policy_name})
    policy = policies.make(policy_name) if act is None else None
    obs, info = env.reset(seed=0, options={"task_id": 0})
    for t in range(1, 200):
        turn = policy.act(obs, info) if act is None else act(t)
        obs, _, term, trunc, info = env.step(turn)
        if term or trunc:
            break
    env.close()
    return env.paths[0]


def _evil_turn(t):
    if t == 1:
        return format_tool_call([{"name": "Add_memory", "arguments": {"content": EVIL}}], think=EVIL)
    return format_answer(EVIL)


@pytest.fixture(scope="session")
def recordings(tmp_path_factory):
    """``{"oracle": path, "store-all": path, "evil": path}``: task 0, seed 0."""
    root = tmp_path_factory.mktemp("recordings")
    return {
        "oracle": _record(root / "oracle", "oracle", privileged_info=True),
        "store-all": _record(root / "store-all", "store-all"),
        "evil": _record(root / "evil", "evil", act=_evil_turn, num_distractors=0),
    }


@pytest.fixture(scope="session")
def episodes(recordings):
    return {name: read_episode(path) for name, path in recordings.items()}
