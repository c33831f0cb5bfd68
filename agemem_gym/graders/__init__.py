"""Pure scoring functions and injectable judges."""

from agemem_gym.graders.attribution import memory_attribution
from agemem_gym.graders.facts import memory_quality, retrieval_relevance, sentence_matches, storage_quality
from agemem_gym.graders.judges import (
    AnswerJudge,
    ExactMatchJudge,
    F1Judge,
    FactOverlapJudge,
    LLMJudge,
    LLMMemoryJudge,
    MemoryJudge,
    make_judge,
    make_memory_judge,
)
from agemem_gym.graders.memory_terms import MemoryTerms, MemoryTermsJudge, judge_memory_terms, parse_unit_score
from agemem_gym.graders.qa import answer_scores, best_score, exact_match, f1_score

__all__ = [
    "AnswerJudge",
    "ExactMatchJudge",
    "F1Judge",
    "FactOverlapJudge",
    "LLMJudge",
    "LLMMemoryJudge",
    "MemoryJudge",
    "answer_scores",
    "best_score",
    "exact_match",
    "f1_score",
    "make_judge",
    "make_memory_judge",
    "MemoryTerms",
    "MemoryTermsJudge",
    "judge_memory_terms",
    "parse_unit_score",
    "memory_attribution",
    "memory_quality",
    "retrieval_relevance",
    "sentence_matches",
    "storage_quality",
]
