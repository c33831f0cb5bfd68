"""The behaviour-cloning loss: next-token cross-entropy on the agent's turns only, prefix shared.

Each demonstration becomes a :class:`TurnSample`: the prompt is the observation rendered
exactly as :class:`~agemem_gym.policies.llm.hf_policy.HFPolicy` renders it
(:func:`~agemem_gym.policies.llm.hf_policy.render_prompt`: chat template, tool schemas by
the same rule, generation prompt), and the response is the turn's tokens followed by the
end-of-turn token, as the policy would generate it. Only response tokens carry loss.

**Shared prefix.** The turns of a batch share a long prefix (the system prompt; for turns
of one episode and stage, the history too). :func:`shared_row` lays a batch out as one row,
the common prefix once followed by each sample's remainder, with a 4-D attention mask under
which each remainder sees the prefix and itself (causally) and position ids that continue
the prefix's. Every token then has exactly the keys, values and positions it would have in
its own sequence, so the loss and its gradients equal those of the samples run one by one
(``tests/adapters/test_sft.py`` checks both), while the prefix's layers run once per row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from agemem_gym.adapters.sft.demos import Demonstration
from agemem_gym.policies.llm.hf_policy import render_prompt

__all__ = ["TurnSample", "encode_demonstrations", "common_prefix", "shared_row", "turn_loss", "split_rows"]


@dataclasses.dataclass(frozen=True)
class TurnSample:
    """One demonstration in tokens.

    Attributes:
        prompt_ids: The rendered observation (generation prompt included).
        response_ids: The turn's tokens and the end-of-turn token: the loss covers these.
    """

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)


def encode_demonstrations(
    tokenizer: Any, demos: Sequence[Demonstration], tools: bool | str = "auto"
) -> list[TurnSample]:
    """Tokenise demonstrations as the HF policy renders its prompts.

    Args:
        tokenizer: The model's tokenizer (with a chat template).
        demos: The demonstrations.
        tools: The policy's ``tools`` setting (``"auto"``: schemas only when the system
            prompt does not list the tools).

    Returns:
        One sample per demonstration.
    """
    end = [] if tokenizer.eos_token_id is None else [int(tokenizer.eos_token_id)]
    samples = []
    for demo in demos:
        prompt = render_prompt(tokenizer, list(demo.messages), tools)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        turn_ids = tokenizer(demo.turn, add_special_tokens=False)["input_ids"]
        samples.append(TurnSample(tuple(prompt_ids), tuple(turn_ids) + tuple(end)))
    return samples


def common_prefix(samples: Sequence[TurnSample]) -> int:
    """Length of the prompt prefix every sample shares (never past a prompt's end)."""
    if not samples:
        return 0
    first, n = samples[0].prompt_ids, min(len(s.prompt_ids) for s in samples)
    for s in samples[1:]:
        k = 0
        while k < n and s.prompt_ids[k] == first[k]:
            k += 1
        n = k
    return n


@dataclasses.dataclass(frozen=True)
class SharedRow:
    """A batch laid out as one row (see the module docstring).

    Attributes:
        ids: ``(1, L)`` token ids: the prefix, then each sample's remainder.
        positions: ``(1, L)`` position ids: each remainder continues the prefix.
        allowed: ``(L, L)`` bool: which keys each query may attend to.
        predictors: ``(T,)`` row positions whose hidden states predict the targets.
        targets: ``(T,)`` the response tokens.
    """

    ids: torch.Tensor
    positions: torch.Tensor
    allowed: torch.Tensor
    predictors: torch.Tensor
    targets: torch.Tensor


def shared_row(samples: Sequence[TurnSample], prefix_len: int) -> SharedRow:
    """Lay ``samples`` out as one row with their first ``prefix_len`` tokens written once.

    Args:
        samples: Samples whose prompts all start with the same ``prefix_len`` tokens.
        prefix_len: 0 gives each sample its own segment (no sharing).

    Returns:
        The row.
    """
    if prefix_len > min(len(s.prompt_ids) for s in samples):
        raise ValueError("prefix_len must not exceed the shortest prompt")
    ids = list(samples[0].prompt_ids[:prefix_len])
    positions, segments = list(range(prefix_len)), [-1] * prefix_len
    predictors: list[int] = []
    targets: list[int] = []
    for i, s in enumerate(samples):
        tokens, offset = list(s.prompt_ids) + list(s.response_ids), len(ids)
        ids += tokens[prefix_len:]
        positions += range(prefix_len, len(tokens))
        segments += [i] * (len(tokens) - prefix_len)

        def where(k: int, offset: int = offset) -> int:  # row position of the sample's token k
            return k if k < prefix_len else offset + k - prefix_len

        predictors += [where(k - 1) for k in range(len(s.prompt_ids), len(tokens))]
        targets += list(s.response_ids)
    seg = torch.tensor(segments)
    width = len(ids)
    causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
    # a remainder sees the shared prefix (segment -1) and itself; the prefix sees itself
    allowed = causal & ((seg[:, None] == seg[None, :]) | (seg[None, :] == -1))
    return SharedRow(
        torch.tensor([ids]), torch.tensor([positions]), allowed, torch.tensor(predictors), torch.tensor(targets)
    )


def _logits(model: Any, states: torch.Tensor) -> torch.Tensor:
    """The vocabulary logits of ``states`` in float32 (with the config's final soft-cap, if any)."""
    logits = model.get_output_embeddings()(states).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def turn_loss(model: Any, samples: Sequence[TurnSample], *, shared_prefix: bool = True) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy of the samples' response tokens, from one forward pass.

    Args:
        model: A causal LM accepting a 4-D additive attention mask (Llama, Qwen2, SmolLM2, ...;
            a PEFT-wrapped one too).
        samples: One row's samples.
        shared_prefix: Write their common prompt prefix once (``False``: a segment per sample;
            the result is the same up to float rounding).

    Returns:
        ``(summed loss, number of response tokens)``; divide for the token mean.
    """
    param = next(model.parameters())
    row = shared_row(samples, common_prefix(samples) if shared_prefix else 0)
    mask = torch.zeros(row.allowed.shape, dtype=param.dtype).masked_fill_(~row.allowed, torch.finfo(param.dtype).min)
    hidden = model.get_decoder()(
        input_ids=row.ids.to(param.device),
        attention_mask=mask[None, None].to(param.device),
        position_ids=row.positions.to(param.device),
        use_cache=False,
    ).last_hidden_state[0]
    logits = _logits(model, hidden[row.predictors.to(param.device)])
    loss = torch.nn.functional.cross_entropy(logits, row.targets.to(param.device), reduction="sum")
    return loss, int(row.targets.numel())


def split_rows(samples: Sequence[TurnSample], row_tokens: int) -> list[list[TurnSample]]:
    """Split a batch into rows of at most ``row_tokens`` tokens once the common prefix is shared.

    Samples keep their order; a sample longer than ``row_tokens`` gets a row of its own.
    """
    rows: list[list[TurnSample]] = []
    for s in samples:
        if rows:
            trial = rows[-1] + [s]
            prefix = common_prefix(trial)
            if prefix + sum(len(t) - prefix for t in trial) <= row_tokens:
                rows[-1] = trial
                continue
        rows.append([s])
    return rows
