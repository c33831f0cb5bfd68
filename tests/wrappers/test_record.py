"""RecordEpisode writes what happened; read_episode rebuilds it exactly."""

import json
import pickle

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

import agemem_gym  # noqa: F401
from agemem_gym import policies
from agemem_gym.cli import main as cli_main
from agemem_gym.error import DataFormatError, InvalidConfig
from agemem_gym.tools import format_action, format_answer, format_tool_call
from agemem_gym.wrappers.record import SCHEMA, RecordEpisode, read_episode, recording_env_fns
from tests.test_interactive import Corridor

HOTPOT = "AgeMem/HotpotQA-v0"


def _live(env):
    base = env.unwrapped
    ltm = [(m.id, m.content, m.metadata) for m in base.ltm]
    ctx = [(m.role, m.kind, m.stage, m.tokens, m.content) for m in base.stm.messages]
    return ltm, ctx


def _play(env, act, seed, options=None, max_steps=200):
    """Run one episode; return live (ltm, context) snapshots after reset and every step, and the steps."""
    obs, info = env.reset(seed=seed, options=options)
    snaps, steps = [_live(env)], [(obs, info)]
    for _ in range(max_steps):
        out = env.step(act(obs, info, len(steps)))
        snaps.append(_live(env))
        steps.append(out)
        obs, info = out[0], out[4]
        if out[2] or out[3]:
            break
    return snaps, steps


def _policy(name, **kw):
    policy = policies.make(name, **kw)
    return lambda obs, info, t: policy.act(obs, info)


def _assert_replay_matches(episode, snaps):
    assert len(episode.steps) + 1 == len(snaps)
    for t, (ltm, ctx) in enumerate(snaps):
        assert [(m.id, m.content, m.metadata) for m in episode.ltm(t)] == ltm, f"LTM differs after step {t}"
        got = [(m.role, m.kind, m.stage, m.tokens, m.content) for m in episode.context(t)]
        assert got == ctx, f"context differs after step {t}"


@pytest.mark.parametrize("policy", ["oracle", "store-all", "random"])
def test_replayed_ltm_and_context_equal_the_live_ones(tmp_path, policy):
    env = RecordEpisode(gym.make(HOTPOT, privileged_info=True), tmp_path)
    snaps, steps = _play(env, _policy(policy, **({"seed": 3} if policy == "random" else {})), seed=3)
    env.close()
    episode = read_episode(env.paths[0])
    _assert_replay_matches(episode, snaps)
    assert episode.complete and episode.final["turns"] == len(steps) - 1
    assert episode.final["memory_quality"] == steps[-1][4]["memory_quality"]
    assert [s.reward for s in episode.steps] == [s[1] for s in steps[1:]]


def test_every_tool_invalid_calls_and_results(tmp_path):
    """Update, delete, summary, filter, a bad id and malformed JSON, with their results."""
    env = RecordEpisode(gym.make(HOTPOT, num_distractors=1), tmp_path)
    add = format_tool_call([{"name": "Add_memory", "arguments": {"content": "The sky is blue.", "metadata": {"k": 1}}}])
    script = [
        add,
        '<think>oops</think><tool_call>[{"name": "Add_memory", "arguments": {</tool_call>',
        "no tags at all",
    ]

    def act(obs, info, t):
        if t <= len(script):
            return script[t - 1]
        mid = env.unwrapped.ltm.ids()[0] if len(env.unwrapped.ltm) else "mem_00000000"
        calls = {
            4: [{"name": "Update_memory", "arguments": {"memory_id": mid, "content": "The sky is grey."}}],
            5: [{"name": "Summary_context", "arguments": {"span": "all"}}],
            6: [{"name": "Update_memory", "arguments": {"memory_id": "mem_ffffffff", "content": "x"}}],
        }.get(t)
        if calls:
            return format_tool_call(calls)
        if info["stage"] == 2:
            return format_tool_call([{"name": "Filter_context", "arguments": {"criteria": obs[-1]["content"]}}])
        if info["stage"] == 3 and len(env.unwrapped.ltm):
            return format_tool_call([{"name": "Delete_memory", "arguments": {"memory_id": mid, "confirmation": True}}])
        return format_answer("ok")

    snaps, _ = _play(env, act, seed=0, max_steps=40)
    env.close()
    episode = read_episode(env.paths[0])
    _assert_replay_matches(episode, snaps)
    s = {step.t: step for step in episode.steps}
    assert s[1].calls[0].ok and s[1].calls[0].result.startswith("[memory tool result]\nmemory_added: mem_")
    assert s[2].kind == "invalid" and s[2].errors and not s[2].calls
    assert s[3].kind == "invalid" and "[format error]" in s[3].errors[0]
    assert s[4].raw["ltm"]["update"][0]["content"] == "The sky is grey."
    assert "summary_context_applied" in s[5].calls[0].result and s[5].removed
    assert s[6].calls[0].ok is False and s[6].errors == ()  # a failed call's message is its result
    deletes = [step for step in episode.steps if step.raw.get("ltm", {}).get("delete")]
    assert deletes and deletes[0].stage == 3
    filters = [step for step in episode.steps if step.calls and step.calls[0].name == "Filter_context"]
    assert filters and any(step.removed for step in filters)


def test_results_survive_when_the_turn_ends_stage_one(tmp_path):
    env = RecordEpisode(gym.make(HOTPOT, stage1_mode="single", max_rounds=1, num_distractors=0), tmp_path)
    add = format_tool_call([{"name": "Add_memory", "arguments": {"content": "kept"}}])
    snaps, _ = _play(env, lambda obs, info, t: add if t == 1 else format_answer("x"), seed=0)
    env.close()
    episode = read_episode(env.paths[0])
    _assert_replay_matches(episode, snaps)
    first = episode.steps[0]
    # the context reset removed the tool message, but the env keeps the step's results
    assert not first.raw.get("results_lost") and first.calls[0].ok
    assert first.calls[0].result.startswith("[memory tool result]\nmemory_added: mem_")
    assert [m.content for m in episode.ltm(1)] == ["kept"]


def test_interactive_world_is_recorded(tmp_path):
    env = RecordEpisode(Corridor(num_distractors=1), tmp_path)
    turns = [format_answer("ok"), format_answer("ok")] + [format_action("right")] * 3
    snaps, steps = _play(env, lambda obs, info, t: turns[t - 1], seed=0)
    env.close()
    episode = read_episode(env.paths[0])
    _assert_replay_matches(episode, snaps)
    assert episode.steps[-1].raw["parsed"]["act"] == "right" and episode.final["success"] == 1.0


def test_wrapper_returns_exactly_what_the_env_returns(tmp_path):
    act = _policy("random", seed=5)
    plain = _play(gym.make(HOTPOT), act, seed=5)[1]
    recorded = _play(RecordEpisode(gym.make(HOTPOT), tmp_path), _policy("random", seed=5), seed=5)[1]
    assert len(plain) == len(recorded)
    for x, y in zip(plain, recorded):
        assert data_equivalence(x, y, exact=True)


def test_same_seed_gives_byte_identical_files(tmp_path):
    files = []
    for run in ("a", "b"):
        env = RecordEpisode(gym.make(HOTPOT, privileged_info=True), tmp_path / run, metadata={"policy": "oracle"})
        _play(env, _policy("oracle"), seed=11)
        env.close()
        files.append(env.paths[0].read_bytes())
    assert files[0] == files[1]
    assert b"step_s" not in files[0]  # no wall clock unless asked for


def test_header_holds_schema_config_and_gold_data(tmp_path):
    env = RecordEpisode(gym.make(HOTPOT), tmp_path, metadata={"policy": "store-all", "group": 2})
    env.reset(seed=1, options={"task_id": 4})
    task = env.unwrapped.task
    env.close()
    header = json.loads(env.paths[0].read_text().splitlines()[0])
    assert header["schema"] == SCHEMA and header["env_id"] == HOTPOT and header["seed"] == 1
    assert header["options"] == {"task_id": 4} and header["metadata"] == {"policy": "store-all", "group": 2}
    assert header["task"] == {
        "task_id": task.task_id,
        "query": task.query,
        "answers": list(task.answers),
        "facts": list(task.facts),
    }
    assert header["budget"] == env.unwrapped.config.max_context_tokens
    assert env.paths[0].name == f"episode-00000-{task.task_id}.jsonl"
    episode = read_episode(env.paths[0])
    assert not episode.complete and episode.end == {"type": "end", "complete": False, "steps": 0, "return": 0.0}


def test_timing_is_opt_in_and_separate(tmp_path):
    env = RecordEpisode(gym.make(HOTPOT), tmp_path, record_timing=True)
    env.reset(seed=0)
    env.step(format_answer("ok"))
    env.close()
    step = read_episode(env.paths[0]).steps[0]
    assert step.raw["timing"]["step_s"] >= 0.0


def test_episode_trigger_and_refusing_to_overwrite(tmp_path):
    env = RecordEpisode(gym.make(HOTPOT, num_distractors=0), tmp_path, episode_trigger=lambda i: i % 2 == 0)
    for seed in range(3):
        env.reset(seed=seed)
    env.close()
    assert [p.name.split("-")[1] for p in env.paths] == ["00000", "00002"]
    again = RecordEpisode(gym.make(HOTPOT), tmp_path)
    with pytest.raises(InvalidConfig, match="already exists"):
        again.reset(seed=0)
    again.close()
    again = RecordEpisode(gym.make(HOTPOT), tmp_path, overwrite=True)
    again.reset(seed=0)
    again.close()


def test_bad_arguments_raise():
    with pytest.raises(InvalidConfig, match="MemoryEnv"):
        RecordEpisode(gym.make("CartPole-v1"), "x")
    with pytest.raises(InvalidConfig, match="name_prefix"):
        RecordEpisode(gym.make(HOTPOT), "x", name_prefix="a/b")
    with pytest.raises(InvalidConfig, match="name_prefix"):
        recording_env_fns(HOTPOT, 2, "x", name_prefix="y")


def test_pickles_mid_episode_and_both_copies_keep_working(tmp_path):
    env = RecordEpisode(gym.make(HOTPOT), tmp_path / "orig")
    env.reset(seed=2)
    env.step(format_answer("ok"))
    clone = pickle.loads(pickle.dumps(env))
    x, y = env.step(format_answer("ok")), clone.step(format_answer("ok"))
    assert data_equivalence(x, y, exact=True)
    clone.directory = tmp_path / "clone"
    clone.reset(seed=2)  # the copy records from its next episode on
    clone.close()
    env.close()
    assert len(read_episode(env.paths[0]).steps) == 2
    assert read_episode(clone.paths[-1]).header["episode"] == 1


@pytest.mark.parametrize("vector", [SyncVectorEnv, AsyncVectorEnv])
def test_vector_env_sub_envs_write_their_own_files(tmp_path, vector):
    fns = recording_env_fns(HOTPOT, 2, tmp_path, env_kwargs={"num_distractors": 0})
    # text observations have no fixed shape: async workers send them through pipes
    envs = vector(fns) if vector is SyncVectorEnv else vector(fns, shared_memory=False)
    envs.reset(seed=[0, 1])
    for _ in range(3):
        envs.step([format_answer("ok")] * 2)
    envs.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n.split("-")[0] for n in names] == ["env0", "env1"]
    for path in tmp_path.iterdir():
        episode = read_episode(path)
        assert len(episode.steps) == 3 and not episode.complete


def test_reader_rejects_other_files_and_tolerates_a_cut_last_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "header", "schema": "agemem-episode/2"}\n')
    with pytest.raises(DataFormatError, match="not supported"):
        read_episode(bad)
    bad.write_text('{"hello": 1}\n')
    with pytest.raises(DataFormatError, match="not an agemem episode"):
        read_episode(bad)
    with pytest.raises(DataFormatError, match="no such file"):
        read_episode(tmp_path / "missing.jsonl")
    env = RecordEpisode(gym.make(HOTPOT, privileged_info=True), tmp_path / "ok")
    _play(env, _policy("oracle"), seed=0)
    env.close()
    lines = env.paths[0].read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:5]) + lines[5][:40])  # a crash mid-write
    episode = read_episode(cut)
    assert len(episode.steps) == 4 and episode.end is None and not episode.complete
    broken = json.loads(lines[1])
    broken["ltm"] = {"delete": ["mem_00000000"]}
    cut.write_text(lines[0] + json.dumps(broken) + "\n")
    with pytest.raises(DataFormatError, match="unknown memory"):
        read_episode(cut)


def test_agemem_run_record_then_view(tmp_path, capsys):
    rec = tmp_path / "rec"
    args = ["run", HOTPOT, "--policy", "oracle", "--episodes", "2", "--no-progress", "--record", str(rec)]
    assert cli_main(args) == 0
    files = sorted(rec.glob("*.jsonl"))
    assert len(files) == 2 and all(read_episode(f).complete for f in files)
    assert read_episode(files[0]).header["metadata"] == {"policy": "oracle"}
    out = tmp_path / "page.html"
    assert cli_main(["view", str(rec), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!doctype html>") and "wrote" in capsys.readouterr().out
    assert cli_main(["view", str(tmp_path / "nothing.jsonl"), "--out", str(out)]) == 2


def test_calls_and_memory_ids_come_from_the_env_not_from_the_result_text(tmp_path):
    """A memory whose text looks like an id listing: the recorded ids are still the real ones."""
    env = RecordEpisode(gym.make(HOTPOT, max_rounds=10), tmp_path)
    env.reset(seed=0)
    tricky = "Decoy text (Memory ID: mem_deadbeef) inside a memory."
    env.step(format_tool_call([{"name": "Add_memory", "arguments": {"content": tricky}}]))
    info = env.step(format_tool_call([{"name": "Retrieve_memory", "arguments": {"query": "decoy text memory"}}]))[4]
    env.close()
    real = env.unwrapped.ltm.ids()
    step = read_episode(env.paths[0]).steps[1]
    assert "mem_deadbeef" in step.calls[0].result  # the text holds both ids...
    assert step.calls[0].retrieved == tuple(real) == tuple(info["turn"]["calls"][0]["memory_ids"])  # ...the record one
    assert step.raw["calls"] == [
        {
            "name": c["name"],
            "arguments": c["arguments"],
            "ok": c["ok"],
            "result": c["message"],
            "retrieved": c["memory_ids"],
        }
        for c in info["turn"]["calls"]
    ]


def test_a_cut_turn_that_ends_stage_one_keeps_the_envs_text_and_errors(tmp_path):
    """The turn and its results leave the context within the step; the record still has them."""
    env = RecordEpisode(gym.make(HOTPOT, stage1_mode="single", max_rounds=1, num_distractors=0), tmp_path)
    env.reset(seed=0)
    add = format_tool_call([{"name": "Add_memory", "arguments": {"content": "kept"}}])
    info = env.step(add + "<think>" + "rambling " * 20_000 + "</think>")[4]
    env.close()
    step = read_episode(env.paths[0]).steps[0]
    assert info["turn"]["cut"] and step.errors == tuple(info["turn"]["errors"])
    assert step.errors[0].startswith("[format error] the turn exceeded max_response_tokens")
    assert step.action == env.unwrapped.last_turn.text and len(step.action) < 20_000  # the cut text
    assert step.calls[0].ok and step.calls[0].result.startswith("[memory tool result]\nmemory_added: ")
    assert not any(m.kind == "turn" for m in step.added)  # the context reset took the turn away


def test_turn_text_with_lone_surrogates_is_recorded_and_read_back(tmp_path):
    env = RecordEpisode(gym.make(HOTPOT), tmp_path)
    env.reset(seed=0)
    env.step("<think>odd \udfff text</think><answer>ok</answer>")
    env.close()
    step = read_episode(env.paths[0]).steps[0]
    assert step.action == "<think>odd \udfff text</think><answer>ok</answer>"
    assert step.raw["parsed"]["think"] == "odd \udfff text"


def test_any_structured_action_is_recorded(tmp_path):
    """Cycles, deep nesting and integers too long to write become placeholders, not crashes."""
    cyclic = {"name": "Add_memory", "arguments": {"content": "x"}}
    cyclic["self"] = cyclic
    deep = []
    for _ in range(500):
        deep = [deep]
    env = RecordEpisode(gym.make(HOTPOT, max_rounds=10), tmp_path)
    env.reset(seed=0)
    for action in (cyclic, deep, {"answer": 10**5000}, {object(): 1}):
        env.step(action)
    env.close()
    steps = read_episode(env.paths[0]).steps
    assert [step.kind for step in steps] == ["tool_call", "invalid", "invalid", "invalid"]
    assert "nested deeper than 64" in json.dumps(steps[0].raw["structured"])
    assert "nested deeper than 64" in json.dumps(steps[1].raw["structured"])
    assert steps[2].raw["structured"] == {"answer": f"<int of {(10**5000).bit_length()} bits>"}
    assert steps[3].raw["structured"] == {"<object>": 1}
