"""A failed first ``reset`` (bad ``task_id``) leaves the env usable through ``gym.make`` (issue 29, item 15).

Gymnasium's ``PassiveEnvChecker`` marks its first-reset check done before the reset runs; when
that reset raises, the next ``step`` crashed inside the checker (``cannot unpack non-iterable
NoneType object``). ``agemem_gym.registration`` guards against it for our envs.
"""

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.error import Error

TURN = "<think>x</think><answer>y</answer>"


@pytest.mark.parametrize("env_id", ["AgeMem/Probe-Recall-v0", "AgeMem/MemoryProbe-v0", "AgeMem/HotpotQA-v0"])
@pytest.mark.parametrize("task_id", ["no-such-task", 10**6])
def test_a_failed_first_reset_then_reset_and_step(env_id, task_id):
    env = gym.make(env_id)
    try:
        with pytest.raises(Error, match="task_id"):
            env.reset(seed=0, options={"task_id": task_id})
        observation, info = env.reset(seed=0)
        assert observation and "task_id" in info
        observation, reward, terminated, truncated, info = env.step(TURN)
        assert observation and info["task_id"]
    finally:
        env.close()


def test_other_envs_keep_gymnasiums_behaviour():
    """The guard acts on agemem-gym's envs only."""
    from gymnasium.wrappers.common import PassiveEnvChecker

    env = PassiveEnvChecker(gym.make("CartPole-v1", disable_env_checker=True).unwrapped)

    def broken_reset(**kwargs):
        raise ValueError("bad options")

    real_reset = env.env.reset
    env.env.reset = broken_reset
    with pytest.raises(ValueError):
        env.reset(seed=0)
    env.env.reset = real_reset
    assert env.checked_reset is True  # upstream's flag, untouched
    env.close()
