"""Numeric features of a memory episode's state, for controllers that cannot read text.

Every feature lies in ``[-1, 1]`` (most in ``[0, 1]``), is cheap (one hashing-embedder call
per new message, one exact LTM scan per step) and deterministic. The layout is fixed:
:data:`FIXED_FEATURES` first, then ``sketch_dim`` dimensions of a hashed bag-of-words
sketch of the current message, so a controller can learn *which kind* of message is worth
storing without ever seeing the question.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agemem_gym.memory.embedders import HashingEmbedder
from agemem_gym.memory.ltm import LongTermMemory
from agemem_gym.tools import TOOL_NAMES

__all__ = ["ACTIONS", "FIXED_FEATURES", "FocusState", "FeatureExtractor", "count_retrieved", "feature_names"]

ACTIONS: tuple[str, ...] = ("reply", "add", "update", "delete", "retrieve", "summary", "filter")
"""The discrete memory actions, in action-index order (see ``MemoryControlWrapper``)."""

FIXED_FEATURES: tuple[str, ...] = (
    "stage_1",
    "stage_2",
    "stage_3",
    "round_frac",  # rounds spent on the current message / max_rounds
    "new_message",  # the current message has just arrived
    "focus_ltm_top1",  # cosine of the current message (the query in Stage 3) to its nearest memory
    "focus_ltm_top3",  # mean cosine to its 3 nearest memories
    "focus_stored",  # a memory is (nearly) identical to the current message
    "focus_query_sim",  # cosine to the question once it is visible (or with lookahead)
    "retrieved_items",  # retrieved memories visible after the current message, squashed
    "context_fill",  # context tokens / max_context_tokens, halved and clipped to 1
    "overflow",
    "ltm_size",  # n / (n + 10)
    "invalid_calls",  # n / (n + 5)
    "step",  # t / (t + 50)
    "focus_length",  # tokens of the current message / 512, clipped to 1
    *(f"calls_{name}" for name in TOOL_NAMES),  # log1p(count) / log1p(32), clipped to 1
    *(f"last_{name}" for name in ACTIONS),  # one-hot of the previous action
)


def feature_names(sketch_dim: int) -> tuple[str, ...]:
    """All feature names for a given sketch size, in vector order."""
    return FIXED_FEATURES + tuple(f"sketch_{i}" for i in range(sketch_dim))


@dataclasses.dataclass
class FocusState:
    """The message the controller is currently deciding about.

    Attributes:
        text: The current user message (the question in Stage 3).
        vector: Its embedding under the environment's embedder.
        sketch: Its hashed bag-of-words sketch.
        query_sim: Cosine to the question, when the question may be seen.
        tokens: Its token count.
    """

    text: str
    vector: np.ndarray
    sketch: np.ndarray
    query_sim: float
    tokens: int


def _squash(n: float, scale: float) -> float:
    return float(n) / (float(n) + scale)


class FeatureExtractor:
    """Builds the observation vector from the state a ``MemoryEnv`` exposes.

    Args:
        sketch_dim: Dimensions of the message sketch (0 turns it off).
    """

    def __init__(self, sketch_dim: int = 16) -> None:
        self.sketch_dim = int(sketch_dim)
        self.names = feature_names(self.sketch_dim)
        self.index = {name: i for i, name in enumerate(self.names)}
        self._sketcher = HashingEmbedder(dim=max(8, self.sketch_dim)) if self.sketch_dim else None

    @property
    def size(self) -> int:
        """Length of the feature vector."""
        return len(self.names)

    def sketch(self, text: str) -> np.ndarray:
        """The message sketch (the first ``sketch_dim`` hashing dimensions, renormalised)."""
        if self._sketcher is None:
            return np.zeros(0, dtype=np.float32)
        vec = self._sketcher([text])[0][: self.sketch_dim]
        norm = float(np.linalg.norm(vec))
        return (vec / norm if norm > 0 else vec).astype(np.float32)

    def __call__(
        self,
        info: Mapping[str, Any],
        focus: FocusState,
        ltm: LongTermMemory,
        *,
        retrieved_items: int,
        max_rounds: int,
        max_context_tokens: int,
        last_action: int | None,
    ) -> np.ndarray:
        """The feature vector (float32, every entry in ``[-1, 1]``)."""
        out = np.zeros(self.size, dtype=np.float32)
        ix = self.index
        stage = int(info.get("stage", 1))
        out[ix[f"stage_{min(max(stage, 1), 3)}"]] = 1.0
        rnd = int(info.get("round", 0))
        out[ix["round_frac"]] = min(1.0, rnd / max(1, max_rounds))
        out[ix["new_message"]] = float(rnd == 0)
        scores = [item.score for item in ltm.search_vector(focus.vector, top_k=3)] if len(ltm) else []
        if scores:
            out[ix["focus_ltm_top1"]] = scores[0]
            out[ix["focus_ltm_top3"]] = float(np.mean(scores))
            out[ix["focus_stored"]] = float(scores[0] >= 0.98)
        out[ix["focus_query_sim"]] = focus.query_sim
        out[ix["retrieved_items"]] = _squash(retrieved_items, 3.0)
        out[ix["context_fill"]] = min(1.0, int(info.get("context_tokens", 0)) / max(1, max_context_tokens) / 2)
        out[ix["overflow"]] = float(bool(info.get("overflow", False)))
        out[ix["ltm_size"]] = _squash(int(info.get("ltm_size", len(ltm))), 10.0)
        out[ix["invalid_calls"]] = _squash(int(info.get("invalid_calls", 0)), 5.0)
        out[ix["step"]] = _squash(int(info.get("step", 0)), 50.0)
        out[ix["focus_length"]] = min(1.0, focus.tokens / 512)
        calls: Mapping[str, int] = info.get("tool_calls", {})
        for name in TOOL_NAMES:
            out[ix[f"calls_{name}"]] = min(1.0, math.log1p(int(calls.get(name, 0))) / math.log1p(32))
        if last_action is not None:
            out[ix[f"last_{ACTIONS[last_action]}"]] = 1.0
        if self.sketch_dim:
            out[len(FIXED_FEATURES) :] = focus.sketch
        return np.clip(out, -1.0, 1.0)


def count_retrieved(messages: Sequence[Mapping[str, str]]) -> tuple[int, list[str]]:
    """Retrieved memories listed in ``messages``: their number and their contents."""
    contents = []
    for m in messages:
        if m["role"] == "tool" and m["content"].startswith("[retrieved memories]"):
            for line in m["content"].splitlines()[1:]:
                if line.startswith("- "):
                    contents.append(line[2:].rsplit(" (Memory ID:", 1)[0])
    return len(contents), contents
