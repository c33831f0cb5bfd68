"""Answer scoring: HotpotQA's official exact match and F1."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from agemem_gym.text import normalize_answer

__all__ = ["exact_match", "f1_score", "best_score", "answer_scores"]

_SPECIAL = ("yes", "no", "noanswer")


def exact_match(prediction: str, gold: str) -> float:
    """1.0 if the normalised strings are equal, else 0.0.

    Example:
        >>> exact_match("The Eiffel Tower", "eiffel tower")
        1.0
    """
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """HotpotQA's answer F1: token overlap after normalisation; yes/no/noanswer must match exactly.

    Example:
        >>> f1_score("Sculptor Gutzon Borglum", "Gutzon Borglum")
        0.8
        >>> f1_score("yes", "no")
        0.0
    """
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    common = Counter(pred_tokens) & Counter(ref_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def best_score(prediction: str, golds: Sequence[str], metric: str = "f1") -> float:
    """The best score of ``prediction`` over several acceptable answers."""
    fn = f1_score if metric == "f1" else exact_match
    return max((fn(prediction, g) for g in golds), default=0.0)


def answer_scores(prediction: str, golds: Sequence[str]) -> dict[str, float]:
    """``{"em", "f1", "success"}`` of a short answer; success is exact match.

    The shared grade of the short-answer tasks (HotpotQA, the probes, the synthetic tasks);
    each adds its own ``task_score`` (the judge's, or exact match).
    """
    em = best_score(prediction, golds, "em")
    return {"em": em, "f1": best_score(prediction, golds, "f1"), "success": em}
