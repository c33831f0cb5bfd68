"""The LTM's search hot paths: the metadata inverted index, exact scoring and result building.

Filtered searches must equal a brute-force filter (``matches`` over every entry, then exact
cosine ranking) after any mix of adds, updates, deletes, compactions, saves and loads.
"""

import dataclasses
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agemem_gym.error import InvalidConfig
from agemem_gym.memory import LongTermMemory, MemoryItem
from agemem_gym.memory.ltm import _Entry, _hits, _item
from agemem_gym.memory.ltm_meta import MetadataIndex, check_metadata, matches
from agemem_gym.memory.ltm_search import (
    best_k,
    filter_on_graph,
    order_hits,
    score_rows,
    score_rows_reference,
    unit_query,
    unit_rows,
)

DIM = 16


def _NO_EMBEDDER(texts):  # noqa: N802 - a module-level function, so stores pickle; vectors are passed
    return np.zeros((len(texts), DIM), np.float32)


def brute_force(ltm, query, wanted, k):
    """Reference search: filter every entry with ``matches``, rank by exact cosine, ties to the older."""
    q = np.asarray(query, np.float64)
    q = q / np.linalg.norm(q)
    order = {mid: i for i, mid in enumerate(ltm.ids())}  # insertion order == row-label order
    hits = [(float(ltm.embedding(m.id) @ q), m.id) for m in ltm if matches(m.metadata, wanted)]
    hits.sort(key=lambda h: (-h[0], order[h[1]]))
    return hits[:k]


def assert_same_as_brute_force(ltm, query, wanted, k):
    got = ltm.search_vector(query, k, wanted)
    want = brute_force(ltm, query, wanted, k)
    assert len(got) == len(want)
    assert all(matches(m.metadata, wanted) for m in got)
    # scores agree to rounding; ids agree wherever the scores are not a near-tie
    np.testing.assert_allclose([m.score for m in got], [s for s, _ in want], atol=1e-5)
    for m, (s, mid) in zip(got, want):
        assert m.id == mid or abs(m.score - s) < 1e-5
    if len(want) < k:  # every match was returned
        assert {m.id for m in got} == {mid for _, mid in want}


# ---------------------------------------------------------------- the inverted index
METAS = [
    {"cat": "a", "n": 1},
    {"cat": "b", "n": 1.0},
    {"cat": "a", "n": True, "tags": ["x", "y"]},
    {"cat": "c", "n": 2, "tags": ["x"]},
    {"cat": "a", "nested": {"k": [1, 2]}},
    {"cat": None, "n": float("nan")},
    {"n": 0, "flag": False},
    {},
]
FILTERS = [
    {"cat": "a"},
    {"cat": "b"},
    {"n": 1},  # equals 1, 1.0 and True, as == does
    {"n": True},
    {"n": 0},
    {"flag": 0},
    {"n": float("nan")},  # nan equals nothing
    {"n": math.nan},
    {"tags": ["x", "y"]},  # unhashable values compare with ==
    {"tags": ["x"]},
    {"nested": {"k": [1, 2]}},
    {"cat": None},
    {"cat": "a", "n": 1},
    {"cat": "a", "tags": ["x", "y"]},
    {"missing": 1},
    {"cat": "zzz"},
]


def _filled(backend, n=80, seed=0):
    rng = np.random.default_rng(seed)
    ltm = LongTermMemory(_NO_EMBEDDER, backend=backend, dim=DIM, seed=seed, rebuild_fraction=0.3)
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    ids = ltm.add_many([f"e{i}" for i in range(n)], [METAS[i % len(METAS)] for i in range(n)], embeddings=vecs)
    return ltm, ids, rng


@pytest.mark.parametrize("backend", ["exact", "hnsw", "auto"])
def test_filtered_search_equals_brute_force_after_update_delete_compact_and_load(backend, tmp_path):
    ltm, ids, rng = _filled(backend)
    query = rng.normal(size=DIM)

    def check(store):
        store.check_invariants()
        for wanted in FILTERS:
            for k in (1, 3, 100):
                assert_same_as_brute_force(store, query, wanted, k)

    check(ltm)
    ltm.update(ids[0], metadata={"cat": "b", "tags": ["x", "y"]})  # a value changes bucket
    ltm.update(ids[2], metadata={"tags": "now a string"})  # unhashable -> hashable
    ltm.update(ids[3], metadata={"n": [2]})  # hashable -> unhashable
    ltm.update(ids[4], "new content", metadata={"extra": 1})
    check(ltm)
    rows_before = ltm.stats()["rows"]
    for mid in ids[5:45]:  # past rebuild_fraction: compacts and renumbers the rows
        ltm.delete(mid)
    assert ltm.stats()["rows"] < rows_before
    check(ltm)
    ltm.add("late", {"cat": "a", "n": 1}, embedding=rng.normal(size=DIM))
    check(ltm)
    loaded = LongTermMemory.load(ltm.save(tmp_path / "m.npz"), embedder=_NO_EMBEDDER)
    check(loaded)
    check(pickle.loads(pickle.dumps(ltm)))
    for wanted in FILTERS:
        assert [m.id for m in loaded.search_vector(query, 5, wanted)] == [
            m.id for m in ltm.search_vector(query, 5, wanted)
        ]
    ltm.clear()
    assert ltm.search_vector(query, 3, {"cat": "a"}) == []
    check(ltm)


def test_check_invariants_catches_a_stale_metadata_index():
    ltm, ids, _ = _filled("exact", n=8)
    ltm._meta.remove(ltm._entries[ids[0]].label, {"cat": "a"})
    with pytest.raises(AssertionError, match="metadata index"):
        ltm.check_invariants()


def test_index_buckets_cache_sorted_arrays_until_they_change():
    index = MetadataIndex()
    for label in range(200):
        index.add(label, {"cat": label % 2})
    evens = index.lookup({"cat": 0}, lambda label: {})
    arr = index.as_array(evens)
    assert arr.tolist() == list(range(0, 200, 2)) and index.as_array(evens) is arr
    index.add(500, {"cat": 0})
    assert index.as_array(index.lookup({"cat": 0}, lambda label: {}))[-1] == 500
    index.remove(500, {"cat": 0})
    assert index.as_array(index.lookup({"cat": 0}, lambda label: {})).tolist() == list(range(0, 200, 2))
    clone = pickle.loads(pickle.dumps(index))  # the id-keyed cache is not carried over
    assert clone._arrays == {} and clone.snapshot() == index.snapshot()


# ---------------------------------------------------------------- property tests
_VALUES = st.one_of(
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 2),
    st.sampled_from([0.0, 1.0, True, False, None, float("nan")]),
    st.lists(st.sampled_from(["x", "y"]), max_size=2),
)
_META = st.dictionaries(st.sampled_from(["cat", "n", "tags"]), _VALUES, max_size=3)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), _META),
        st.tuples(st.just("update"), st.integers(0, 10**6), _META),
        st.tuples(st.just("delete"), st.integers(0, 10**6)),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, wanted=_META.filter(bool), seed=st.integers(0, 2**16), backend=st.sampled_from(["exact", "hnsw"]))
def test_random_operations_keep_filtered_search_equal_to_brute_force(ops, wanted, seed, backend):
    rng = np.random.default_rng(seed)
    ltm = LongTermMemory(_NO_EMBEDDER, backend=backend, dim=DIM, seed=seed, rebuild_fraction=0.25)
    ids: list[str] = []
    for op in ops:
        if op[0] == "add":
            ids.append(ltm.add("x", op[1], embedding=rng.normal(size=DIM)))
        elif ids and op[0] == "update":
            ltm.update(ids[op[1] % len(ids)], metadata=op[2])
        elif ids:
            ltm.delete(ids[op[1] % len(ids)])
    ltm.check_invariants()
    query = rng.normal(size=DIM)
    for k in (1, 4, 1000):
        assert_same_as_brute_force(ltm, query, wanted, k)


# ---------------------------------------------------------------- the graph plan for broad filters
def test_broad_filters_walk_the_graph_and_keep_recall():
    n, k = 3000, 10
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(30, DIM))
    data = (centers[rng.integers(0, 30, n)] + 0.5 * rng.normal(size=(n, DIM))).astype(np.float32)
    ltm = LongTermMemory(_NO_EMBEDDER, backend="hnsw", dim=DIM)
    cats = ["common" if i % 20 else "rare" for i in range(n)]
    ltm.add_many([str(i) for i in range(n)], [{"cat": c} for c in cats], embeddings=data)
    assert filter_on_graph(cats.count("common"), n, k)  # 2850 candidates of 3000: the graph plan
    assert not filter_on_graph(cats.count("rare"), n, k)  # 150: exact scoring
    hits = total = 0
    for q in centers[:20] + 0.5 * rng.normal(size=(20, DIM)):
        for cat in ("common", "rare"):
            got = ltm.search_vector(q, k, {"cat": cat})
            assert len(got) == k and all(m.metadata["cat"] == cat for m in got)
            assert [m.score for m in got] == sorted((m.score for m in got), reverse=True)
            want = {mid for _, mid in brute_force(ltm, q, {"cat": cat}, k)}
            hits += len(want & {m.id for m in got})
            total += k
    assert hits / total >= 0.95


def test_filter_plan_crossover():
    assert not filter_on_graph(10, 10**6, 10)  # never the graph with no more candidates than k
    assert not filter_on_graph(1000, 10_000, 10)
    assert filter_on_graph(9000, 10_000, 10)
    assert filter_on_graph(5000, 10_000, 10, factor=100.0)
    assert not filter_on_graph(5000, 10_000, 10, factor=10_000.0)


# ---------------------------------------------------------------- kernels and helpers
def _old_unit(vectors):
    """The normalisation the store used before (np.linalg.norm per row)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    zero = norms[:, 0] == 0.0
    out = vectors / np.where(norms == 0.0, 1.0, norms)
    out[zero] = 0.0
    out[zero, 0] = 1.0
    return out


def test_unit_rows_and_unit_query_match_the_linalg_normalisation_bit_for_bit():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(50, 384)).astype(np.float32) * rng.uniform(0.01, 100, size=(50, 1)).astype(np.float32)
    vecs[7] = 0.0
    assert np.array_equal(unit_rows(vecs), _old_unit(vecs))
    for row in vecs:
        assert np.array_equal(unit_query(row), _old_unit(row[None, :])[0])
    assert unit_query(np.zeros(4, np.float32)).tolist() == [1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("n_rows", [0, 1, 7, 300])
def test_score_rows_kernel_agrees_with_reference(n_rows):
    rng = np.random.default_rng(n_rows)
    vectors = unit_rows(rng.normal(size=(500, 384)))
    rows = np.sort(rng.choice(500, n_rows, replace=False)).astype(np.int64)
    query = unit_rows(rng.normal(size=(1, 384)))[0]
    got, want = score_rows(vectors, rows, query), score_rows_reference(vectors, rows, query)
    assert got.dtype == np.float32 and got.shape == (n_rows,)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # a strided query (a column of a matrix) gives the same scores
    strided = np.repeat(query[:, None], 2, axis=1)[:, 0]
    np.testing.assert_allclose(score_rows(vectors, rows, strided), want, atol=1e-5)


def test_best_k_orders_ties_by_label_and_skips_dead_rows():
    scores = np.array([0.5, 0.9, 0.5, -np.inf, 0.9, 0.1], np.float32)
    labels = np.array([10, 11, 12, 13, 14, 15])
    assert best_k(scores, labels, 3) == ([11, 14, 10], pytest.approx([0.9, 0.9, 0.5]))
    assert best_k(scores, labels, 5)[0] == [11, 14, 10, 12, 15]
    assert best_k(scores, labels, 0) == ([], [])


def test_order_hits_sorts_only_rows_with_ties():
    labels = np.array([9, 3, 5, 4], np.uint64)
    assert order_hits(labels, np.array([0.1, 0.2, 0.3, 0.4], np.float32))[0] == [9, 3, 5, 4]
    got, scores = order_hits(labels, np.array([0.1, 0.2, 0.2, 0.4], np.float32))
    assert got == [9, 3, 5, 4] and scores == sorted(scores, reverse=True)
    got, _ = order_hits(np.array([9, 5, 3], np.uint64), np.array([0.1, 0.2, 0.2], np.float32))
    assert got == [9, 3, 5]


def test_search_items_equal_normally_built_items():
    entries = {i: _Entry(f"mem_{i:08x}", f"c{i}", {"k": [i]}, i) for i in range(3)}
    items = _hits(entries, [2, 0], [0.75, 0.5])
    assert items == [MemoryItem("mem_00000002", "c2", {"k": [2]}, 0.75), _item(entries[0], 0.5)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        items[0].score = 1.0  # type: ignore[misc]
    items[0].metadata["k"] = "changed"  # a copy of the metadata dict
    assert entries[2].metadata == {"k": [2]}
    assert repr(items[1]) == "MemoryItem(id='mem_00000000', content='c0', metadata={'k': [0]}, score=0.5)"


def test_check_metadata_fast_path_and_rejections():
    flat = {"a": 1, "b": "x", "c": None, "d": 1.5, "e": True}
    assert check_metadata(flat) == flat and check_metadata(flat) is not flat
    assert check_metadata({"n": {"deep": [1, 2]}}) == {"n": {"deep": [1, 2]}}
    assert check_metadata(None) == {}
    for bad in ([1], {"x": object()}, {1: "int key"}, {"x": [object()]}):
        with pytest.raises(InvalidConfig, match="metadata"):
            check_metadata(bad)


@pytest.mark.parametrize("backend", ["exact", "hnsw"])
def test_filtered_searches_during_writes_only_return_matches(backend):
    import threading

    rng = np.random.default_rng(5)
    ltm = LongTermMemory(_NO_EMBEDDER, backend=backend, dim=DIM, seed=5, rebuild_fraction=0.3)
    ltm.add_many(
        [f"s{i}" for i in range(100)], [{"cat": i % 3} for i in range(100)], embeddings=rng.normal(size=(100, DIM))
    )
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(cat):
        try:
            q = np.random.default_rng(cat).normal(size=DIM)
            while not stop.is_set():
                for m in ltm.search_vector(q, 5, {"cat": cat}):
                    assert m.metadata["cat"] == cat
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    def writer():
        try:
            ids = ltm.ids()
            for i in range(300):
                ids.append(ltm.add(f"w{i}", {"cat": i % 3}, embedding=rng.normal(size=DIM)))
                ltm.update(ids[(7 * i) % len(ids)], metadata={"cat": (i + 1) % 3})
                if i % 2:
                    ltm.delete(ids[(11 * i) % len(ids)])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            stop.set()

    threads = [threading.Thread(target=reader, args=(c,)) for c in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    ltm.check_invariants()
    for cat in range(3):
        assert_same_as_brute_force(ltm, np.ones(DIM), {"cat": cat}, 1000)


def test_a_loaded_auto_store_searches_its_graph_and_follows_ef_changes(tmp_path):
    rng = np.random.default_rng(3)
    ltm = LongTermMemory(_NO_EMBEDDER, backend="auto", dim=DIM, auto_threshold=50)
    ids = ltm.add_many(
        [f"v{i}" for i in range(120)], [{"cat": i % 2} for i in range(120)], embeddings=rng.normal(size=(120, DIM))
    )
    loaded = LongTermMemory.load(ltm.save(tmp_path / "auto.npz"), embedder=_NO_EMBEDDER)
    assert loaded.stats()["hnsw_built"]
    q = loaded.embedding(ids[7])
    assert loaded.search_vector(q, 3)[0].id == ids[7]
    assert loaded.search_vector(q, 3, {"cat": 1})[0].id == ids[7]
    loaded.hnsw_params["ef"] = 200  # applied at the next graph query
    assert loaded.search_vector(q, 3)[0].id == ids[7]
    assert loaded._index.ef == 200
