import pickle
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

pytest.importorskip("pddl")

import agemem_gym  # noqa: E402,F401
from agemem_gym.envs.pddl import PDDLEnv  # noqa: E402
from agemem_gym.envs.pddl.panel import DATA_DIR, bundled_problems, domain_of, load_problem  # noqa: E402
from agemem_gym.envs.pddl.parsing import action_predicates, goal_last, parse_domain, parse_problem  # noqa: E402
from agemem_gym.envs.pddl.plans import load_plans, pyperplan_plan  # noqa: E402
from agemem_gym.envs.pddl.search import greedy_plan  # noqa: E402
from agemem_gym.envs.pddl.strips import format_action, parse_action  # noqa: E402
from agemem_gym.error import DataFormatError, DataNotFound, InvalidConfig  # noqa: E402
from agemem_gym.evaluation import run_episodes, summarize  # noqa: E402
from agemem_gym.policies import make  # noqa: E402
from agemem_gym.tools import format_action as act  # noqa: E402
from agemem_gym.tools import format_answer, format_tool_call  # noqa: E402
from tests.envs.utils import ACK, to_stage3  # noqa: E402


def test_goal_before_init_is_reordered_and_action_predicates_are_stripped():
    text = (DATA_DIR / "ferry" / "problem1.pddl").read_text()
    assert text.index(":goal") < text.index(":init")
    fixed = goal_last(text)
    assert fixed.index(":init") < fixed.index(":goal") and ";" not in fixed
    domain_text = (DATA_DIR / "ferry.pddl").read_text()
    assert action_predicates(domain_text) == {"sail", "board", "debark"}
    domain, closure = parse_domain(domain_text)
    problem = parse_problem(text, domain, closure)
    assert not any(a[0] in {"sail", "board", "debark"} for a in problem.init)
    assert not any(a[0] in domain.hidden for op in domain.operators for a in op.pre_pos)


def test_unsupported_and_broken_pddl_raise_clear_errors():
    domain, closure = parse_domain((DATA_DIR / "blocks.pddl").read_text())
    with pytest.raises(DataFormatError, match="no \\(:goal"):
        parse_problem("(define (problem p) (:domain blocks) (:init))", domain, closure)
    with pytest.raises(DataFormatError, match="cannot parse"):
        parse_problem(
            "(define (problem p) (:domain blocks) (:init (on a b)) (:goal (on a b)) (:extra 1))", domain, closure
        )
    with pytest.raises(DataFormatError, match="unbalanced"):
        parse_problem("(define (problem p) (:domain blocks) (:init (on a b)) (:goal (on a b)", domain, closure)
    with pytest.raises(DataFormatError, match="unsupported PDDL construct"):
        parse_domain(
            "(define (domain d) (:requirements :strips :disjunctive-preconditions) (:predicates (p) (q))"
            " (:action a :parameters () :precondition (or (p) (q)) :effect (p)))"
        )


@pytest.mark.parametrize("domain", ["blocks", "ferry", "elevator", "gripper", "hanoi"])
def test_applicable_actions_match_pyperplans_grounding(domain):
    """Our lazy grounding against pyperplan's full grounding along random walks (a real second engine)."""
    pytest.importorskip("pyperplan")
    from pyperplan import grounding
    from pyperplan.pddl.parser import Parser

    key = next(k for k in bundled_problems() if domain_of(k) == domain)
    sim = load_problem(DATA_DIR, key)
    with tempfile.TemporaryDirectory() as tmp:
        problem_file = Path(tmp) / "problem.pddl"
        problem_file.write_text(goal_last((DATA_DIR / f"{key}.pddl").read_text()))
        parser = Parser(str(DATA_DIR / f"{domain}.pddl"), str(problem_file))
        task = grounding.ground(parser.parse_problem(parser.parse_domain()), False, False)
    hidden = {a for a in task.initial_state if a.strip("()").split()[0] in sim.domain.hidden}
    rng = np.random.default_rng(0)
    state = sim.init
    for _ in range(60):
        theirs = {op.name for op in task.operators if op.applicable(frozenset(map(_fmt, state)) | hidden)}
        ours = sim.applicable(state)
        assert {format_action(a) for a in ours} == theirs
        assert all(sim.is_applicable(state, a) for a in ours)
        if not ours:
            break
        state = sim.apply(state, ours[int(rng.integers(len(ours)))])


def _fmt(atom):
    return "(" + " ".join(atom) + ")"


def test_every_bundled_plan_reaches_its_goal():
    plans = load_plans()
    assert set(plans) == set(bundled_problems()) and len(plans) == 46
    for key, entry in plans.items():
        sim = load_problem(DATA_DIR, key)
        state = sim.init
        for text in entry["plan"]:
            action = parse_action(text)
            assert sim.is_applicable(state, action), (key, text)
            state = sim.apply(state, action)
        assert sim.is_goal(state), key


def test_greedy_search_and_pyperplan_both_solve_a_problem():
    pytest.importorskip("pyperplan")
    sim = load_problem(DATA_DIR, "blocks/problem3")
    for plan in (
        greedy_plan(sim, sim.init),
        pyperplan_plan(DATA_DIR / "blocks.pddl", (DATA_DIR / "blocks/problem3.pddl").read_text()),
    ):
        state = sim.init
        for action in plan:
            assert sim.is_applicable(state, action)
            state = sim.apply(state, action)
        assert sim.is_goal(state)
    assert greedy_plan(sim, sim.init, max_expansions=1) is None


def test_progress_rate_is_the_best_fraction_of_goal_atoms():
    env = PDDLEnv(domains="hanoi", plain=True)
    obs, info = env.reset(seed=0, options={"task_id": "hanoi/problem0"})
    sim = env.unwrapped._sim
    assert 0.0 < sim.progress(sim.init) < 1.0  # hanoi starts with part of the goal true
    assert "Goal atoms satisfied" in obs[-1]["content"] and info["valid_actions"]
    obs, _, term, _, info = env.step(format_answer("I give up"))
    assert term and info["success"] == 0.0
    assert info["task_score"] == info["progress_start"] == info["progress_final"] == sim.progress(sim.init)


def test_stage_structure_material_and_facts():
    env = gym.make("AgeMem/PDDL-v0", privileged_info=True)
    obs, info = env.reset(seed=0, options={"task_id": "blocks/problem1"})
    task = env.unwrapped.task
    assert len(task.material) == 4  # manual, own solution log, two related logs
    assert sum("Operator manual for the blocks domain" in m for m in task.material) == 1
    plan_line = task.facts[0]
    assert any(plan_line in m and "blocks problem1" in m for m in task.material)
    assert plan_line == "; ".join(load_plans()["blocks/problem1"]["plan"])
    while info["stage"] < 3:
        obs, _, _, _, info = env.step(ACK)
    assert "blocks problem1" in obs[-2]["content"] and obs[-1]["content"].startswith("Observation: ")
    assert info["privileged"]["expert_action"] == load_plans()["blocks/problem1"]["plan"][0]


def test_bad_and_inapplicable_actions():
    env = PDDLEnv(domains="blocks", plain=True)
    obs, info = to_stage3(env, task_id="blocks/problem1")
    obs, _, _, _, info = env.step(act("(fly a b)"))
    assert "unknown operator" in obs[-2]["content"] and info["step_invalid_calls"] == 1 and info["world_steps"] == 1
    obs, _, _, _, info = env.step(act("(stack a)"))
    assert "takes 3 objects" in obs[-2]["content"] and info["step_invalid_calls"] == 1
    obs, _, _, _, info = env.step(act("(stack a zz robot)"))
    assert "unknown object" in obs[-2]["content"]
    before = env.unwrapped._state
    obs, _, _, _, info = env.step(act("(STACK A B ROBOT)"))  # well formed, preconditions fail: no penalty
    assert "cannot be done now" in obs[-1]["content"] and info["step_invalid_calls"] == 0
    assert env.unwrapped._state == before
    obs, _, _, _, info = env.step(act("pick-up a robot"))  # parentheses optional
    assert "You did (pick-up a robot)" in obs[-1]["content"]


def test_expert_replans_after_a_deviation_and_oracle_recovers():
    env = PDDLEnv(domains="blocks", privileged_info=True, plain=True)
    obs, info = to_stage3(env, task_id="blocks/problem5")
    while len(info["valid_actions"]) < 2:  # follow the expert until there is a wrong turn to take
        obs, _, _, _, info = env.step(act(info["privileged"]["expert_action"]))
    detour = next(a for a in info["valid_actions"] if a != info["privileged"]["expert_action"])
    obs, _, _, _, info = env.step(act(detour))
    assert info["privileged"]["expert_action"] is not None
    oracle = make("oracle")
    for _ in range(60):
        obs, r, term, trunc, info = env.step(oracle.act(obs, info))
        if term or trunc:
            break
    assert term and info["success"] == 1.0 and info["task_score"] == 1.0


def test_travel_dead_end_ends_the_episode():
    env = PDDLEnv(domains="travel", plain=True)
    for task_id in env.task_ids:
        obs, info = to_stage3(env, task_id=task_id)
        for _ in range(30):
            obs, r, term, trunc, info = env.step(act(info["valid_actions"][0]))
            if term or trunc:
                break
        if "Dead end" in obs[-1]["content"]:
            assert term and info["success"] == 0.0
            return
    pytest.fail("no dead end reached by always taking the first action")


def test_pickle_mid_world_and_deterministic_world_rollouts():
    def rollout(env, actions):
        out = [env.reset(seed=4, options={"task_id": 12})]
        for a in actions:
            out.append(env.step(a))
        return out

    env = PDDLEnv(plain=True)
    obs, info = env.reset(seed=4, options={"task_id": 12})
    actions = [act(info["valid_actions"][i % len(info["valid_actions"])]) for i in range(3)]
    for a in actions:
        env.step(a)
    clone = pickle.loads(pickle.dumps(env))
    nxt = act(env.unwrapped._valid_actions()[0])
    assert data_equivalence(env.step(nxt), clone.step(nxt), exact=True)
    a, b = rollout(PDDLEnv(plain=True), actions), rollout(PDDLEnv(plain=True), actions)
    assert all(data_equivalence(x, y, exact=True) for x, y in zip(a, b))


def test_missing_parser_fails_at_make(monkeypatch):
    import sys

    from agemem_gym.error import DependencyNotInstalled

    for name in [m for m in sys.modules if m == "pddl" or m.startswith("pddl.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "pddl", None)
    with pytest.raises(DependencyNotInstalled, match=r'pip install "agemem-gym\[envs\]"'):
        gym.make("AgeMem/PDDL-v0")


def test_arguments_are_validated():
    with pytest.raises(InvalidConfig, match="unknown PDDL domain"):
        PDDLEnv(domains=["blockz"])
    with pytest.raises(InvalidConfig, match="split"):
        PDDLEnv(split="dev")
    with pytest.raises(DataNotFound):
        PDDLEnv(data_dir="/nonexistent/pddl")
    assert all(
        k.endswith(("problem2", "problem4", "problem6", "problem8", "problem10"))
        for k in PDDLEnv(domains="blocks", split="test").task_ids
    )


def test_custom_data_dir_plans_with_the_simulator(tmp_path):
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks.pddl").write_text((DATA_DIR / "blocks.pddl").read_text())
    (tmp_path / "blocks" / "mine.pddl").write_text((DATA_DIR / "blocks" / "problem3.pddl").read_text())
    env = PDDLEnv(data_dir=tmp_path, privileged_info=True, num_distractors=0)
    policy = make("oracle")
    obs, info = env.reset(seed=0)
    assert env.task_ids == ["blocks/mine"]
    for _ in range(100):
        obs, r, term, trunc, info = env.step(policy.act(obs, info))
        if term or trunc:
            break
    assert info["success"] == 1.0


@pytest.fixture(scope="module")
def panel():
    return {
        p: summarize(run_episodes("AgeMem/PDDL-v0", make(p), episodes=46, seed=0))
        for p in ("oracle", "store-all", "no-memory", "random")
    }


def test_baselines_on_the_full_panel(panel):
    oracle, store, none, rnd = (panel[p] for p in ("oracle", "store-all", "no-memory", "random"))
    assert oracle["success"] == 1.0 and oracle["task_score"] == 1.0 and oracle["memory_quality"] == 1.0
    assert store["success"] >= 0.9  # it replays the solution log it retrieves
    assert none["success"] < 0.3 and none["task_score"] < 0.6
    assert rnd["success"] == 0.0 and rnd["task_score"] < 0.2
    for p in (oracle, store, none):
        assert p["invalid_calls"] == 0.0


def test_tool_calls_do_not_move_the_world():
    env = PDDLEnv(domains="blocks", plain=True)
    obs, info = to_stage3(env, task_id=0)
    state = env.unwrapped._state
    obs, _, _, _, info = env.step(format_tool_call([{"name": "Retrieve_memory", "arguments": {"query": "plan"}}]))
    assert env.unwrapped._state == state and info["world_steps"] == 0


def test_plans_tool_writes_plans_the_env_reads(tmp_path):
    pytest.importorskip("pyperplan")
    import shutil

    from agemem_gym.envs.pddl.plans import main

    for domain, problem in (("blocks", "problem1"), ("travel", "problem2")):
        (tmp_path / domain).mkdir()
        shutil.copy(DATA_DIR / f"{domain}.pddl", tmp_path)
        shutil.copy(DATA_DIR / domain / f"{problem}.pddl", tmp_path / domain)
    assert main(["--data-dir", str(tmp_path), "--timeout", "60"]) == 0
    plans = load_plans(tmp_path / "plans.json")
    assert plans["blocks/problem1"]["planner"].startswith("pyperplan")
    assert plans["travel/problem2"]["planner"].startswith("agemem")  # pyperplan cannot read travel
    assert not list(tmp_path.rglob("*.soln"))  # pyperplan's output never lands next to the data
    env = PDDLEnv(data_dir=tmp_path)
    env.reset(seed=0, options={"task_id": "blocks/problem1"})
    assert env.task.facts == ("; ".join(plans["blocks/problem1"]["plan"]),)
