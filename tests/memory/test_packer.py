import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agemem_gym.memory.packer import pack_context, pack_context_reference
from agemem_gym.memory.stm import ApproxTokenCounter

_UNICODE = ["東京タワーは東京にあります" * 3, "ñandú — Zürich", "😀🚀" * 10, "plain ascii text", "\x00" * 5]
_COUNTS = np.array([ApproxTokenCounter().count(t) + 4 for t in _UNICODE], dtype=np.int64)

CONTEXT_CASES = {
    "empty": ([], [], [], 10),
    "exact_budget": ([10, 20, 30], [False] * 3, [0] * 3, 60),
    "over_budget_cut": ([10, 50, 30], [True, False, False], [0] * 3, 60),
    "over_budget_drop_small_remainder": ([10, 50, 30], [True, False, False], [0] * 3, 41),
    "all_pinned": ([5, 5, 5], [True] * 3, [0] * 3, 100),
    "pinned_alone_over_budget": ([80, 40, 10], [True, True, False], [0] * 3, 100),
    "zero_budget": ([3, 4], [False, False], [0, 0], 0),
    "priorities": ([10, 10, 10, 10], [False] * 4, [0, 2, 1, 2], 25),
    "negative_priorities": ([5, 5, 5], [False] * 3, [-3, -1, -2], 11),
    "wide_priorities": ([5, 5, 5, 5], [False] * 4, [10**12, -(10**12), 5, 0], 12),
    "zero_length_messages": ([0, 0, 7], [False] * 3, [0] * 3, 5),
    "unicode_heavy": (_COUNTS.tolist(), [True, False, False, False, False], [0] * 5, int(_COUNTS.sum() // 2)),
}


@pytest.mark.parametrize("case", sorted(CONTEXT_CASES))
@pytest.mark.parametrize("min_cut", [1, 8])
def test_pack_context_matches_reference(case, min_cut):
    counts, pinned, prio, budget = CONTEXT_CASES[case]
    args = (np.array(counts, np.int64), np.array(pinned, bool), np.array(prio, np.int64), budget, min_cut)
    keep, cut, allowance = pack_context(*args)
    rkeep, rcut, rallowance = pack_context_reference(*args)
    assert keep.tolist() == rkeep.tolist() and (cut, allowance) == (rcut, rallowance)
    _check_context_invariants(args, keep, cut, allowance)


def _check_context_invariants(args, keep, cut, allowance):
    counts, pinned, _, budget, min_cut = args
    assert keep[pinned].all()
    assert cut == -1 or not keep[cut]
    used = counts[keep].sum() + allowance
    if counts[pinned].sum() <= budget:
        assert used <= budget
    if cut >= 0:
        assert min_cut <= allowance < counts[cut]


def test_pack_context_rule_examples():
    # newest first at equal priority; the first that does not fit is cut, the rest drop
    keep, cut, allowance = pack_context(np.array([10, 10, 10, 10]), np.zeros(4, bool), np.zeros(4, np.int64), 25)
    assert keep.tolist() == [False, False, True, True] and (cut, allowance) == (1, 5)
    # priority beats recency
    keep, cut, _ = pack_context(np.array([10, 10, 10]), np.zeros(3, bool), np.array([5, 0, 0]), 20)
    assert keep.tolist() == [True, False, True] and cut == -1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 500), st.booleans(), st.integers(-3, 3)), max_size=60),
    st.integers(0, 5000),
    st.integers(1, 32),
)
def test_pack_context_random_agreement(rows, budget, min_cut):
    counts = np.array([r[0] for r in rows], np.int64)
    pinned = np.array([r[1] for r in rows], bool)
    prio = np.array([r[2] for r in rows], np.int64)
    args = (counts, pinned, prio, budget, min_cut)
    keep, cut, allowance = pack_context(*args)
    rkeep, rcut, rallowance = pack_context_reference(*args)
    assert keep.tolist() == rkeep.tolist() and (cut, allowance) == (rcut, rallowance)
    _check_context_invariants(args, keep, cut, allowance)


def test_pack_context_rejects_bad_shapes():
    with pytest.raises(ValueError, match="1-D"):
        pack_context(np.array([1, 2]), np.array([True]), np.array([0, 0]), 5)
    with pytest.raises(ValueError, match="non-negative"):
        pack_context(np.array([-1]), np.array([False]), np.array([0]), 5)
