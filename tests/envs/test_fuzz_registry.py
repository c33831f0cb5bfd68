"""A fast subset of benchmarks/fuzz_actions.py over the registry: 0 crashes, 0 invariant violations."""

import importlib
import sys
from pathlib import Path

import pytest

from tests.envs.utils import TESTABLE_IDS

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
ENGINE_IDS = {"AgeMem/SciWorld-v0", "AgeMem/ALFWorld-v0"}
FAST_IDS = [i for i in TESTABLE_IDS if i not in ENGINE_IDS]


@pytest.fixture(scope="module")
def fuzz():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("fuzz_actions")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _assert_clean(run):
    assert run["turns"] > 0
    assert not run["crashes"], run["crashes"][:3]
    assert not run["violations"], run["violations"][:3]


@pytest.mark.parametrize("env_id", FAST_IDS)
def test_mutator_turns_never_crash_nor_break_invariants(fuzz, env_id):
    run = fuzz.fuzz_env(env_id, turns=150, seed=11)
    _assert_clean(run)
    assert set(run["families"]) >= {"valid", "broken_json", "wrong_types", "mixed"}


@pytest.mark.parametrize("env_id", ["AgeMem/HotpotQA-v0", "AgeMem/BabyAI-GoToLocal-v0", "AgeMem/LoCoMo-v0"])
def test_hypothesis_turns_never_crash_nor_break_invariants(fuzz, env_id):
    if env_id not in TESTABLE_IDS:
        pytest.skip(f"{env_id} needs an optional package")
    _assert_clean(fuzz.fuzz_env_hypothesis(env_id, examples=15, seed=0))


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(ENGINE_IDS & set(TESTABLE_IDS)))
def test_engine_envs_survive_the_mutator(fuzz, env_id):
    _assert_clean(fuzz.fuzz_env(env_id, turns=300, seed=5))


def test_the_checker_catches_a_corrupted_memory(fuzz):
    """The invariant checker itself must be able to fail."""
    import gymnasium as gym

    env = gym.make("AgeMem/HotpotQA-v0")
    obs, info = env.reset(seed=0)
    assert fuzz.check_step(env, obs, info) == []
    env.unwrapped.ltm.add("x")
    env.unwrapped.ltm._alive[0] = False  # index and entries now disagree
    problems = fuzz.check_step(env, obs, info)
    assert any(p.startswith("ltm:") for p in problems) and any("ltm_size" in p for p in problems)
    assert fuzz.check_step(env, obs, dict(info, invalid_calls=0), before=0, known_bad=True)


def test_the_mutator_is_reproducible(fuzz):
    def draw(seed):
        fz = fuzz.TurnFuzzer(seed)
        out = []
        for _ in range(200):
            family, action, bad = fz.turn(["mem_00000001"])
            out.append((family, bad, action if isinstance(action, str) else type(action).__name__))
        return out

    assert draw(3) == draw(3) != draw(4)
