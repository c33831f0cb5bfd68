"""Data loaders and the small samples bundled with the package.

* ``hotpotqa_dev_sample.jsonl.gz``: 300 HotpotQA dev/distractor examples (CC BY-SA 4.0,
  see ``HOTPOTQA_LICENSE.md``). :func:`load_hotpotqa` also reads the official HotpotQA JSON
  files and JSON Lines in the same schema.
* ``distractors.txt``: casual unrelated utterances for Stage 2.

Loading never executes code: JSON only, validated field by field.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from agemem_gym.error import DataFormatError, DataNotFound

__all__ = ["HotpotRecord", "load_hotpotqa", "load_distractor_corpus", "BUNDLED_HOTPOTQA"]

BUNDLED_HOTPOTQA = "hotpotqa_dev_sample.jsonl.gz"
_HOTPOT_SCHEMA = (
    'each example needs "_id" (or "id"), "question", "answer", "supporting_facts" '
    '([[title, sent_id], ...]) and "context" ([[title, [sentence, ...]], ...])'
)


@dataclasses.dataclass(frozen=True)
class HotpotRecord:
    """One HotpotQA example.

    Attributes:
        id: The HotpotQA ``_id``.
        question: The question.
        answer: The gold answer.
        supporting_facts: ``(title, sentence_index)`` pairs.
        context: ``(title, sentences)`` paragraphs in the original order.
        type: ``bridge`` or ``comparison``.
        level: ``easy``, ``medium`` or ``hard``.
    """

    id: str
    question: str
    answer: str
    supporting_facts: tuple[tuple[str, int], ...]
    context: tuple[tuple[str, tuple[str, ...]], ...]
    type: str = ""
    level: str = ""

    def fact_sentences(self) -> tuple[str, ...]:
        """The gold supporting-fact sentences, stripped, in annotation order."""
        paragraphs = dict(self.context)
        return tuple(paragraphs[t][i].strip() for t, i in self.supporting_facts)

    def paragraphs(self) -> tuple[tuple[str, str], ...]:
        """``(title, text)`` for every context paragraph."""
        return tuple((t, "".join(s).strip()) for t, s in self.context)


def _record(obj: Any, where: str) -> HotpotRecord:
    if not isinstance(obj, dict):
        raise DataFormatError(f"{where}: expected a JSON object; {_HOTPOT_SCHEMA}")
    rid = obj.get("_id", obj.get("id"))
    missing = [k for k in ("question", "answer", "supporting_facts", "context") if k not in obj]
    if rid is None or missing:
        raise DataFormatError(f"{where}: missing {missing or ['_id']}; {_HOTPOT_SCHEMA}")
    try:
        context = tuple((str(t), tuple(str(s) for s in sents)) for t, sents in obj["context"])
        facts = tuple((str(t), int(i)) for t, i in obj["supporting_facts"])
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{where}: malformed context or supporting_facts ({exc}); {_HOTPOT_SCHEMA}") from exc
    paragraphs = dict(context)
    for title, idx in facts:
        if title not in paragraphs or not 0 <= idx < len(paragraphs[title]):
            raise DataFormatError(f"{where}: supporting fact ({title!r}, {idx}) is not in the context")
    return HotpotRecord(
        id=str(rid),
        question=str(obj["question"]),
        answer=str(obj["answer"]),
        supporting_facts=facts,
        context=context,
        type=str(obj.get("type", "")),
        level=str(obj.get("level", "")),
    )


def _read_text(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"cannot read {path}: {exc}") from exc


def _iter_objects(text: str, where: str) -> Iterator[tuple[Any, str]]:
    stripped = text.lstrip()
    if stripped.startswith("["):  # the official format: one JSON list
        try:
            data = json.loads(stripped)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers, deep nesting
            raise DataFormatError(f"{where}: invalid JSON ({exc})") from exc
        for i, obj in enumerate(data):
            yield obj, f"{where}[{i}]"
        return
    for n, line in enumerate(io.StringIO(text), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise DataFormatError(
                f"{where}:{n}: invalid JSON line ({exc}); expected JSON Lines or a JSON list"
            ) from exc
        yield obj, f"{where}:{n}"


def load_hotpotqa(path: str | os.PathLike[str] | None = None, limit: int | None = None) -> list[HotpotRecord]:
    """Load HotpotQA examples.

    Args:
        path: ``None`` for the bundled 300-example dev sample; otherwise an official
            HotpotQA JSON file (``hotpot_train_v1.1.json``, ``hotpot_dev_distractor_v1.json``:
            a list of objects) or JSON Lines with the same fields (``.gz`` allowed).
        limit: Keep only the first ``limit`` examples.

    Returns:
        The records, in file order.

    Raises:
        DataNotFound: ``path`` does not exist.
        DataFormatError: The file is not in the HotpotQA schema.
    """
    if path is None:
        ref = resources.files("agemem_gym.data").joinpath(BUNDLED_HOTPOTQA)
        with resources.as_file(ref) as bundled:
            text, where = _read_text(Path(bundled)), BUNDLED_HOTPOTQA
    else:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DataNotFound(
                f"no HotpotQA file at {p}. Download the official data from https://hotpotqa.github.io/ "
                f"(e.g. hotpot_dev_distractor_v1.json) and pass its path, or omit data_path to use the bundled sample."
            )
        text, where = _read_text(p), str(p)
    records = []
    for obj, loc in _iter_objects(text, where):
        records.append(_record(obj, loc))
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise DataFormatError(f"{where} holds no examples; {_HOTPOT_SCHEMA}")
    return records


def load_distractor_corpus(path: str | os.PathLike[str] | None = None) -> list[str]:
    """Distractor utterances, one per line (``#`` comments and blank lines skipped).

    Args:
        path: A text file; ``None`` for the bundled corpus.

    Returns:
        The utterances, in file order.
    """
    if path is None:
        text = resources.files("agemem_gym.data").joinpath("distractors.txt").read_text(encoding="utf-8")
    else:
        p = Path(path)
        if not p.is_file():
            raise DataNotFound(f"no distractor file at {p}")
        text = p.read_text(encoding="utf-8")
    lines = _clean_lines(text.splitlines())
    if not lines:
        raise DataFormatError("the distractor corpus is empty")
    return lines


def _clean_lines(lines: Iterable[str]) -> list[str]:
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
