import os
import pickle
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from agemem_gym.error import InvalidConfig, MemoryFileError, MemoryFull
from agemem_gym.memory import LongTermMemory

BACKENDS = ["exact", "hnsw", "auto"]
FACTS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany.",
    "The Danube flows through Vienna and Budapest.",
    "Mount Everest is the highest mountain on Earth.",
    "Gutzon Borglum sculpted Mount Rushmore.",
    "Photosynthesis turns light into chemical energy.",
]


def filled(backend, seed=0, **kw):
    ltm = LongTermMemory(backend=backend, seed=seed, **kw)
    ids = [ltm.add(f, {"type": "geo" if i < 3 else "misc", "n": i}) for i, f in enumerate(FACTS)]
    return ltm, ids


@pytest.mark.parametrize("backend", BACKENDS)
def test_add_returns_stable_short_ids(backend):
    ltm, ids = filled(backend)
    assert all(re.fullmatch(r"mem_[0-9a-f]{8}", i) for i in ids)
    assert len(set(ids)) == len(ids) == len(ltm)
    again, ids2 = filled(backend)
    assert ids == ids2
    other, ids3 = filled(backend, seed=1)
    assert ids3 != ids


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_ranks_and_filters(backend):
    ltm, ids = filled(backend)
    top = ltm.search("capital of Germany", top_k=2)
    assert top[0].id == ids[1] and top[0].content == FACTS[1]
    assert top[0].score >= top[1].score
    assert len(ltm.search("capital", top_k=100)) == len(FACTS)
    only_misc = ltm.search("capital of France", top_k=3, metadata_filter={"type": "misc"})
    assert {m.id for m in only_misc} <= set(ids[3:])
    assert ltm.search("anything", metadata_filter={"type": "nope"}) == []
    assert ltm.search("capital", top_k=0) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_memory(backend):
    ltm = LongTermMemory(backend=backend)
    assert len(ltm) == 0 and list(ltm) == [] and ltm.search("x") == []
    assert ltm.get("mem_00000000") is None
    assert not ltm.update("mem_00000000", "y") and not ltm.delete("mem_00000000")
    ltm.check_invariants()


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_and_malformed_ids_never_raise(backend):
    ltm, ids = filled(backend)
    for bad in ["mem_ffffffff", "", "x" * 10_000, None, 17, ["mem_1"], {"id": 1}]:
        assert ltm.update(bad, "new") is False
        assert ltm.delete(bad) is False
        assert ltm.get(bad) is None if isinstance(bad, str) else True
    assert len(ltm) == len(FACTS)
    ltm.check_invariants()


@pytest.mark.parametrize("backend", BACKENDS)
def test_update_reembeds_and_merges_metadata(backend):
    ltm, ids = filled(backend)
    assert ltm.update(ids[0], "Bananas are rich in potassium.", {"edited": True})
    item = ltm.get(ids[0])
    assert item.content.startswith("Bananas") and item.metadata == {"type": "geo", "n": 0, "edited": True}
    assert ltm.search("potassium bananas", top_k=1)[0].id == ids[0]
    assert ltm.update(ids[1], metadata={"type": "city"})
    assert ltm.get(ids[1]).content == FACTS[1] and ltm.get(ids[1]).metadata["type"] == "city"
    ltm.check_invariants()


@pytest.mark.parametrize("backend", BACKENDS)
def test_delete_then_update_and_reuse(backend):
    ltm, ids = filled(backend)
    assert ltm.delete(ids[2]) and not ltm.delete(ids[2])
    assert ltm.update(ids[2], "resurrected?") is False
    assert ids[2] not in ltm and len(ltm) == len(FACTS) - 1
    assert all(m.id != ids[2] for m in ltm.search("Danube Vienna", top_k=10))
    new = ltm.add("The Danube flows through Vienna.")
    assert new != ids[2]  # deleted ids are never reissued
    assert ltm.search("Danube Vienna", top_k=1)[0].id == new
    ltm.check_invariants()


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicate_content_gets_two_ids_and_ties_favour_older(backend):
    ltm = LongTermMemory(backend=backend)
    a = ltm.add("same text")
    b = ltm.add("same text")
    assert a != b
    hits = ltm.search("same text", top_k=2)
    assert [h.id for h in hits] == [a, b]
    assert hits[0].score == pytest.approx(hits[1].score)


@pytest.mark.parametrize("backend", BACKENDS)
def test_get_iter_contains_clear(backend):
    ltm, ids = filled(backend)
    assert [m.id for m in ltm] == ids == ltm.ids()
    assert ids[0] in ltm and "nope" not in ltm
    got = ltm.get(ids[3])
    got.metadata["type"] = "mutated"  # a copy: the store is untouched
    assert ltm.get(ids[3]).metadata["type"] == "misc"
    ltm.clear()
    assert len(ltm) == 0 and ltm.search("Paris") == []
    ltm.check_invariants()
    ltm.clear(seed=0)
    assert ltm.add(FACTS[0]) == ids[0]  # reseeded: the id sequence restarts


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_load_gives_identical_results(backend, tmp_path):
    ltm, ids = filled(backend)
    ltm.delete(ids[4])
    ltm.update(ids[1], "Berlin, capital of Germany, on the Spree.")
    path = ltm.save(tmp_path / "ltm.npz")
    loaded = LongTermMemory.load(path)
    loaded.check_invariants()
    for q in ["capital", "mountain", "Berlin Spree", "energy from light"]:
        a, b = ltm.search(q, top_k=4), loaded.search(q, top_k=4)
        assert [(x.id, x.content, x.metadata) for x in a] == [(x.id, x.content, x.metadata) for x in b]
        np.testing.assert_allclose([x.score for x in a], [x.score for x in b], rtol=1e-6)
    # the id generator continues where it was
    assert ltm.add("next") == loaded.add("next")


def test_hnsw_recall_against_exact_and_capacity_growth():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 64))
    data = (centers[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 64))).astype(np.float32)
    queries = (centers[rng.integers(0, 20, 100)] + 0.3 * rng.normal(size=(100, 64))).astype(np.float32)
    fake = lambda texts: np.zeros((len(texts), 64), np.float32)  # noqa: E731 - vectors are passed directly
    hnsw = LongTermMemory(fake, backend="hnsw", dim=64)
    exact = LongTermMemory(fake, backend="exact", dim=64)
    for ltm in (hnsw, exact):
        for chunk in np.array_split(np.arange(3000), 10):  # grows past the initial capacity
            ltm.add_many([f"v{i}" for i in chunk], embeddings=data[chunk])
    hits = 0
    for q in queries:
        truth = {m.id for m in exact.search_vector(q, 10)}
        hits += len(truth & {m.id for m in hnsw.search_vector(q, 10)})
    assert hits / 1000 >= 0.95
    assert hnsw.stats()["hnsw_built"] and hnsw._index.get_max_elements() >= 3000
    hnsw.check_invariants()


def test_tombstones_trigger_a_rebuild_and_results_stay_correct():
    ltm = LongTermMemory(backend="hnsw", rebuild_fraction=0.3)
    ids = ltm.add_many([f"note {i} about subject {i}" for i in range(200)])
    for i in ids[:150]:
        ltm.delete(i)
    stats = ltm.stats()
    assert stats["rows"] < 200  # compacted
    ltm.check_invariants()
    assert ltm.search("note 177 about subject 177", top_k=1)[0].id == ids[177]
    more = ltm.add_many([f"fresh {i}" for i in range(100)])  # reuses tombstoned slots
    ltm.check_invariants()
    assert ltm.search("fresh 42", top_k=1)[0].id == more[42]


def test_auto_switches_to_hnsw_past_threshold():
    ltm = LongTermMemory(backend="auto", auto_threshold=50)
    ltm.add_many([f"item {i} colour {i % 5}" for i in range(40)])
    assert not ltm.stats()["hnsw_built"]
    ids = ltm.add_many([f"entry {i} shape {i % 3}" for i in range(20)])
    assert ltm.stats()["hnsw_built"]
    assert ltm.search("entry 7 shape 1", top_k=1)[0].id == ids[7]
    ltm.check_invariants()


@pytest.mark.parametrize("backend", BACKENDS)
def test_pickle_round_trip(backend):
    ltm, ids = filled(backend)
    clone = pickle.loads(pickle.dumps(ltm))
    assert [m.id for m in clone.search("capital", 3)] == [m.id for m in ltm.search("capital", 3)]
    assert clone.add("x") == ltm.add("x")
    clone.check_invariants()


def test_bad_constructor_and_programmer_errors():
    with pytest.raises(InvalidConfig, match="backend"):
        LongTermMemory(backend="faiss")
    with pytest.raises(InvalidConfig, match="dim"):
        LongTermMemory(dim=12)  # hashing embedder is 384-d
    with pytest.raises(InvalidConfig, match="rebuild_fraction"):
        LongTermMemory(rebuild_fraction=0)
    ltm = LongTermMemory(max_entries=2)
    ltm.add("a")
    with pytest.raises(InvalidConfig, match="metadata"):
        ltm.add("b", metadata={"x": object()})
    with pytest.raises(InvalidConfig, match="metadata"):
        ltm.add("b", metadata=["not", "a", "dict"])
    ltm.add("b")
    with pytest.raises(MemoryFull, match="full"):
        ltm.add("c")
    assert not issubclass(MemoryFull, InvalidConfig)  # a full memory is no configuration mistake
    with pytest.raises(InvalidConfig, match="str"):
        ltm.search(42)


# ---------------------------------------------------------------- corrupt and foreign files
def test_corrupt_and_foreign_files_raise_clear_errors(tmp_path):
    ltm, _ = filled("hnsw")
    good = ltm.save(tmp_path / "good.npz")
    raw = good.read_bytes()

    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "noise.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    np.savez(tmp_path / "foreign.npz", a=np.arange(3))
    cases = {
        "trunc.npz": "truncated or corrupt",
        "noise.npz": "truncated or corrupt",
        "foreign.npz": "not an agemem-gym memory file",
        "missing.npz": "no memory file",
    }
    for name, msg in cases.items():
        with pytest.raises(MemoryFileError, match=msg):
            LongTermMemory.load(tmp_path / name)

    # another version of the format
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = arrays["header"].tobytes().decode().replace('"version": 1', '"version": 99')
    arrays["header"] = np.frombuffer(header.encode(), dtype=np.uint8)
    np.savez(tmp_path / "v99.npz", **arrays)
    with pytest.raises(MemoryFileError, match="version 99"):
        LongTermMemory.load(tmp_path / "v99.npz")


def test_custom_embedder_must_be_passed_to_load(tmp_path):
    emb = lambda texts: np.ones((len(texts), 8), np.float32)  # noqa: E731
    ltm = LongTermMemory(emb)
    ltm.add("a")
    path = ltm.save(tmp_path / "c.npz")
    with pytest.raises(MemoryFileError, match="custom embedder"):
        LongTermMemory.load(path)
    assert len(LongTermMemory.load(path, embedder=emb)) == 1


# ---------------------------------------------------------------- crash safety
_SAVER = textwrap.dedent(
    """
    import sys
    from agemem_gym.memory import LongTermMemory
    path = sys.argv[1]
    ltm = LongTermMemory(backend="hnsw", seed=0)
    gen = 0
    print("ready", flush=True)
    while True:
        gen += 1
        ltm.add_many([f"generation {gen} item {i} " + "padding " * 50 for i in range(300)])
        ltm.save(path)
    """
)


def test_save_killed_midway_leaves_previous_snapshot_loadable(tmp_path):
    """SIGKILL a process that keeps saving bigger snapshots; the file always loads."""
    path = tmp_path / "ltm.npz"
    base = LongTermMemory(backend="hnsw", seed=0)
    base.add("baseline snapshot")
    base.save(path)
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(12):
        with subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE) as proc:
            assert proc.stdout.readline().strip() == b"ready"
            try:
                proc.wait(timeout=float(rng.uniform(0.2, 1.5)))
            except subprocess.TimeoutExpired:
                proc.kill()  # SIGKILL: no cleanup handlers run
                proc.wait()
        loaded = LongTermMemory.load(path)  # never a half-written file
        loaded.check_invariants()
        n = len(loaded)
        assert n == 1 or n % 300 == 0
        if n > 1:  # a complete snapshot: generations 1..g with 300 items each
            gens = [int(m.content.split()[1]) for m in loaded]
            g = n // 300
            assert sorted(set(gens)) == list(range(1, g + 1))
            assert all(gens.count(k) == 300 for k in range(1, g + 1))
            assert len(loaded.search(f"generation {g} item 5", top_k=3)) == 3
        sizes.add(n)
    leftovers = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert len(sizes) >= 2  # kills landed at different points
    assert all(p.startswith(".") for p in leftovers)  # only hidden temp files can be left behind


# ---------------------------------------------------------------- threads
@pytest.mark.parametrize("backend", ["exact", "hnsw"])
def test_concurrent_readers_and_a_writer_stay_consistent(backend):
    ltm = LongTermMemory(backend=backend, seed=3)
    ltm.add_many([f"seed fact {i}" for i in range(200)])
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                for hit in ltm.search("seed fact 17", top_k=5):
                    assert hit.content.startswith(("seed fact", "late fact"))
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    def writer():
        try:
            ids = []
            for i in range(300):
                ids.append(ltm.add(f"late fact {i}"))
                if i % 3 == 0:
                    ltm.delete(ids[i // 2])
                if i % 5 == 0:
                    ltm.update(ids[-1], f"late fact {i} updated")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            stop.set()

    threads = [threading.Thread(target=reader) for _ in range(4)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    ltm.check_invariants()


def test_save_removes_only_stale_temp_files_of_its_own_target(tmp_path):
    from agemem_gym.memory.ltm_file import STALE_TEMP_SECONDS

    ltm = LongTermMemory(seed=0)
    ltm.add("a fact")
    stale = tmp_path / ".mem.npz.abc123.tmp"  # what a killed save of mem.npz leaves
    fresh = tmp_path / ".mem.npz.def456.tmp"  # maybe another process saving right now
    other = tmp_path / ".other.npz.abc123.tmp"  # a different target's
    for p in (stale, fresh, other):
        p.write_bytes(b"partial")
    old = stale.stat().st_mtime - STALE_TEMP_SECONDS - 10
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    ltm.save(tmp_path / "mem.npz")
    assert not stale.exists() and fresh.exists() and other.exists()
    assert len(LongTermMemory.load(tmp_path / "mem.npz")) == 1


def test_snapshot_header_names_the_file_format_and_version(tmp_path):
    import json

    from agemem_gym.memory.ltm_file import FILE_FORMAT, FILE_VERSION

    ltm = LongTermMemory(seed=0)
    ltm.add("a fact", {"k": 1})
    with np.load(ltm.save(tmp_path / "mem.npz")) as npz:
        header = json.loads(npz["header"].tobytes().decode("utf-8"))
    assert (header["format"], header["version"]) == (FILE_FORMAT, FILE_VERSION) == ("agemem-ltm", 1)
    assert list(header)[:2] == ["format", "version"] and header["metadata"] == [{"k": 1}]
