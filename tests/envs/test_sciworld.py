"""AgeMem/SciWorld-v0 on the real simulator (one shared JVM for most tests; a few start their own)."""

import json
import os
import pickle
import random
import shutil

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import data_equivalence

pytest.importorskip("scienceworld")
if shutil.which("java") is None:
    pytest.skip("ScienceWorld needs `java` on PATH", allow_module_level=True)

import agemem_gym  # noqa: E402,F401
from agemem_gym.envs.sciworld import DEFAULT_TASKS, SciWorldEnv  # noqa: E402
from agemem_gym.envs.sciworld.panel import PanelSpec, load_bundled, select_entries  # noqa: E402
from agemem_gym.error import DependencyNotInstalled, InvalidConfig  # noqa: E402
from agemem_gym.policies import make  # noqa: E402
from agemem_gym.tools import format_action  # noqa: E402
from tests.envs.utils import play, to_stage3  # noqa: E402


@pytest.fixture(scope="module")
def env():
    e = SciWorldEnv(privileged_info=True, num_distractors=1)
    yield e
    e.close()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead too
        return fh.read().split(") ")[1][0] != "Z"


def test_missing_java_fails_at_construction(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DependencyNotInstalled, match="default-jre-headless"):
        gym.make("AgeMem/SciWorld-v0")


def test_bad_arguments():
    with pytest.raises(InvalidConfig, match="unknown ScienceWorld task 'boill'"):
        SciWorldEnv(tasks=["boill"])
    with pytest.raises(InvalidConfig, match="prior"):
        SciWorldEnv(prior="yesterday")
    with pytest.raises(InvalidConfig, match="split"):
        SciWorldEnv(split="validation")


def test_bundled_panel_is_what_the_selection_rule_picks(env):
    spec, entries, variations = load_bundled()
    assert spec == PanelSpec() and len(entries) == 3 * len(DEFAULT_TASKS)
    assert {e.task for e in entries} == set(DEFAULT_TASKS)
    assert all(0 < len(variations[(e.task, e.variation)].gold) <= spec.max_gold_steps for e in entries)
    engine = env._engine_running()  # the shared JVM; the selection loads other variations
    env._loaded = None
    assert set(DEFAULT_TASKS) <= set(engine.task_names())
    fresh, found = select_entries(engine, "power-component", spec)
    assert fresh == [e for e in entries if e.task == "power-component"]
    assert all(found[(e.task, e.variation)] == variations[(e.task, e.variation)] for e in fresh)


def test_stages_material_and_facts(env):
    obs, info = env.reset(seed=0, options={"task_id": "use-thermometer/447"})
    task = env.task
    gold = task.extra["gold"]
    assert len(task.material) == 2 and task.query.startswith("Your task is to")
    same = next(m for m in task.material if m.startswith("Notes from an earlier run"))
    assert all(f in same for f in task.facts) and "; ".join(task.facts) == "; ".join(gold)
    assert "A friend ran" in obs[-1]["content"] or "Notes from" in obs[-1]["content"]
    obs, info = to_stage3(env, "use-thermometer/447")
    assert info["stage"] == 3 and obs[-2]["content"] == task.query
    assert obs[-1]["content"].startswith("Observation: This ") and " is called the " in obs[-1]["content"]
    assert "valid_actions" not in info and info["privileged"]["expert_action"] == gold[0]
    related = SciWorldEnv(prior="related")
    related.reset(seed=0, options={"task_id": 0})
    assert len(related.task.material) == 1 and related.task.material[0].startswith("A friend ran")


@pytest.mark.parametrize("task_id", [0, 7, 14])
def test_oracle_solves_panel_tasks(env, task_id):
    info = play(env, make("oracle"), task_id)
    assert info["success"] == 1.0 and info["sciworld_score"] == 100 and info["invalid_calls"] == 0


def test_memory_matters_store_all_replays_the_stored_run(env):
    """store-all wins by replaying the stored notes; without memory the same world is lost."""
    task_id = "power-component/18"
    assert play(env, make("store-all"), task_id)["success"] == 1.0
    info = play(env, make("no-memory"), task_id)
    assert info["success"] == 0.0 and info["world_steps"] == 0  # nothing to act on without memory or a list


def test_wrong_focus_fails_and_bad_commands_change_nothing(env):
    obs, info = to_stage3(env, "find-animal/289")
    for junk in ["fly to the moon", "x" * 2000, "ünïcödé ✓ \x00", "focus", "reset task"]:
        obs, r, term, trunc, info = env.step(format_action(junk))
        assert not (term or trunc) and info["step_invalid_calls"] == 0
    assert info["world_steps"] == 5 and env._score == 0
    obs, r, term, trunc, info = env.step(format_action("  "))  # empty: rejected before the world
    assert info["world_steps"] == 5 and info["step_invalid_calls"] == 1
    obs, r, term, trunc, info = env.step(format_action("focus on air"))
    assert term and info["success"] == 0.0 and info["sciworld_score"] == -100 and info["task_score"] == 0.0
    rng = random.Random(0)
    words = "open focus on in to move pour use connect wait1 look at door kitchen air 1 -1 ' \" \\ { ( é ✓ 😀".split()
    for _ in range(60):  # then random command-like text straight into the simulator: no crash, no score
        observation, score = env._engine.step(" ".join(rng.choices(words, k=rng.randint(0, 6))))
        assert isinstance(observation, str) and score in (0, -100)
        if score < 0:
            env._engine.reset()


def test_same_seed_same_world_in_two_jvms(env):
    """Two simulators (two JVMs) give the same text for the same actions: the hashCode flag works."""
    gold = None
    other = SciWorldEnv(privileged_info=True, num_distractors=1)
    try:
        runs = []
        for e in (env, other):
            obs, info = to_stage3(e, "chemistry-mix/26", seed=3)
            gold = e.task.extra["gold"]
            trace = [obs]
            for a in ["look around", "open door to kitchen", *gold[:6], "pick up air", "look around"]:
                trace.append(e.step(format_action(a)))
            runs.append(trace)
        assert len(gold) > 6
        for x, y in zip(*runs):
            assert data_equivalence(x, y, exact=True)
    finally:
        other.close()


def test_pickle_mid_episode_replays_in_a_new_jvm(env):
    obs, info = to_stage3(env, "measure-melting-point-known-substance/353")
    gold = env.task.extra["gold"]
    for a in gold[:8]:
        env.step(format_action(a))
    clone = pickle.loads(pickle.dumps(env))
    try:
        assert clone._engine is None
        for a in [*gold[8:12], "look around", "inventory"]:
            assert data_equivalence(env.step(format_action(a)), clone.step(format_action(a)), exact=True)
        assert clone._engine is not None and clone._engine.pid != env._engine.pid
    finally:
        clone.close()


def test_close_ends_the_jvm_and_a_later_step_restores_the_world(env):
    obs, info = to_stage3(env, "lifespan-longest-lived/121")
    gold = env.task.extra["gold"]
    env.step(format_action(gold[0]))
    pid = env._engine.pid
    assert alive(pid)
    env.close()
    assert not alive(pid) and env._engine is None
    obs, r, term, trunc, info = env.step(format_action(gold[1]))  # replays gold[0] in a fresh JVM first
    assert info["world_steps"] == 2 and info["privileged"]["expert_action"] == gold[2]
    assert env._engine.pid != pid


def test_valid_actions_opt_in(env, monkeypatch):
    monkeypatch.setattr(env, "valid_actions", True)
    monkeypatch.setattr(env, "max_listed_actions", 5)
    obs, info = to_stage3(env, 0)
    valid = info["valid_actions"]
    assert len(valid) > 100 and valid == sorted(valid)
    assert "Valid actions:" in obs[-1]["content"] and f"(and {len(valid) - 5} more)" in obs[-1]["content"]


@pytest.mark.slow
def test_oracle_solves_the_whole_panel(env):
    results = [play(env, make("oracle"), i) for i in range(len(env.task_ids))]
    assert sum(r["success"] for r in results) / len(results) >= 0.95


def test_agemem_run_cli(tmp_path, capsys):
    from agemem_gym.cli import main

    out = tmp_path / "run.json"
    args = ["run", "AgeMem/SciWorld-v0", "--policy", "store-all", "--episodes", "1", "--no-progress"]
    args += ["--json", str(out)]
    assert main(args) == 0 and "Episode metrics" in capsys.readouterr().out
    summary = json.loads(out.read_text())["summary"]
    assert summary["success"] == 1.0 and summary["tool_calls"]["Add_memory"] == 2.0
