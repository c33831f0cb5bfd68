import pytest

from agemem_gym.error import InvalidConfig, UnknownName
from agemem_gym.graders import (
    ExactMatchJudge,
    F1Judge,
    FactOverlapJudge,
    LLMJudge,
    LLMMemoryJudge,
    exact_match,
    f1_score,
    make_judge,
    memory_quality,
    retrieval_relevance,
    sentence_matches,
    storage_quality,
)

FACTS = [
    "Mount Rushmore National Memorial is a sculpture carved into the granite face of Mount Rushmore.",
    "Sculptor Gutzon Borglum created the sculpture's design and oversaw the project's execution.",
]


@pytest.mark.parametrize(
    "pred,gold,em,f1",
    [
        ("The Eiffel Tower", "Eiffel Tower", 1.0, 1.0),
        ("Sculptor Gutzon Borglum", "Gutzon Borglum", 0.0, 0.8),
        ("yes", "no", 0.0, 0.0),
        ("yes", "yes", 1.0, 1.0),
        ("no answer here", "noanswer", 0.0, 0.0),
        ("", "Paris", 0.0, 0.0),
        ("Paris, France!", "paris france", 1.0, 1.0),
    ],
)
def test_official_em_f1(pred, gold, em, f1):
    assert exact_match(pred, gold) == em
    assert f1_score(pred, gold) == pytest.approx(f1)


def test_sentence_matching():
    assert sentence_matches(FACTS[1], FACTS[1])
    assert sentence_matches("Gutzon Borglum designed the sculpture and oversaw its execution.", FACTS[1])
    whole_paragraph = " ".join(FACTS) + " The memorial park covers 1278 acres."
    assert sentence_matches(whole_paragraph, FACTS[0])  # containment
    assert not sentence_matches("My cat sleeps in the laundry basket.", FACTS[0])
    assert not sentence_matches("", FACTS[0])


def test_memory_quality_precision_recall():
    perfect = memory_quality(FACTS, FACTS)
    assert (perfect.precision, perfect.recall, perfect.f1) == (1.0, 1.0, 1.0)
    half = memory_quality([FACTS[0], "I like sourdough bread a lot."], FACTS)
    assert half.precision == 0.5 and half.recall == 0.5 and half.f1 == pytest.approx(0.5)
    assert memory_quality([], FACTS).f1 == 0.0


def test_storage_counts_new_useful_memories_only():
    added = [FACTS[0], FACTS[0] + " Again.", "unrelated cooking note", FACTS[1]]
    assert storage_quality(added, FACTS) == pytest.approx(2 / 4)
    assert storage_quality([], FACTS) == 0.0


def test_relevance():
    assert retrieval_relevance([FACTS[1], "the weather is nice"], FACTS) == 0.5
    assert retrieval_relevance([], FACTS) == 0.0


def test_judges():
    assert F1Judge().score("Gutzon Borglum", ["Sculptor Gutzon Borglum", "Borglum"]) == pytest.approx(0.8)
    assert ExactMatchJudge().score("borglum", ["Borglum"]) == 1.0
    asked = []

    def chat(messages):
        asked.append(messages[0]["content"])
        return "Score: 0.85 because..."

    assert LLMJudge(chat).score("B", ["A"], "Q?") == pytest.approx(0.85)
    assert "Ground truth: A" in asked[0]
    assert LLMJudge(lambda m: "no number").score("B", ["A"]) == 0.0
    assert LLMMemoryJudge(lambda m: "7").score(["x"], FACTS) == 1.0  # clipped to [0, 1]
    assert FactOverlapJudge().score(FACTS, FACTS) == 1.0
    assert isinstance(make_judge("em"), ExactMatchJudge) and isinstance(make_judge(None), F1Judge)
    with pytest.raises(UnknownName, match="Did you mean 'f1'"):
        make_judge("f11")
    with pytest.raises(InvalidConfig):
        make_judge(3)
