import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agemem_gym.adapters.grpo.packing import pack_rows, pack_rows_reference

ROW_CASES = {
    "empty": ([], 8),
    "single": ([8], 8),
    "example": ([6, 3, 4, 2], 8),
    "all_full_rows": ([8, 8, 8], 8),
    "ties": ([3, 3, 3, 3, 3], 9),
    "ones": ([1] * 17, 4),
}


@pytest.mark.parametrize("case", sorted(ROW_CASES))
def test_pack_rows_matches_reference(case):
    lengths, row_len = ROW_CASES[case]
    arr = np.array(lengths, np.int64)
    rows = pack_rows(arr, row_len)
    assert rows.tolist() == pack_rows_reference(arr, row_len).tolist()
    _check_rows(arr, rows, row_len)


def _check_rows(lengths, rows, row_len):
    if len(lengths) == 0:
        return
    used = np.bincount(rows, weights=lengths)
    assert used.max() <= row_len
    assert set(rows.tolist()) == set(range(rows.max() + 1))  # no empty row in between
    # first fit: a sequence opens or joins a later row only if it did not fit an earlier one,
    # so any two rows together hold more than one row's capacity
    if len(used) > 1:
        pair = used[:, None] + used[None, :]
        assert (pair[np.triu_indices(len(used), 1)] > row_len).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 64), max_size=300), st.integers(64, 200))
def test_pack_rows_random_agreement(lengths, row_len):
    arr = np.array(lengths, np.int64)
    rows = pack_rows(arr, row_len)
    assert rows.tolist() == pack_rows_reference(arr, row_len).tolist()
    _check_rows(arr, rows, row_len)


def test_pack_rows_rejects_bad_input():
    with pytest.raises(ValueError, match="row_len"):
        pack_rows(np.array([9]), 8)
    with pytest.raises(ValueError, match=r"\[1, row_len"):
        pack_rows(np.array([0]), 8)
    with pytest.raises(ValueError, match="row_len must be"):
        pack_rows(np.array([1]), 0)
