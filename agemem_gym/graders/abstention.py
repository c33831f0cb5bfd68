"""Does an answer decline? The offline grade of abstention questions (LongMemEval's ``_abs``).

LongMemEval asks an LLM whether the model "correctly identifies the question as unanswerable";
offline, :func:`declines` looks for the phrasings a model uses to say the history does not hold
the information ("not mentioned", "no information about", "I don't know", "cannot determine",
"you never told me"). The patterns are anchored on the negation *and* what is missing, so that
a real answer with a negation in it ("You did not have time to visit Rome") is not a refusal.
"""

from __future__ import annotations

import re

__all__ = ["ABSTAIN", "declines"]

# what the oracle answers, and the gold answer of an abstention task
ABSTAIN = "The information is not available in our previous conversations."

_SAID = r"(?:mentioned|stated|specified|provided|discussed|shared|given|included|recorded|said|told|available|known)"
_PATTERNS = (
    rf"(?:\bnot|\bnever|n't|\bnothing)\s+(?:been\s+|ever\s+|yet\s+)?{_SAID}\b",
    r"\bno\s+(?:information|info|mention|record|records|details?|data|indication|evidence|context)\b",
    r"(?:\bnot|n't)\s+(?:enough|sufficient)\s+(?:information|info|context|details?|data)\b",
    # LongMemEval's own gold phrasing: "The information provided is not enough."
    r"\b(?:information|info|context|details?|data)\s+(?:\w+\s+){0,2}(?:is|are|was|were)\s*(?:not|n't)\s+"
    r"(?:enough|sufficient)\b",
    r"\binsufficient\s+(?:information|info|context|details?|data)\b",
    r"\b(?:do|does|did)\s*(?:not|n't)\s+(?:know|recall|remember)\b",
    r"\b(?:do|does|did)\s*(?:not|n't)\s+(?:have|contain|include|hold)\s+(?:any\s+|enough\s+|that\s+|this\s+|the\s+)?"
    r"(?:information|info|record|records|details?|data|mention)\b",
    r"\b(?:did|do|does|have|has)\s*(?:not|n't)\s+(?:mention|say|specify|tell|share|talk about|discuss)\b",
    r"\bnever\s+(?:mentioned|said|specified|told|shared|talked about|discussed)\b",
    r"\b(?:cannot|can't|can not|unable to|couldn't|could not)\s+(?:be\s+)?(?:answer|answered|determine|determined|"
    r"tell|say|find|found|know|known|recall|infer|inferred)\b",
    r"\b(?:i'm|i am)\s+not\s+sure\b",
    r"\bunanswerable\b",
)
_DECLINE = re.compile("|".join(f"(?:{p})" for p in _PATTERNS))


def declines(answer: str) -> bool:
    """Whether ``answer`` says the information is not available (case and apostrophe style ignored).

    Example:
        >>> declines("You never mentioned the name of your cat.")
        True
        >>> declines("I don't have any information about a violin teacher.")
        True
        >>> declines("You did not have time to visit Rome, so you went to Milan.")
        False
    """
    text = " ".join(str(answer).lower().replace("\u2019", "'").split())
    return _DECLINE.search(text) is not None
