"""Loader for LoCoMo's official ``locomo10.json`` (never bundled: CC BY-NC 4.0).

The file is a JSON list of conversations. Each has ``sample_id``; ``conversation`` with
``speaker_a``, ``speaker_b``, ``session_<n>`` (a list of turns ``{speaker, dia_id, text}``,
optionally ``blip_caption`` for a shared photo) and ``session_<n>_date_time``; and ``qa``, a
list of ``{question, answer, evidence, category}`` (adversarial questions, category 5,
carry ``adversarial_answer`` instead of ``answer``). Other keys (summaries, observations)
are ignored. Get it from https://github.com/snap-research/LoCoMo (``data/locomo10.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

from agemem_gym.data.paths import resolve_data_file
from agemem_gym.error import DataFormatError

__all__ = [
    "CATEGORY_NAMES",
    "LOCOMO_ENV_VAR",
    "LoCoMoConversation",
    "LoCoMoQA",
    "LoCoMoSession",
    "LoCoMoTurn",
    "load_locomo",
    "resolve_locomo_path",
]

LOCOMO_ENV_VAR = "AGEMEM_LOCOMO_PATH"
# as in LoCoMo's official evaluation script
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
_SESSION = re.compile(r"^session_(\d+)$")
_WHERE = (
    "LoCoMo is not bundled (its licence, CC BY-NC 4.0, allows non-commercial use only). Download data/locomo10.json "
    "from https://github.com/snap-research/LoCoMo and pass data_path=... to the env (or set the "
    f"{LOCOMO_ENV_VAR} environment variable)."
)


@dataclasses.dataclass(frozen=True)
class LoCoMoTurn:
    """One utterance: ``speaker``, its ``dia_id`` (``"D3:7"``) and ``text`` (a photo caption appended)."""

    speaker: str
    dia_id: str
    text: str


@dataclasses.dataclass(frozen=True)
class LoCoMoSession:
    """One session: its number, its date-time string and its turns."""

    index: int
    date_time: str
    turns: tuple[LoCoMoTurn, ...]


@dataclasses.dataclass(frozen=True)
class LoCoMoQA:
    """One annotated question.

    Attributes:
        question: The question.
        answer: The gold answer (``""`` for adversarial questions).
        evidence: ``dia_id`` s of the turns that support it.
        category: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial.
    """

    question: str
    answer: str
    evidence: tuple[str, ...]
    category: int


@dataclasses.dataclass(frozen=True)
class LoCoMoConversation:
    """A conversation between two speakers over many sessions, with its questions."""

    sample_id: str
    speakers: tuple[str, str]
    sessions: tuple[LoCoMoSession, ...]
    qa: tuple[LoCoMoQA, ...]

    def turn_text(self) -> dict[str, str]:
        """``dia_id`` → ``"Speaker: text"``."""
        return {t.dia_id: f"{t.speaker}: {t.text}" for s in self.sessions for t in s.turns}


def resolve_locomo_path(data_path: str | os.PathLike[str] | None) -> Path:
    """The file to read: ``data_path``, else ``$AGEMEM_LOCOMO_PATH``; a clear error when neither exists."""
    return resolve_data_file(data_path, LOCOMO_ENV_VAR, "LoCoMo", _WHERE)


def _turn(raw: Any, where: str) -> LoCoMoTurn:
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("speaker", "dia_id", "text")):
        raise DataFormatError(f"{where}: each turn needs string fields speaker, dia_id and text")
    text = raw["text"].strip()
    caption = raw.get("blip_caption")
    if isinstance(caption, str) and caption.strip():
        text = f"{text} [shares a photo: {caption.strip()}]"
    return LoCoMoTurn(raw["speaker"].strip(), raw["dia_id"].strip(), text)


def _sessions(conv: dict[str, Any], where: str) -> tuple[LoCoMoSession, ...]:
    out = []
    for key, value in conv.items():
        found = _SESSION.match(key)
        if not found:
            continue
        if not isinstance(value, list):
            raise DataFormatError(f"{where}: {key} must be a list of turns")
        turns = tuple(_turn(t, f"{where} {key}") for t in value)
        out.append(LoCoMoSession(int(found.group(1)), str(conv.get(f"{key}_date_time", "")).strip(), turns))
    if not out:
        raise DataFormatError(f"{where}: the conversation has no session_<n> lists")
    return tuple(sorted(out, key=lambda s: s.index))


def _qa(raw: Any, where: str) -> LoCoMoQA:
    if not isinstance(raw, dict) or not isinstance(raw.get("question"), str):
        raise DataFormatError(f"{where}: each qa item needs a string question")
    category = raw.get("category")
    if category not in CATEGORY_NAMES:
        raise DataFormatError(f"{where}: category must be one of {sorted(CATEGORY_NAMES)}, got {category!r}")
    answer = raw.get("answer")
    if category != 5 and (answer is None or isinstance(answer, (dict, list))):
        raise DataFormatError(f"{where}: a category {category} question needs an answer (string or number)")
    evidence = raw.get("evidence") or []
    if not isinstance(evidence, list):
        raise DataFormatError(f"{where}: evidence must be a list of dia_ids")
    return LoCoMoQA(
        raw["question"].strip(),
        "" if category == 5 else str(answer).strip(),
        tuple(str(e).strip() for e in evidence),
        int(category),
    )


def load_locomo(data_path: str | os.PathLike[str] | None = None) -> list[LoCoMoConversation]:
    """Read and validate a LoCoMo file.

    Args:
        data_path: ``locomo10.json`` (or a file in its format); ``None`` reads
            ``$AGEMEM_LOCOMO_PATH``.

    Returns:
        The conversations, in file order.
    """
    path = resolve_locomo_path(data_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"cannot read {path} as UTF-8 text: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers, deep nesting
        raise DataFormatError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise DataFormatError(f"{path}: expected a non-empty JSON list of conversations (locomo10.json's format)")
    out = []
    for i, sample in enumerate(data):
        where = f"{path.name}[{i}]"
        if not isinstance(sample, dict) or not isinstance(sample.get("conversation"), dict):
            raise DataFormatError(f"{where}: each item needs a conversation object")
        conv = sample["conversation"]
        speakers = (str(conv.get("speaker_a", "A")), str(conv.get("speaker_b", "B")))
        qa = tuple(_qa(q, f"{where} qa[{j}]") for j, q in enumerate(sample.get("qa") or []))
        out.append(LoCoMoConversation(str(sample.get("sample_id", f"conv-{i}")), speakers, _sessions(conv, where), qa))
    return out
