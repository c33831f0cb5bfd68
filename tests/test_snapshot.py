"""Memory-state snapshots (issue 20): restore gives byte-identical trajectories, for every id."""

from __future__ import annotations

import importlib
import io
import json
import multiprocessing
import pickle
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from agemem_gym import policies
from agemem_gym.error import InvalidConfig, ResetNeeded
from agemem_gym.graders.attribution import memory_attribution
from agemem_gym.memory import LongTermMemory, ltm_state
from agemem_gym.snapshot import EnvSnapshot
from agemem_gym.tools import format_answer
from tests.envs.utils import ALL_IDS, TESTABLE_IDS

SEED = 5
# every id runs in the default suite but ScienceWorld (a JVM start and a replay: ~6 s)
SLOW_IDS = ("AgeMem/SciWorld-v0",)


def _skip_reason(env_id: str) -> str | None:
    if env_id not in TESTABLE_IDS:
        return f"{env_id}: its optional engine package is not installed"
    if env_id == "AgeMem/SciWorld-v0" and shutil.which("java") is None:
        return "AgeMem/SciWorld-v0 needs `java` on PATH"
    return None


def _params(ids, marks=()):
    out = []
    for env_id in ids:
        reason = _skip_reason(env_id)
        extra = [pytest.mark.skip(reason=reason)] if reason else []
        out.append(pytest.param(env_id, marks=[*marks, *extra], id=env_id))
    return out


def _make(env_id: str, **kwargs: Any):
    return gym.make(env_id, privileged_info=True, **kwargs).unwrapped


def _record(step: tuple) -> bytes:
    """The step pickled without pickle's memo, so equal values give equal bytes.

    (With the memo, bytes also depend on which equal strings are one object, e.g. the
    interned ``"user"`` of a live env against the unpickled copies of a restored one.)
    """
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True  # no memo: every object is written out in full
    pickler.dump(tuple(step))
    return buffer.getvalue()


def _play(env, seed: int = SEED) -> tuple[list[Any], list[bytes], dict[int, EnvSnapshot]]:
    """Oracle episode; snapshots in Stage 1 (middle), right after Stage 2 and inside Stage 3.

    Returns the actions, one pickled record per step, and the snapshots by the number of
    actions taken when each was taken.
    """
    policy = policies.make("oracle")
    policy.reset()
    obs, info = env.reset(seed=seed)
    actions: list[Any] = []
    records: list[bytes] = []
    snaps: dict[int, EnvSnapshot] = {}
    stage3_at = None
    for _ in range(400):
        n = len(actions)
        if info["stage"] == 1 and n == 1:
            snaps[n] = env.snapshot()  # Stage 1, a message in
        if info["stage"] == 3 and stage3_at is None:
            stage3_at = n
            snaps[n] = env.snapshot()  # Stage 2 done (or skipped), the query just arrived
        if stage3_at is not None and n in (stage3_at + 1, stage3_at + 4):
            snaps[n] = env.snapshot()  # inside Stage 3 (world actions taken, for interactive tasks)
        action = policy.act(obs, info)
        actions.append(action)
        step = env.step(action)
        records.append(_record(step))
        obs, _, terminated, truncated, info = step
        if terminated or truncated:
            records.append(_record(env.reset()))  # the next episode draws from the restored RNG
            return actions, records, snaps
    raise AssertionError("the oracle episode did not end")


def _replay(env, snap: EnvSnapshot, actions: list[Any]) -> list[bytes]:
    env.restore(snap)
    return [_record(env.step(a)) for a in actions] + [_record(env.reset())]


def _check_env(env_id: str) -> None:
    env = _make(env_id)
    actions, records, snaps = _play(env)
    assert len(snaps) >= 2, f"{env_id}: too few snapshot points {sorted(snaps)}"
    fresh = _make(env_id)
    for n, snap in snaps.items():
        assert _replay(env, snap, actions[n:]) == records[n:], f"{env_id}: same env, snapshot after {n} actions"
        assert _replay(fresh, snap, actions[n:]) == records[n:], f"{env_id}: fresh env, snapshot after {n} actions"
    # restoring the same snapshot twice, after the env moved on, gives the same again
    first = min(snaps)
    assert _replay(env, snaps[first], actions[first:]) == records[first:]
    env.close()
    fresh.close()


@pytest.mark.parametrize(
    "env_id", _params([i for i in ALL_IDS if i not in SLOW_IDS]) + _params(SLOW_IDS, [pytest.mark.slow])
)
def test_restore_replays_identically(env_id):
    _check_env(env_id)


def test_restore_with_hnsw_graph():
    """The HNSW path: the graph is pickled, and env and restores keep building it alike."""
    env = _make("AgeMem/HotpotQA-v0", backend="hnsw")
    actions, records, snaps = _play(env)
    assert env.ltm.stats()["hnsw_built"]
    fresh = _make("AgeMem/HotpotQA-v0", backend="hnsw")
    for n, snap in snaps.items():
        assert _replay(fresh, snap, actions[n:]) == records[n:]
        assert _replay(env, snap, actions[n:]) == records[n:]


def _graph_levels(env) -> list[int]:
    return list(env.ltm._index.__getstate__()[0]["element_levels"])


def test_hnsw_graph_grows_alike_after_snapshot_and_restore():
    """hnswlib reseeds its level generator on load: the live env must continue like a restore."""
    env = _make("AgeMem/HotpotQA-v0", backend="hnsw")
    env.reset(seed=SEED)
    env.ltm.add_many([f"note {i}" for i in range(50)])
    snap = env.snapshot()
    texts = [f"later note {i} about topic {i % 7}" for i in range(300)]
    env.ltm.add_many(texts)
    fresh = _make("AgeMem/HotpotQA-v0", backend="hnsw")
    fresh.restore(snap)
    fresh.ltm.add_many(texts)
    assert _graph_levels(fresh) == _graph_levels(env)
    assert [m.id for m in fresh.ltm.search("topic 3", top_k=20)] == [m.id for m in env.ltm.search("topic 3", top_k=20)]


def test_snapshot_is_immutable_and_independent():
    env = _make("AgeMem/MemoryProbe-v0")
    env.reset(seed=SEED)
    env.step([{"name": "Add_memory", "arguments": {"content": "Ada keeps the spare key under the blue pot."}}])
    snap = env.snapshot()
    ids, context = env.ltm.ids(), [m.as_chat() for m in env.stm.messages]
    with pytest.raises(AttributeError):
        snap.stage = 3  # type: ignore[misc]
    payload = snap.payload
    env.step([{"name": "Add_memory", "arguments": {"content": "Something else entirely."}}])
    env.reset(seed=SEED + 1)  # mutate everything the snapshot came from
    assert snap.payload == payload and (snap.stage, snap.step) == (1, 1)
    env.restore(snap)
    assert env.ltm.ids() == ids and len(ids) == 1
    assert [m.as_chat() for m in env.stm.messages] == context
    env.ltm.check_invariants()
    assert pickle.loads(pickle.dumps(snap)) == snap


def test_restore_refuses_foreign_snapshots():
    hotpot = _make("AgeMem/HotpotQA-v0")
    with pytest.raises(ResetNeeded):
        hotpot.snapshot()
    hotpot.reset(seed=0)
    snap = hotpot.snapshot()
    with pytest.raises(InvalidConfig, match="HotpotQA-v0"):
        _make("AgeMem/MemoryProbe-v0").restore(snap)
    with pytest.raises(InvalidConfig, match="other settings"):
        _make("AgeMem/HotpotQA-v0", max_response_tokens=64).restore(snap)
    with pytest.raises(InvalidConfig, match="EnvSnapshot"):
        hotpot.restore(pickle.dumps(snap))  # type: ignore[arg-type]
    # a reconfigurable field is part of the state, not of the identity
    other = _make("AgeMem/HotpotQA-v0")
    other.configure(num_distractors=1)
    other.restore(snap)
    assert other.config.num_distractors == hotpot.config.num_distractors


def _finish_in_child(env_id: str, snap: EnvSnapshot, actions: list[Any]) -> list[bytes]:
    return _replay(_make(env_id), snap, actions)


def test_snapshot_survives_a_spawned_process():
    env_id = "AgeMem/HotpotQA-v0"
    env = _make(env_id)
    actions, records, snaps = _play(env)
    n = min(snaps)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        got = pool.apply(_finish_in_child, (env_id, pickle.loads(pickle.dumps(snaps[n])), actions[n:]))
    assert got == records[n:]


# ---------------------------------------------------------------- memory attribution
@pytest.mark.parametrize("env_id", ["AgeMem/MemoryProbe-v0", "AgeMem/HotpotQA-v0"])
def test_memory_attribution_of_the_oracle(env_id):
    env = _make(env_id)
    policy = policies.make("oracle")
    obs, info = env.reset(seed=SEED)
    policy.reset()
    retrieved: set[str] = set()
    infos = [info]
    while True:
        stage = info["stage"]
        obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
        infos.append(info)
        if stage == 3:  # the turn was taken in Stage 3: what it retrieved, seen from per-step info
            for call in info["turn"]["calls"]:
                if call["ok"] and call["memory_op"] is None:
                    retrieved.update(call["memory_ids"])
        if terminated or truncated:
            break
    assert all("memory_attribution" not in i for i in infos[:-1])  # final info only
    records = info["memory_attribution"]
    assert [r["id"] for r in records if r["live"]] == env.ltm.ids()
    assert {r["id"] for r in records if r["retrieved_in_stage3"]} == retrieved != set()
    for r in records:
        item = env.ltm.get(r["id"])
        assert r["stage"] == item.metadata["stage"] and r["added_step"] == item.metadata["step"]
        assert r["holds_gold_fact"] == bool(r["gold_facts"])
    assert any(r["holds_gold_fact"] and r["retrieved_in_stage3"] for r in records)
    assert info["success"] == 1.0


def test_memory_attribution_without_oracle_help():
    """A memory with no gold fact is marked so; an episode that retrieves nothing has no hits."""
    env = _make("AgeMem/MemoryProbe-v0")
    _, info = env.reset(seed=SEED)
    add = {"name": "Add_memory", "arguments": {"content": "The weather was nice on Tuesday."}}
    _, _, _, _, info = env.step([add])
    while True:
        _, _, terminated, truncated, info = env.step(format_answer("no idea"))
        if terminated or truncated:
            break
    (record,) = info["memory_attribution"]
    assert record["stage"] == 1 and record["added_step"] == 1 and record["live"]
    assert record["holds_gold_fact"] is False and record["retrieved_in_stage3"] is False


def test_bench_snapshot_small_run(monkeypatch, tmp_path, capsys):
    """benchmarks/bench_snapshot.py end to end on a small store (the full run is in its docstring)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    bench = importlib.import_module("bench_snapshot")
    out = tmp_path / "bench.json"
    assert bench.main(["--sizes", "200", "--repeats", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["n"], r["backend"]) for r in rows] == [(200, "hnsw"), (200, "exact")]
    assert "hnsw_load_ms" in rows[0] and "hnsw_load_ms" not in rows[1]
    assert "snapshot/np.copy" in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["hnsw", "exact"])
def test_ltm_state_round_trip_with_deletions_and_updates(backend):
    ltm = LongTermMemory(backend=backend, seed=3)
    ids = ltm.add_many([f"fact {i} about item {i % 5}" for i in range(40)], [{"k": i % 3} for i in range(40)])
    for mid in ids[::3]:
        ltm.delete(mid)
    ltm.update(ids[1], "item one was renamed", {"k": 9})
    state = pickle.dumps(ltm_state.capture(ltm))
    copy = LongTermMemory(backend=backend, seed=0)
    ltm_state.install(copy, pickle.loads(state))
    copy.check_invariants()
    for store in (ltm, copy):
        store.add_many([f"new {i}" for i in range(30)])
        store.delete(ids[2])
    assert copy.ids() == ltm.ids()
    assert [(m.id, m.content, m.metadata) for m in copy] == [(m.id, m.content, m.metadata) for m in ltm]
    for query, flt in (("item 3", None), ("renamed", {"k": 9}), ("new 7", None)):
        assert [m.id for m in copy.search(query, 5, flt)] == [m.id for m in ltm.search(query, 5, flt)]
    assert copy.stats() == ltm.stats()


def test_memory_attribution_records():
    """Live memories in insertion order; a retrieved-then-deleted memory is listed as not live."""
    ltm = LongTermMemory(seed=0)
    gold = ltm.add("The bridge was built in 1932 by the city.", {"stage": 1, "step": 2})
    noise = ltm.add("Lunch was pasta.", {"stage": 2, "step": 5, "updated_step": 6})
    facts = ("The bridge was built in 1932.", "It spans the river.")
    records = memory_attribution(ltm, {gold: "x", "mem_gone": "It spans the river."}, facts)
    assert [r["id"] for r in records] == [gold, noise, "mem_gone"]
    assert records[0] == {
        "id": gold,
        "added_step": 2,
        "stage": 1,
        "updated_step": None,
        "live": True,
        "retrieved_in_stage3": True,
        "holds_gold_fact": True,
        "gold_facts": [0],
    }
    assert records[1]["holds_gold_fact"] is False and records[1]["updated_step"] == 6
    assert not records[1]["retrieved_in_stage3"]
    assert records[2]["live"] is False and records[2]["gold_facts"] == [1] and records[2]["added_step"] is None
    assert memory_attribution(ltm, {}, None)[0]["holds_gold_fact"] is None  # no gold facts: unknown
