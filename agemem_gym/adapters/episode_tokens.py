"""One AgeMem episode as one token sequence: the rule every single-sequence trainer bridge uses.

Trainers such as TRL's ``GRPOTrainer(rollout_func=...)`` and verl's agent loops take one
``prompt + completion`` token sequence per rollout, with a mask that is 1 on the model's
tokens and 0 on the environment's. An AgeMem episode is **not** one growing conversation:
Stage 2 resets the context, ``Summary_context`` / ``Filter_context`` rewrite it and the
packer drops old messages. :class:`EpisodeAssembler` turns the turns an episode actually
played (each turn's sampled prompt ids and generated ids) into one sequence by this rule:

1. The sequence starts with turn 0's sampled prompt (``prompt_ids``); the completion is
   each turn's generated ids (mask 1) joined by environment tokens (mask 0).
2. **Append** (``"append"``): when turn ``t``'s sampled prompt starts, token for token,
   with the current *segment* (everything since the last restart), the environment tokens
   are the rest of that prompt: the env's actual new messages, rendered exactly as the
   policy saw them.
3. **Re-tokenised** (``"retokenized"``): when only the *text* of the segment is a prefix
   of the sampled prompt's text (the chat template re-tokenised the model's own turn
   differently from how it was sampled), the environment tokens are the tokenised rest of
   the text; the context reads the same but its token ids differ.
4. **Restart** (``"restart"``): when the env rewrote its context (Stage-2 reset, a summary,
   a filter, packing dropping messages), the previous assistant turn is closed with the
   chat template's end-of-turn text and the **whole** sampled prompt of turn ``t`` follows,
   system message first, as a new segment. The model then trains on turn ``t`` after the
   exact context it sampled in, preceded by the stale earlier segments (TRL and verl
   cannot mask attention between segments), so the training context differs from the
   sampling context by that stale prefix.

Every full prompt is rendered by the policy from the env's own observation (never a
message rendered alone), so templates that inject a default system prompt into a
segment without one (SmolLM2's) never add text the policy did not see.
:class:`TurnAlignment` records, per turn, which case applied and whether the training
context equals the sampling context; :func:`alignment_summary` turns those into the
fractions a user should read before trusting single-sequence training on a task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from agemem_gym.error import InvalidConfig

__all__ = ["TurnAlignment", "EpisodeTokens", "EpisodeAssembler", "alignment_summary", "turn_close_text"]

_MARK = "AGEMEMTURNCLOSEMARK"


@dataclasses.dataclass(frozen=True)
class TurnAlignment:
    """How one turn's training context relates to the context it was sampled in.

    Attributes:
        kind: ``"first"``, ``"append"``, ``"retokenized"`` or ``"restart"`` (module docstring).
        exact: The tokens before this turn's response in the assembled sequence are exactly
            its sampled prompt ids.
        segment_exact: The current segment (since the last restart) is exactly the sampled
            prompt; ``exact`` implies it.
    """

    kind: str
    exact: bool
    segment_exact: bool


@dataclasses.dataclass(frozen=True)
class EpisodeTokens:
    """An episode assembled into one sequence.

    Attributes:
        prompt_ids: Turn 0's sampled prompt.
        completion_ids: Every later token: responses and environment tokens.
        env_mask: Per completion token, 1 for a model token (trained), 0 for an env token.
        logprobs: Per completion token, the sampling log-prob (0.0 on env tokens).
        turns: One :class:`TurnAlignment` per turn.
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]
    logprobs: list[float]
    turns: list[TurnAlignment]

    def agent_loop_fields(
        self, reward_score: float | None = None, metrics: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The fields of a verl ``AgentLoopOutput`` (``docs/verl-recipe.md``).

        Args:
            reward_score: The episode's reward (``None``: verl's reward manager scores it).
            metrics: Extra per-rollout metrics.

        Returns:
            ``prompt_ids``, ``response_ids``, ``response_mask``, ``response_logprobs``,
            ``reward_score``, ``num_turns`` and ``extra_fields`` (the alignment summary).
        """
        return {
            "prompt_ids": list(self.prompt_ids),
            "response_ids": list(self.completion_ids),
            "response_mask": list(self.env_mask),
            "response_logprobs": list(self.logprobs),
            "reward_score": reward_score,
            # verl counts user and assistant turns; each AgeMem turn is one of each
            "num_turns": 2 * len(self.turns),
            "metrics": dict(metrics or {}),
            "extra_fields": {"alignment": alignment_summary([self.turns])},
        }


def turn_close_text(tokenizer: Any) -> str:
    """The text a chat template puts after an assistant message's content (ChatML: ``<|im_end|>`` and a newline).

    Falls back to the tokenizer's end-of-sequence token when the template cannot render one.
    """
    messages = [{"role": "user", "content": "u"}, {"role": "assistant", "content": _MARK}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # noqa: BLE001 - any template failure means: no template-specific close
        text = ""
    if isinstance(text, str) and _MARK in text:
        return text[text.rindex(_MARK) + len(_MARK) :]
    return str(getattr(tokenizer, "eos_token", "") or "")


def _overlap(text: str, close: str) -> int:
    """Length of the longest prefix of ``close`` that ``text`` already ends with."""
    for k in range(len(close), 0, -1):
        if text.endswith(close[:k]):
            return k
    return 0


class EpisodeAssembler:
    """Builds :class:`EpisodeTokens` turn by turn (the rule is in the module docstring).

    Args:
        tokenizer: The policy's tokenizer (decode and encode; its chat template gives the
            end-of-turn text used at a restart).
        end_token: Appended (mask 0) by :meth:`finish` when the last response does not end
            with it, so a trainer that reads a missing end-of-sequence token as a truncated
            completion (TRL) does not; ``None`` appends nothing.

    Example:
        >>> asm = EpisodeAssembler(tokenizer)  # doctest: +SKIP
        >>> for rec in turn_records:  # doctest: +SKIP
        ...     asm.add_turn(rec.prompt_ids, rec.response_ids, rec.logprobs)
        >>> tokens = asm.finish()  # doctest: +SKIP
    """

    def __init__(self, tokenizer: Any, end_token: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.end_token = end_token
        self.close_text = turn_close_text(tokenizer)
        self._ids: list[int] = []  # prompt + completion
        self._prompt_len = 0
        self._mask: list[int] = []
        self._logprobs: list[float] = []
        self._segment = 0  # where the current segment starts in _ids
        self._turns: list[TurnAlignment] = []

    def _decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def _encode(self, text: str) -> list[int]:
        return [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]

    def _env_tokens(self, prompt: list[int]) -> tuple[str, list[int]]:
        """The case that applies to the next sampled prompt and the env tokens it adds."""
        segment = self._ids[self._segment :]
        if prompt[: len(segment)] == segment:
            return "append", prompt[len(segment) :]
        seen, text = self._decode(segment), self._decode(prompt)
        if text.startswith(seen):
            return "retokenized", self._encode(text[len(seen) :])
        close = self._encode(self.close_text[_overlap(seen, self.close_text) :])
        return "restart", close + prompt

    def add_turn(
        self, prompt_ids: Sequence[int], response_ids: Sequence[int], logprobs: Sequence[float] | None = None
    ) -> TurnAlignment:
        """Add one played turn: the prompt it was sampled from and what the model generated.

        Args:
            prompt_ids: The turn's full sampled prompt (chat template applied).
            response_ids: The generated tokens.
            logprobs: Their sampling log-probs (default 0.0 each).

        Returns:
            How the turn's training context relates to ``prompt_ids``.
        """
        prompt = [int(i) for i in prompt_ids]
        response = [int(i) for i in response_ids]
        lps = [0.0] * len(response) if logprobs is None else [float(x) for x in logprobs]
        if len(lps) != len(response):
            raise InvalidConfig(f"{len(lps)} log-probs for {len(response)} response tokens; expected one per token")
        if not self._turns:
            kind = "first"
            self._ids, self._prompt_len = list(prompt), len(prompt)
        else:
            kind, env = self._env_tokens(prompt)
            if kind == "restart":
                self._segment = len(self._ids) + len(env) - len(prompt)
            self._extend(env, 0, [0.0] * len(env))
        turn = TurnAlignment(kind, self._ids == prompt, self._ids[self._segment :] == prompt)
        self._extend(response, 1, lps)
        self._turns.append(turn)
        return turn

    def _extend(self, ids: list[int], mask: int, logprobs: list[float]) -> None:
        self._ids += ids
        self._mask += [mask] * len(ids)
        self._logprobs += logprobs

    def finish(self) -> EpisodeTokens:
        """The assembled episode (the assembler can keep adding turns afterwards)."""
        if not self._turns:
            raise InvalidConfig("no turns were added; an episode has at least one turn")
        ids, mask, lps = list(self._ids), list(self._mask), list(self._logprobs)
        if self.end_token is not None and ids[-1] != self.end_token:
            ids, mask, lps = ids + [self.end_token], mask + [0], lps + [0.0]
        p = self._prompt_len
        return EpisodeTokens(ids[:p], ids[p:], mask, lps, list(self._turns))


def alignment_summary(episodes: Iterable[Sequence[TurnAlignment]]) -> dict[str, float]:
    """Turn counts and fractions over episodes' :class:`TurnAlignment` lists.

    Returns:
        ``turns``, ``episodes``, the count of each kind (``first``, ``append``,
        ``retokenized``, ``restart``), ``differs`` (turns whose training context is not
        exactly their sampling context), ``fraction_differs``, ``segment_differs`` (not even
        the current segment matches) and ``fraction_segment_differs``.
    """
    counts = {"turns": 0, "episodes": 0, "first": 0, "append": 0, "retokenized": 0, "restart": 0}
    differs = segment_differs = 0
    for turns in episodes:
        counts["episodes"] += 1
        for turn in turns:
            counts["turns"] += 1
            counts[turn.kind] += 1
            differs += not turn.exact
            segment_differs += not turn.segment_exact
    n = max(1, counts["turns"])
    return {
        **{k: float(v) for k, v in counts.items()},
        "differs": float(differs),
        "fraction_differs": differs / n,
        "segment_differs": float(segment_differs),
        "fraction_segment_differs": segment_differs / n,
    }
