"""``VLLMPolicy``: the same interface as :class:`~agemem_gym.policies.llm.hf_policy.HFPolicy` on vLLM.

A faster rollout backend for GPUs (``pip install "agemem-gym[vllm]"``). It renders prompts
with the same chat template, samples with plain temperature and returns the same
:class:`~agemem_gym.policies.llm.hf_policy.TurnRecord` objects, with log-probabilities after
temperature scaling (``logprobs_mode="processed_logprobs"``) so they match what the trainer
recomputes. :meth:`VLLMPolicy.load_weights` pushes trained weights into the colocated
engine between GRPO steps.

vLLM pins its own torch and CUDA builds; it is not installable on CPU-only machines, and
its tests are skipped where it is absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agemem_gym.error import InvalidConfig, missing_dependency
from agemem_gym.policies.base import BasePolicy, Observation
from agemem_gym.policies.llm.hf_policy import DEFAULT_STOPS, TurnRecord, render_prompt

__all__ = ["VLLMPolicy"]


def _vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise missing_dependency("vllm", "vllm") from exc
    return vllm


class VLLMPolicy(BasePolicy):
    """A vLLM engine as a policy for memory environments.

    Args:
        model: A local model folder (nothing is downloaded when ``HF_HUB_OFFLINE=1``).
        max_new_tokens: Longest turn.
        temperature: Sampling temperature.
        tools: As in :class:`~agemem_gym.policies.llm.hf_policy.HFPolicy`.
        stop_strings: Stop right after any of these (kept in the output).
        seed: Seeds sampling (per call: ``seed`` plus a call counter).
        gpu_memory_utilization: Share of GPU memory vLLM may take (leave room for training).
        **engine_kwargs: Passed to ``vllm.LLM``.
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        max_new_tokens: int = 2048,
        temperature: float = 0.6,
        tools: bool | str = "auto",
        stop_strings: Sequence[str] = DEFAULT_STOPS,
        seed: int = 0,
        gpu_memory_utilization: float = 0.4,
        **engine_kwargs: Any,
    ) -> None:
        vllm = _vllm()
        if temperature <= 0 or max_new_tokens < 1:
            raise InvalidConfig("temperature must be > 0 and max_new_tokens >= 1")
        self.llm = vllm.LLM(
            model=model,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            logprobs_mode="processed_logprobs",
            **engine_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.tools = tools
        self.stop_strings = tuple(stop_strings)
        self.seed = int(seed)
        self._calls = 0
        self.last_records: list[TurnRecord] = []

    def reseed(self, seed: int) -> None:
        """Restart the sampling stream."""
        self.seed, self._calls = int(seed), 0

    def encode(self, observation: Observation) -> list[int]:
        """Prompt token ids for ``observation``."""
        text = render_prompt(self.tokenizer, observation, self.tools)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def act(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """Generate one turn."""
        return self.act_batch([observation], [info])[0]

    def act_batch(self, observations: Sequence[Observation], infos: Sequence[Mapping[str, Any]]) -> list[str]:
        """Generate one turn per observation; the records land in :attr:`last_records`."""
        self.last_records = self.generate(observations, infos)
        return [r.text for r in self.last_records]

    def generate(
        self, observations: Sequence[Observation], infos: Sequence[Mapping[str, Any]] | None = None
    ) -> list[TurnRecord]:
        """Generate turns for ``observations`` in one engine call.

        Args:
            observations: One chat context per turn.
            infos: The matching env ``info`` dicts; accepted so the GRPO rollouts call every
                backend the same way (``HFPolicy.generate`` reads ``valid_actions`` from them;
                this backend does not constrain turns).

        Returns:
            One :class:`TurnRecord` per observation.
        """
        vllm = _vllm()
        prompts = [self.encode(o) for o in observations]
        params = vllm.SamplingParams(
            temperature=self.temperature,
            top_p=1.0,
            top_k=-1,
            max_tokens=self.max_new_tokens,
            stop=list(self.stop_strings),
            include_stop_str_in_output=True,
            logprobs=0,
            seed=self.seed * 1_000_003 + self._calls,
        )
        self._calls += 1
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        records = []
        for prompt, out in zip(prompts, outputs):
            choice = out.outputs[0]
            ids = list(choice.token_ids)
            lps = [float(step[tok].logprob) for tok, step in zip(ids, choice.logprobs or [])]
            records.append(
                TurnRecord(tuple(prompt), tuple(ids), tuple(lps), choice.text, choice.finish_reason == "stop")
            )
        return records

    def load_weights(self, named_parameters: Iterable[tuple[str, Any]]) -> None:
        """Copy trained weights into the engine (colocated, single-GPU engine)."""
        runner_model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        for name, tensor in named_parameters:
            runner_model.load_weights([(name, tensor)])
        self.llm.reset_prefix_cache()
