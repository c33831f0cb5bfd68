"""Small runs of the hardening scripts (crash safety, determinism); the full runs are in benchmarks/README."""

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return lambda name: importlib.import_module(name)


def test_kills_during_save_always_leave_the_last_good_snapshot(bench, tmp_path):
    crash = bench("bench_crash_safety")
    result = crash.kill_trials(kills=3, items=200, seed=1, folder=tmp_path)
    assert result["failures"] == [] and result["loaded_and_matched"] == 3


def test_damaged_memory_files_raise_memory_file_error(bench, tmp_path):
    crash = bench("bench_crash_safety")
    result = crash.damaged_files(tmp_path, seed=0, cases=15)
    assert result["other_errors"] == []
    by_kind = result["by_kind"]
    for kind in ("truncated", "random_bytes", "foreign_npz", "other_version", "pickled_object_array"):
        assert by_kind[kind]["clear_error"] == by_kind[kind]["cases"] > 0, kind


def test_trajectories_match_across_processes_with_different_hash_seeds(bench):
    det = bench("check_determinism")
    ids = ["AgeMem/HotpotQA-v0", "AgeMem/FactUpdate-v0"]
    a, b = det.run_twice(ids, seeds=2, max_steps=25)
    for env_id in ids:
        assert a[env_id]["runs"] == b[env_id]["runs"]
        assert len({d for d, _ in a[env_id]["runs"].values()}) == 2  # different seeds, different episodes


def test_digest_sees_a_change_in_the_trajectory(bench):
    import gymnasium as gym

    det = bench("check_determinism")
    env = gym.make("AgeMem/HotpotQA-v0", privileged_info=True)
    one, _ = det.episode_digest(env, 0, 10)
    assert det.episode_digest(env, 0, 10)[0] == one
    env.unwrapped.configure(max_rounds=1)
    assert det.episode_digest(env, 0, 10)[0] != one
    assert sys.modules["check_determinism"] is det


@pytest.mark.slow
def test_async_vector_run_leaves_no_worker_behind(bench):
    leaks = bench("bench_engine_leaks")
    result = leaks.vector_run("AgeMem/HotpotQA-v0", n_envs=3, steps=60, sample_every=20)
    assert result["leftover_processes"] == 0 and result["after_close"]["processes"] == 0
    assert all(s["processes"] >= 3 for s in result["samples"])
    assert result["fd_growth"] <= 0
