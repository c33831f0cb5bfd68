import pytest

from agemem_gym.graders.abstention import ABSTAIN, declines
from agemem_gym.graders.locomo import REFUSAL


@pytest.mark.parametrize(
    "text",
    [
        ABSTAIN,
        REFUSAL,
        "You never mentioned the name of your cat.",
        "That wasn\u2019t mentioned in our chats.",
        "I don't know.",
        "I do not have any information about violin lessons.",
        "The information provided is not enough to answer.",
        "There is insufficient information to say.",
        "You haven't told me what breed your cat is.",
        "I cannot determine how many lessons you took.",
        "It can't be determined from our conversations.",
        "There's no record of a trip to Japan.",
        "I'm not sure; you did not mention it.",
        "NOT MENTIONED",
    ],
)
def test_declining_phrasings(text):
    assert declines(text)


@pytest.mark.parametrize(
    "text",
    [
        "A golden retriever",
        "3",
        "You did not have time to visit Rome, so you went to Milan.",
        "The store is not far from your office.",
        "Tram 28",
        "You do not like mushrooms.",
        "Not yet: the parcel arrives on Monday.",
        "",
    ],
)
def test_answers_are_not_refusals(text):
    assert not declines(text)
