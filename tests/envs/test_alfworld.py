"""AgeMem/ALFWorld-v0 on the real TextWorld PDDL engine (one shared env for most tests)."""

import json
import pickle
import sys

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import data_equivalence

pytest.importorskip("textworld")
pytest.importorskip("alfworld")
pytest.importorskip("fast_downward")

import agemem_gym  # noqa: E402,F401
from agemem_gym.envs.alfworld import TASK_TYPES, ALFWorldEnv  # noqa: E402
from agemem_gym.envs.alfworld.games import game_data, game_details, load_sample  # noqa: E402
from agemem_gym.error import DataFormatError, DataNotFound, DependencyNotInstalled, InvalidConfig  # noqa: E402
from agemem_gym.policies import make  # noqa: E402
from agemem_gym.tools import format_action  # noqa: E402
from tests.envs.utils import play, to_stage3  # noqa: E402

CLEAN_BOWL = "valid_unseen/pick_clean_then_place_in_recep-Bowl-None-Cabinet-10/trial_T20190909_061130_844814"


@pytest.fixture(scope="module")
def env():
    e = ALFWorldEnv(privileged_info=True, num_distractors=1)
    yield e
    e.close()


def test_bundled_sample_has_three_games_per_task_type():
    games = load_sample()
    assert len(games) == 18 and sorted({g.task_type for g in games}) == sorted(TASK_TYPES)
    assert all(sum(g.task_type == t for g in games) == 3 for t in TASK_TYPES)
    goal, walkthrough = game_details(next(g for g in games if g.name == CLEAN_BOWL))
    assert goal == "clean some bowl and put it in cabinet." and walkthrough[-1] == "move bowl 1 to cabinet 4"
    assert set(game_data(games[0])) >= {"pddl_domain", "pddl_problem", "grammar", "walkthrough"}


def test_data_dir_errors_name_the_fix(tmp_path):
    with pytest.raises(DataNotFound, match="alfworld-download"):
        ALFWorldEnv(data_dir=tmp_path / "missing")
    with pytest.raises(DataNotFound, match="no ALFWorld game.tw-pddl files"):
        ALFWorldEnv(data_dir=tmp_path)
    bad = tmp_path / "valid_unseen" / "pick_and_place_simple-Mug-None-Desk-1" / "trial_1"
    bad.mkdir(parents=True)
    (bad / "game.tw-pddl").write_text('{"walkthrough": []}')
    env = ALFWorldEnv(data_dir=tmp_path)  # files are read when a task is made
    with pytest.raises(DataFormatError, match="needs the keys"):
        env.reset(seed=0)


def test_data_dir_reads_game_files(tmp_path):
    """A folder laid out as ALFWorld's json_2.1.1 (written from the sample) is a panel."""
    for game in load_sample()[:6]:
        folder = tmp_path / game.name
        folder.mkdir(parents=True)
        (folder / "game.tw-pddl").write_text(json.dumps({**game_data(game), "solvable": True}))
    env = ALFWorldEnv(data_dir=tmp_path, task_types=["pick_and_place_simple", "look_at_obj_in_light"])
    assert len(env.task_ids) == 6 and env.task_ids[0].startswith("valid_unseen/look_at_obj_in_light")
    assert env.games[0].path is not None and env.task_ids[1].startswith("valid_unseen/pick_and_place_simple")
    small = ALFWorldEnv(num_tasks=4)
    small.reset(seed=0, options={"task_id": 3})
    assert len(small.task_ids) == 4 and small.task.extra["related"] not in small.task_ids  # from the whole sample


def test_missing_package_fails_at_make(monkeypatch):
    monkeypatch.setitem(sys.modules, "alfworld.agents.environment.alfred_tw_env", None)
    with pytest.raises(DependencyNotInstalled, match=r'alfworld is not installed; run `pip install "agemem-gym\[envs'):
        gym.make("AgeMem/ALFWorld-v0")


def test_bad_arguments():
    with pytest.raises(InvalidConfig, match="unknown ALFWorld task type"):
        ALFWorldEnv(task_types=["pick_and_eat"])
    with pytest.raises(InvalidConfig, match="prior"):
        ALFWorldEnv(prior="tomorrow")
    with pytest.raises(InvalidConfig, match="num_tasks"):
        ALFWorldEnv(num_tasks=0)


def test_stages_material_facts_and_valid_actions(env):
    argv = list(sys.argv)
    obs, info = env.reset(seed=0, options={"task_id": CLEAN_BOWL})
    task = env.task
    assert task.query == "Your task is to: clean some bowl and put it in cabinet."
    notes = next(m for m in task.material if m.startswith("Notes from an earlier visit"))
    friend = next(m for m in task.material if m.startswith("A friend did a similar chore"))
    assert all(f in notes for f in task.facts) and "; ".join(task.facts) == "; ".join(task.extra["walkthrough"])
    assert "their task: clean some" in friend and task.extra["related"] != CLEAN_BOWL
    obs, info = to_stage3(env, CLEAN_BOWL)
    assert obs[-2]["content"] == task.query
    assert obs[-1]["content"].startswith("Observation: You are in the middle of a room.")
    assert "Valid actions: go to cabinet 1" in obs[-1]["content"] and "Your task is to" not in obs[-1]["content"]
    assert "go to countertop 3" in info["valid_actions"] and info["privileged"]["expert_action"] == "go to countertop 3"
    assert sys.argv == argv  # Fast Downward's translator rewrites sys.argv; the engine restores it
    related = ALFWorldEnv(prior="related")
    related.reset(seed=0, options={"task_id": CLEAN_BOWL})
    assert len(related.task.material) == 1 and related.task.facts[0] in related.task.material[0]


def test_expert_follows_the_walkthrough_through_no_ops_and_stops_off_it(env):
    obs, info = to_stage3(env, CLEAN_BOWL)
    for cmd in ["fly away", "look", "inventory", "go to countertop 3", "examine countertop 3", "help"]:
        obs, r, term, trunc, info = env.step(format_action(cmd))
    assert info["privileged"]["expert_action"] == "take bowl 1 from countertop 3"  # nothing changed the world
    obs, r, term, trunc, info = env.step(format_action("go to fridge 1"))
    assert info["privileged"]["expert_action"] is None  # off the walkthrough, and no planning by default


def test_replanning_oracle_recovers_after_wrong_moves():
    """Off the walkthrough, replan_expert=True plans with Fast Downward, and the oracle still wins."""
    env = ALFWorldEnv(privileged_info=True, num_distractors=1, replan_expert=True)
    try:
        obs, info = to_stage3(env, CLEAN_BOWL)
        for cmd in ["go to fridge 1", "open fridge 1", "fly away"]:
            obs, r, term, trunc, info = env.step(format_action(cmd))
        assert "Nothing happens." in obs[-1]["content"] and info["privileged"]["expert_action"]
        oracle = make("oracle")
        for _ in range(20):
            obs, r, term, trunc, info = env.step(oracle.act(obs, info))
            if term or trunc:
                break
        assert term and info["success"] == 1.0 and info["task_score"] == 1.0
    finally:
        env.close()


@pytest.mark.parametrize("task_id", [1, 5])
def test_oracle_and_store_all_win(env, task_id):
    assert play(env, make("oracle"), task_id)["success"] == 1.0
    assert play(env, make("store-all"), task_id)["success"] == 1.0


def test_plain_mode_starts_in_the_world_and_truncates(env):
    plain = ALFWorldEnv(plain=True, max_world_steps=3)
    try:
        obs, info = plain.reset(seed=0, options={"task_id": CLEAN_BOWL})
        assert info["stage"] == 3 and "valid_actions" in info
        for _ in range(3):
            obs, r, term, trunc, info = plain.step(format_action("look"))
        assert trunc and not term and info["success"] == 0.0 and info["world_steps"] == 3
    finally:
        plain.close()


def test_pickle_mid_episode_replays_the_commands(env):
    obs, info = to_stage3(env, CLEAN_BOWL, seed=4)
    walkthrough = env.task.extra["walkthrough"]
    for cmd in walkthrough[:3]:
        env.step(format_action(cmd))
    clone = pickle.loads(pickle.dumps(env))
    try:
        assert clone._engine is None
        for cmd in ["inventory", "look", *walkthrough[3:]]:
            x, y = env.step(format_action(cmd)), clone.step(format_action(cmd))
            assert data_equivalence(x, y, exact=True)
        assert x[2] and x[4]["success"] == 1.0
    finally:
        clone.close()


def test_close_then_step_restores_the_game(env):
    obs, info = to_stage3(env, CLEAN_BOWL)
    walkthrough = env.task.extra["walkthrough"]
    env.step(format_action(walkthrough[0]))
    env.close()
    assert env._engine is None
    for cmd in walkthrough[1:]:
        obs, r, term, trunc, info = env.step(format_action(cmd))
    assert term and info["success"] == 1.0


@pytest.mark.slow
def test_oracle_solves_the_whole_sample(env):
    results = [play(env, make("oracle"), i) for i in range(len(env.task_ids))]
    assert sum(r["success"] for r in results) / len(results) >= 0.95


def test_agemem_run_cli(tmp_path, capsys):
    from agemem_gym.cli import main

    out = tmp_path / "run.json"
    args = ["run", "AgeMem/ALFWorld-v0", "--policy", "oracle", "--episodes", "1", "--no-progress", "--json", str(out)]
    assert main(args) == 0 and "Episode metrics" in capsys.readouterr().out
    summary = json.loads(out.read_text())["summary"]
    assert summary["success"] == 1.0 and summary["memory_quality"] == 1.0
