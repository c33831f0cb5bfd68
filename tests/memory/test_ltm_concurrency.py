"""The long-term memory under concurrent readers, a writer and a saver; shared memory across team agents."""

import threading
import time

import numpy as np
import pytest

from agemem_gym.memory import LongTermMemory


def _run(threads, timeout=120):
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"


@pytest.mark.parametrize("backend", ["exact", "hnsw"])
def test_reads_see_a_consistent_memory_while_a_writer_adds_updates_and_deletes(backend):
    ltm = LongTermMemory(backend=backend, seed=5)
    first = ltm.add_many([f"base fact {i}" for i in range(100)])
    errors: list[str] = []
    stop = threading.Event()

    def reader(k):
        rng = np.random.default_rng(k)
        while not stop.is_set():
            hits = ltm.search(f"fact {int(rng.integers(200))}", top_k=8)
            scores = [h.score for h in hits]
            if scores != sorted(scores, reverse=True) or len({h.id for h in hits}) != len(hits):
                errors.append(f"unordered or duplicate hits {hits}")
            for h in hits:
                if not h.content.startswith(("base fact", "new fact", "changed")):
                    errors.append(f"foreign content {h.content!r}")
            snapshot = list(ltm)  # iteration copies under the read lock
            if len({m.id for m in snapshot}) != len(snapshot):
                errors.append("iteration returned an id twice")
            for mid in first[:5]:
                item = ltm.get(mid)
                if item is not None and item.id != mid:
                    errors.append("get returned another id")

    def writer():
        try:
            ids = list(first)
            for i in range(400):
                ids.append(ltm.add(f"new fact {i}", {"i": i}))
                if i % 2 == 0:
                    ltm.delete(ids.pop(0))
                if i % 7 == 0:
                    ltm.update(ids[-1], f"changed {i}")
        finally:
            stop.set()

    _run([threading.Thread(target=reader, args=(k,)) for k in range(3)] + [threading.Thread(target=writer)])
    assert not errors, errors[:3]
    ltm.check_invariants()
    assert len(ltm) == 100 + 400 - 200


def test_snapshots_saved_during_writes_load_consistent(tmp_path):
    """``save`` copies the state under the read lock: every snapshot is one coherent state."""
    ltm = LongTermMemory(backend="hnsw", seed=1)
    ltm.add_many([f"fact {i}" for i in range(50)])
    done = threading.Event()
    paths = []

    def writer():
        try:
            i = 0
            while len(paths) < 6 and i < 50_000:  # keep writing until several saves overlapped
                mid = ltm.add(f"later fact {i}")
                i += 1
                if (i - 1) % 3 == 0:
                    ltm.delete(mid)
        finally:
            done.set()

    def saver():
        k = 0
        while not done.is_set() or k == 0:
            paths.append(ltm.save(tmp_path / f"snap{k}.npz"))
            k += 1

    _run([threading.Thread(target=writer), threading.Thread(target=saver)])
    sizes = []
    for path in paths:
        loaded = LongTermMemory.load(path)
        loaded.check_invariants()
        sizes.append(len(loaded))
        later = [int(m.content.split()[-1]) for m in loaded if m.content.startswith("later fact")]
        # a coherent state: fact i with i % 3 == 0 is deleted right after it is added, so at most
        # the newest one may be in a snapshot, and no fact is missing before the newest
        doomed = [i for i in later if i % 3 == 0]
        assert doomed in ([], [max(later)]), doomed
        if later:
            assert sorted(set(range(max(later) + 1)) - set(later)) == [i for i in range(max(later)) if i % 3 == 0]
    assert len(paths) >= 2 and max(sizes) > min(sizes)
    final = LongTermMemory.load(ltm.save(tmp_path / "final.npz"))
    assert final.ids() == ltm.ids()


def test_shared_memory_in_the_team_env_under_threads_with_updates_and_deletes():
    pytest.importorskip("pettingzoo")
    from agemem_gym.adapters.pettingzoo import make_parallel
    from agemem_gym.tools import format_tool_call

    env = make_parallel("TeamHotpotQA-3Readers-v0", max_entries=60)
    env.reset(seed=0)
    agents = ["reader_0", "reader_1", "reader_2"]
    outcomes: list[str] = []

    def work(agent):
        for i in range(40):
            env.run_turn(agent, format_tool_call([{"name": "Add_memory", "arguments": {"content": f"{agent} {i}"}}]))
            ids = env.ltm.ids()
            if ids:  # race the other agents for the oldest memory
                victim = ids[0]
                calls = [
                    {"name": "Update_memory", "arguments": {"memory_id": victim, "content": f"{agent} was here"}},
                    {"name": "Delete_memory", "arguments": {"memory_id": victim, "confirmation": True}},
                ]
                env.run_turn(agent, format_tool_call(calls))
                outcomes.append(env._state[agent].stm.messages[-1].content)

    _run([threading.Thread(target=work, args=(a,)) for a in agents])
    env.ltm.check_invariants()
    assert len(env.ltm) <= 60
    # every racing delete either deleted or was told the id is gone; nothing else
    assert all(("memory_deleted" in o) or ("unknown memory_id" in o) for o in outcomes)
    stats = {a: env._state[a].record for a in agents}
    deleted = sum(r.deletes for r in stats.values())
    added = sum(len(r.added) for r in stats.values())
    assert added - deleted == len(env.ltm)


def test_a_writer_in_a_loop_cannot_starve_readers_nor_readers_a_writer():
    """Each side gets the lock within a few turns of the other side, which re-acquires it in a tight loop."""
    from agemem_gym.memory.rwlock import RWLock

    lock = RWLock()
    stop = threading.Event()
    counts = {"read": 0, "write": 0}

    def spin(side):
        while not stop.is_set():
            with getattr(lock, side)():
                counts[side] += 1

    def others_while_taking(side, other):
        """How often ``other`` (spinning in a thread) got the lock while ``side`` took it 20 times."""
        spinner = threading.Thread(target=spin, args=(other,))
        spinner.start()
        while counts[other] == 0:  # the spinner is in its loop
            time.sleep(0.001)
        before = counts[other]
        for _ in range(20):
            with getattr(lock, side)():
                pass
        during = counts[other] - before
        stop.set()
        spinner.join()
        stop.clear()
        return during

    # fair hand-over: a waiting reader goes next when the writer releases, and a waiting
    # writer blocks new readers; an unfair lock lets the spinner run thousands of times
    assert others_while_taking("read", "write") <= 60
    assert others_while_taking("write", "read") <= 60
