"""``demonstrator``: the oracle's memory management with answers taken only from memory.

The ``oracle`` (:class:`~agemem_gym.policies.scripted.OraclePolicy`) is the privileged upper
bound: it answers with the gold answer whatever its memory holds, so its score says nothing
about memory and its trajectories would teach answering without it. The demonstrator keeps
what the oracle does with memory (it stores each gold fact as the message words it, keeps
it current, filters Stage-2 distractors) but in Stage 3 it retrieves with the question and
answers from the retrieved memories alone (:func:`answer_from`: the
:class:`~agemem_gym.policies.reader.ExtractiveReader`'s answer, or the whole best sentence);
with nothing retrieved it says it does not know. Every turn it plays is one a learner could
play from its own observation, except for the choice of what to store, which reads
``info["privileged"]["facts"]``: its episodes are demonstrations for behaviour cloning
(``agemem sft``), and its score measures the memory it built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agemem_gym.policies.base import Observation
from agemem_gym.policies.reader import ExtractiveReader
from agemem_gym.policies.scripted import OraclePolicy, retrieved_memories
from agemem_gym.text import split_sentences
from agemem_gym.tools import RETRIEVE_MEMORY, format_answer, format_tool_call

__all__ = ["DemonstratorPolicy", "UNKNOWN", "answer_from"]

UNKNOWN = "I don't know."
"""The answer when retrieval brought nothing back."""


_READER_FALLBACK_WORDS = 5  # ExtractiveReader.answer's last resort: the best sentence's first five words


def answer_from(reader: ExtractiveReader, query: str, passages: Sequence[str]) -> str:
    """The reader's answer, or the whole sentence when the reader found no answer in it.

    With no entity, number or option to extract, :meth:`ExtractiveReader.answer` falls back
    to the first five words of the best sentence ("the secret colour of the"), which cuts
    off the answer itself; the whole sentence is the better answer then.
    """
    answer = reader.answer(query, passages)
    for sentence in (s for p in passages for s in split_sentences(p)):
        words = sentence.split()
        if len(words) > _READER_FALLBACK_WORDS and " ".join(words[:_READER_FALLBACK_WORDS]) == answer:
            return sentence
    return answer


class DemonstratorPolicy(OraclePolicy):
    """Stores the gold facts as stated, retrieves with the question, answers only from what it retrieved.

    Args:
        top_k: Memories retrieved in Stage 3.
        seed: Seeds the random valid actions of interactive worlds.

    Example:
        >>> from agemem_gym import policies
        >>> policies.make("demonstrator").needs_privileged_info
        True
    """

    name = "demonstrator"
    needs_privileged_info = True  # Stage 1 only: which sentences are worth storing

    def stage3(self, observation: Observation, info: Mapping[str, Any], query: str, fresh: bool) -> str:
        """Turn in Stage 3: retrieve with the question, then answer from the retrieved memories alone."""
        if fresh:
            call = {"name": RETRIEVE_MEMORY, "arguments": {"query": query, "top_k": self.top_k}}
            return format_tool_call([call], "Look up what I stored about the question.")
        passages = retrieved_memories(observation)
        if not passages:
            return format_answer(UNKNOWN, "Nothing stored about it.")
        return format_answer(answer_from(self.reader, query, passages), "Answer from the retrieved memories.")

    def world_turn(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """Retrieve with the goal once, then replay the remembered steps (no expert moves)."""
        return self._retrieve_then_follow(observation, info)
