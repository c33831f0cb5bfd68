"""vLLM is GPU-only and pins its own torch: these tests run where it is installed and skip elsewhere."""

import importlib.util

import pytest

from agemem_gym.error import DependencyNotInstalled


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_missing_vllm_names_the_extra():
    from agemem_gym.policies.llm.vllm_policy import VLLMPolicy

    with pytest.raises(DependencyNotInstalled, match=r"agemem-gym\[vllm\]"):
        VLLMPolicy("any-model")


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vllm and a GPU")
def test_vllm_turns_match_the_hf_interface():
    import gymnasium as gym

    import agemem_gym  # noqa: F401
    from agemem_gym.policies.llm.models import smollm2_path
    from agemem_gym.policies.llm.vllm_policy import VLLMPolicy

    policy = VLLMPolicy(str(smollm2_path()), max_new_tokens=32, gpu_memory_utilization=0.3)
    env = gym.make("AgeMem/HotpotQA-v0", tokenizer=policy.tokenizer)
    obs, info = env.reset(seed=0)
    rec = policy.generate([obs, obs])[0]
    assert len(rec.logprobs) == len(rec.response_ids) and rec.text


def test_generate_takes_what_the_grpo_rollouts_pass():
    """collect_groups calls policy.generate(observations, infos): both backends must accept it."""
    import inspect

    from agemem_gym.policies.llm.hf_policy import HFPolicy
    from agemem_gym.policies.llm.vllm_policy import VLLMPolicy

    hf = list(inspect.signature(HFPolicy.generate).parameters)
    vllm = list(inspect.signature(VLLMPolicy.generate).parameters)
    assert hf == vllm == ["self", "observations", "infos"]
