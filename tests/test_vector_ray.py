"""RayVectorEnv: the gymnasium vector API on Ray actors, replay of killed workers, eval and trainer paths."""

import json
import os
import shutil
import signal
import sys
import tempfile

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode

ray = pytest.importorskip("ray")

from agemem_gym import policies  # noqa: E402
from agemem_gym.error import DependencyNotInstalled, InvalidConfig  # noqa: E402
from agemem_gym.harness import run_panel  # noqa: E402
from agemem_gym.vector import EnvFactory, make_slot_envs, unbatch_info  # noqa: E402
from agemem_gym.vector_ray import RayVectorEnv, require_ray  # noqa: E402

PROBE, HOTPOT = "AgeMem/MemoryProbe-v0", "AgeMem/HotpotQA-v0"


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    """One local Ray for the module (starting one costs seconds); no token file, no dashboard."""
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp = tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must fit 107 bytes
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
    if saved is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = saved


def _play(envs, steps, seed=0, policy="store-all", kill=None):
    """``steps`` lockstep steps of one scripted policy per sub-env (autoreset NEXT_STEP).

    ``kill`` maps a step number to ``(sub-env, how)``: that sub-env's worker dies just before it.
    """
    agents = [policies.make(policy) for _ in range(envs.num_envs)]
    obs, infos = envs.reset(seed=seed)
    trace = [("reset", obs, infos)]
    for t in range(steps):
        if kill and t in kill:
            index, how = kill[t]
            if how == "os":
                os.kill(envs.worker_pids()[index], signal.SIGKILL)
            else:
                envs.kill_worker(index)
        actions = tuple(a.act(obs[i], unbatch_info(infos, i)) for i, a in enumerate(agents))
        obs, rewards, terms, truncs, infos = envs.step(actions)
        trace.append(("step", obs, rewards, terms, truncs, infos))
    return trace


def _without(infos, key):
    """Batched infos without ``key`` (and its mask)."""
    return {k: v for k, v in infos.items() if k not in (key, f"_{key}")}


@pytest.mark.parametrize("env_id,num_envs", [(PROBE, 1), (PROBE, 2), (HOTPOT, 2)])
def test_ray_vector_env_matches_the_sync_vector_env(env_id, num_envs):
    fns = [EnvFactory(env_id)] * num_envs
    sync = gym.vector.SyncVectorEnv(fns)
    remote = RayVectorEnv([env_id, gym.spec(env_id)][:num_envs])  # ids and specs are recipes too
    try:
        assert remote.single_observation_space == sync.single_observation_space
        assert remote.single_action_space == sync.single_action_space
        assert remote.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        expected, got = _play(sync, 30, seed=7), _play(remote, 30, seed=7)
        assert data_equivalence(got, expected)
        ends = sum(int(np.any(s[3])) for s in expected[1:])
        assert ends >= 1, "the run should cross an episode end (and its autoreset)"
        assert remote.get_attr("spec")[0].id == env_id
    finally:
        sync.close()
        remote.close()


def test_killed_workers_are_rebuilt_and_their_episodes_replayed():
    fns = [EnvFactory(PROBE)] * 2
    sync = gym.vector.SyncVectorEnv(fns)
    expected = _play(sync, 8, seed=3)
    sync.close()
    remote = RayVectorEnv(fns)
    try:
        before = remote.worker_pids()
        got = _play(remote, 8, seed=3, kill={3: (1, "os"), 5: (0, "ray")})  # a crash, then ray.kill
        assert remote.worker_restarts == [1, 1]
        after = remote.worker_pids()
        assert after[0] != before[0] and after[1] != before[1]
    finally:
        remote.close()
    assert got[4][5]["worker_restarted"].tolist() == [0, 1] and got[4][5]["_worker_restarted"].tolist() == [False, True]
    assert got[6][5]["worker_restarted"].tolist() == [1, 0] and got[6][5]["_worker_restarted"].tolist() == [True, False]
    for i, (step_got, step_expected) in enumerate(zip(got, expected)):
        if i in (4, 6):  # the steps right after the kills: the same, plus the restart counter
            step_got = (*step_got[:-1], _without(step_got[-1], "worker_restarted"))
        assert data_equivalence(step_got, step_expected), f"step {i} differs"


def test_an_episode_that_cannot_be_replayed_is_reported_truncated():
    remote = RayVectorEnv([EnvFactory(PROBE)] * 2)
    try:
        with pytest.raises(Exception, match="reset"):  # the env's own error reaches the caller
            remote.step(("<answer>a</answer>",) * 2)
        obs, infos = remote.reset()  # no seed: the episodes cannot be replayed
        first = remote.step(("<think>x</think><answer>a</answer>",) * 2)
        remote.kill_worker(0)
        obs, rewards, terms, truncs, infos = remote.step(("<think>x</think><answer>a</answer>",) * 2)
        assert truncs.tolist()[0] is True and rewards[0] == 0.0 and not terms[0]
        assert obs[0] == first[0][0]  # the last observation the lost worker gave
        info = unbatch_info(infos, 0)
        assert info["worker_restarted"] == 1 and "without a seed" in info["worker_error"]
        assert "worker_error" not in unbatch_info(infos, 1)
        # NEXT_STEP autoreset: the rebuilt worker starts a new episode
        obs, rewards, terms, truncs, infos = remote.step(("<think>x</think><answer>a</answer>",) * 2)
        assert not truncs[0] and rewards[0] == 0.0 and "worker_error" not in unbatch_info(infos, 0)
    finally:
        remote.close()


def test_slot_envs_on_ray_play_the_same_panel_as_in_process():
    sync = run_panel(HOTPOT, lambda: policies.make("rag"), episodes=3, num_envs=1)
    on_ray = run_panel(HOTPOT, lambda: policies.make("rag"), episodes=3, num_envs=2, vector_mode="ray")
    assert sync == on_ray


def test_a_killed_slot_worker_replays_within_play_episodes():
    from agemem_gym.runner import play_episodes

    plan = [(0, 11), (1, 12)]

    def run(kill_at, mode):
        envs = make_slot_envs(EnvFactory(PROBE), 2, mode=mode)
        agents = [policies.make("store-all") for _ in range(2)]
        calls = {"n": 0}

        def act(slots, observations, infos):
            calls["n"] += 1
            if calls["n"] == kill_at:
                envs.kill_worker(1)
            return [agents[j].act(o, i) for j, o, i in zip(slots, observations, infos)]

        try:
            return play_episodes(envs, plan, act), getattr(envs, "worker_restarts", [0, 0])
        finally:
            envs.close()

    (clean, restarts), (faulted, faulted_restarts) = run(None, "sync"), run(3, "ray")
    assert restarts == [0, 0] and faulted_restarts == [0, 1]
    assert [e.reward for e in clean] == [e.reward for e in faulted]
    assert [e.steps for e in clean] == [e.steps for e in faulted] and all(e.finished for e in faulted)
    assert [_without(e.info, "worker_restarted") for e in clean] == [
        _without(e.info, "worker_restarted") for e in faulted
    ]


def test_bad_recipes_and_modes_are_refused():
    with pytest.raises(InvalidConfig, match="SAME_STEP"):
        RayVectorEnv([EnvFactory(PROBE)], autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(InvalidConfig, match="NextStep"):
        RayVectorEnv([EnvFactory(PROBE)], autoreset_mode="later")
    with pytest.raises(InvalidConfig, match="callable"):
        RayVectorEnv([42])
    with pytest.raises(InvalidConfig, match="at least one"):
        RayVectorEnv([])
    with pytest.raises(InvalidConfig, match="vector mode"):
        make_slot_envs(EnvFactory(PROBE), 1, mode="threads")


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray has
    with pytest.raises(DependencyNotInstalled, match=r'pip install "agemem-gym\[ray\]"'):
        require_ray()


def test_eval_command_runs_on_ray_actors(tmp_path):
    from agemem_gym.cli import main

    argv = ["eval", "--env", "AgeMem/Probe-Recall-v0", "--policy", "rag", "--episodes", "2", "--num-envs", "2"]
    argv += ["--no-plots", "--no-progress"]
    assert main([*argv, "--vector-mode", "ray", "--out", str(tmp_path / "ray")]) == 0
    assert main([*argv, "--out", str(tmp_path / "sync")]) == 0
    on_ray, sync = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("ray", "sync"))
    assert on_ray["config"]["vector_mode"] == "ray"
    assert on_ray["scores"] == sync["scores"] and on_ray["episodes"] == sync["episodes"]


def _rollouts(backend):
    pytest.importorskip("transformers")
    pytest.importorskip("torch")
    from agemem_gym.adapters.grpo.rollout import collect_groups, make_rollout_envs
    from agemem_gym.policies.llm.hf_policy import HFPolicy
    from agemem_gym.policies.llm.models import load_model

    model, tok = load_model("tiny-vocab")
    policy = HFPolicy(model, tok, max_new_tokens=8, temperature=1.0, seed=0)
    kwargs = {"tokenizer": tok, "tools_in_system_prompt": False, "max_rounds": 2, "num_distractors": 1}
    envs = make_rollout_envs("AgeMem/Probe-Recall-v0", 2, kwargs, backend=backend)  # the tokenizer travels too
    try:
        return collect_groups(envs, policy, task_ids=[4], group_size=2, seed=10)
    finally:
        envs.close()


def test_trainer_rollouts_on_ray_actors_match_in_process_rollouts():
    sync, on_ray = _rollouts("sync"), _rollouts("ray")
    assert [(t.reward, t.info) for t in on_ray.trajectories] == [(t.reward, t.info) for t in sync.trajectories]
    assert [(s.prompt_ids, s.response_ids) for s in on_ray.samples] == [
        (s.prompt_ids, s.response_ids) for s in sync.samples
    ]
    assert on_ray.rollout_logprobs == sync.rollout_logprobs and len(on_ray.samples) >= 4


def test_make_rollout_envs_checks_its_backend():
    from agemem_gym.adapters.grpo.rollout import make_rollout_envs

    with pytest.raises(InvalidConfig, match="backend must be one of sync, async, ray"):
        make_rollout_envs(PROBE, 1, backend="threads")
    with pytest.raises(InvalidConfig, match="asynchronous"):
        make_rollout_envs(PROBE, 1, None, True, backend="ray")


@pytest.mark.slow
def test_one_training_step_with_ray_env_workers(tmp_path):
    pytest.importorskip("torch")
    from agemem_gym.adapters.grpo.config import load_config
    from agemem_gym.adapters.grpo.trainer import train

    config = load_config(
        "cpu-smoke", num_steps=1, tasks_per_step=1, group_size=2, env_backend="ray", output_dir=str(tmp_path)
    )
    result = train(config, progress=False)
    assert len(result.metrics) == 1 and result.metrics[0]["step"] == 0
