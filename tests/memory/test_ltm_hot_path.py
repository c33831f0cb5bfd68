"""The search hot path's shortcuts: deferred metadata copies, the zero-query check after the walk,
float32 scores without numpy, and the readers-writer lock's uncontended fast path."""

import copy
import pickle
import threading
import time

import numpy as np
import pytest

from agemem_gym.memory import LongTermMemory, MemoryItem
from agemem_gym.memory.ltm_search import order_hits, unit_query
from agemem_gym.memory.rwlock import RWLock

DIM = 16


def _store(n=200, backend="hnsw"):
    ltm = LongTermMemory(lambda t: np.zeros((len(t), DIM), np.float32), backend=backend, dim=DIM, seed=1)
    vecs = np.random.default_rng(0).normal(size=(n, DIM)).astype(np.float32)
    ids = ltm.add_many([f"c{i}" for i in range(n)], [{"i": i, "tag": [i]} for i in range(n)], embeddings=vecs)
    return ltm, ids, vecs


def test_search_items_copy_metadata_on_read_and_keep_the_search_time_snapshot():
    ltm, ids, vecs = _store()
    hit = ltm.search_vector(vecs[7], 1)[0]
    assert hit.id == ids[7]
    ltm.update(ids[7], metadata={"i": "new", "extra": 1})  # after the search, before the read
    assert hit.metadata == {"i": 7, "tag": [7]}  # what the entry held when searched
    hit.metadata["i"] = "mutated"
    assert hit.metadata["i"] == "mutated"  # the item keeps its one copy
    assert ltm.get(ids[7]).metadata == {"i": "new", "tag": [7], "extra": 1}
    again = ltm.search_vector(vecs[7], 1)[0]
    assert again.metadata == {"i": "new", "tag": [7], "extra": 1}
    assert again == MemoryItem(ids[7], "c7", {"i": "new", "tag": [7], "extra": 1}, again.score)
    for clone in (pickle.loads(pickle.dumps(again)), copy.copy(again), copy.deepcopy(again)):
        assert clone == again and clone.metadata is not ltm._entries[ids[7]].metadata


def test_zero_query_on_the_graph_searches_the_first_basis_vector():
    ltm, _, _ = _store()
    assert ltm.stats()["hnsw_built"]
    zero = ltm.search_vector(np.zeros(DIM, np.float32), 5)
    basis = ltm.search_vector(unit_query(np.zeros(DIM, np.float32)), 5)
    assert [(m.id, m.score) for m in zero] == [(m.id, m.score) for m in basis]
    assert ltm.search_vector(np.zeros((1, DIM)), 5) == basis  # 2-d and float64 input still accepted
    with pytest.raises(Exception, match="dim"):
        ltm.search_vector(np.zeros(DIM + 1, np.float32), 5)


def test_order_hits_scores_equal_numpy_float32_for_rows_and_knn_output():
    rng = np.random.default_rng(3)
    d = np.concatenate([rng.random(5000) * 2, rng.random(500) * 1e-7, [0.0, 1.0, 2.0, 2.0**-30]]).astype(np.float32)
    d.sort()
    labels = np.arange(len(d), dtype=np.uint64)
    hits, scores = order_hits(labels, d)
    assert sorted(scores, reverse=True) == (1.0 - d).tolist()
    assert order_hits(labels[None, :], d[None, :]) == (hits, scores)


def test_uncontended_readers_share_and_a_queued_writer_blocks_new_readers():
    lock, events = RWLock(), []
    lock.acquire_read()
    lock.acquire_read()  # readers share the lock (fast path)
    lock.release_read()
    writer = threading.Thread(target=lambda: (lock.acquire_write(), events.append("w"), lock.release_write()))
    writer.start()
    while not lock._waiting_writers:
        time.sleep(0.001)
    reader = threading.Thread(target=lambda: (lock.acquire_read(), events.append("r"), lock.release_read()))
    reader.start()
    time.sleep(0.05)
    assert events == []  # the writer waits for the held read; the new reader waits for the writer
    lock.release_read()  # the last reader out wakes the writer
    writer.join(5)
    reader.join(5)
    assert events == ["w", "r"]
    with lock.read(), lock.read():  # the with blocks are reusable and nest for readers
        assert lock._readers == 2
    with pytest.raises(ValueError), lock.write():
        raise ValueError
    assert not lock._writer and lock._readers == 0  # released on the way out of an exception
