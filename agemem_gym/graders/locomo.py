"""LoCoMo's QA scores by category (following the rules of its official evaluation script).

* token F1 after normalisation (lower case; punctuation and the words a/an/the/and
  removed), for single-hop (4) and temporal (2) questions;
* multi-hop (1): the gold answer and the prediction are split on commas; each gold part
  takes its best F1 against the predicted parts, and the parts are averaged;
* open-domain (3): only the gold text before the first ``;`` counts;
* adversarial (5): 1 when the prediction declines ("not mentioned", "no information
  available"), else 0.

The official script also Porter-stems tokens; this one does not (no NLTK dependency), so
inflected forms ("painted" vs "paint") do not match here.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

__all__ = ["locomo_normalize", "locomo_f1", "locomo_score", "REFUSAL", "scores_by_category"]

REFUSAL = "Not mentioned in the conversation"
_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_DECLINES = ("not mentioned", "no information available")


def locomo_normalize(text: str) -> str:
    """Lower-case, strip punctuation and a/an/the/and, squeeze spaces.

    Example:
        >>> locomo_normalize("The cat, and a Dog!")
        'cat dog'
    """
    return " ".join(_ARTICLES.sub(" ", str(text).lower().translate(_PUNCT)).split())


def locomo_f1(prediction: str, gold: str) -> float:
    """Token F1 of two answers after :func:`locomo_normalize`.

    Example:
        >>> round(locomo_f1("7 May 2023", "May 7, 2023"), 2)
        1.0
    """
    pred, ref = locomo_normalize(prediction).split(), locomo_normalize(gold).split()
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def locomo_score(prediction: str, gold: str, category: int) -> float:
    """The score of one answer for a question of ``category`` (1–5).

    Example:
        >>> locomo_score("hiking, pottery", "pottery, hiking, camping", 1)
        0.6666666666666666
        >>> locomo_score("That was not mentioned.", "", 5)
        1.0
    """
    if category == 5:
        return float(any(d in prediction.lower() for d in _DECLINES))
    if category == 3:
        gold = gold.split(";")[0]
    if category == 1:
        parts = [p for p in prediction.split(",") if p.strip()] or [prediction]
        golds = [g for g in gold.split(",") if g.strip()] or [gold]
        return sum(max(locomo_f1(p, g) for p in parts) for g in golds) / len(golds)
    return locomo_f1(prediction, gold)


def scores_by_category(rows: Sequence[Mapping[str, float | int]]) -> dict[str, float]:
    """Mean score per category name plus ``overall``, from rows ``{"category", "score"}``."""
    from agemem_gym.data.locomo import CATEGORY_NAMES

    sums: dict[str, list[float]] = {}
    for row in rows:
        name = CATEGORY_NAMES.get(int(row["category"]), str(row["category"]))
        sums.setdefault(name, []).append(float(row["score"]))
    out = {name: sum(v) / len(v) for name, v in sorted(sums.items())}
    every = [float(r["score"]) for r in rows]
    out["overall"] = sum(every) / len(every) if every else 0.0
    return out
