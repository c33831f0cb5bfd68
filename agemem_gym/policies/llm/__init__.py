"""LLM policies and what they run on.

- :mod:`~agemem_gym.policies.llm.hf_policy`: ``HFPolicy``, a Hugging Face causal LM that
  plays any env and records what training needs (prompt/response ids, log-probs);
- :mod:`~agemem_gym.policies.llm.decode` and :mod:`~agemem_gym.policies.llm.prefix_cache`:
  its prefill-and-decode loop, which prefills only the tokens after the longest prefix it
  has already run (the last turn, a group's shared prompt, the system prompt);
- :mod:`~agemem_gym.policies.llm.vllm_policy`: the same interface on vLLM (GPU);
- :mod:`~agemem_gym.policies.llm.openai_policy`: ``openai:MODEL``, a model behind an
  OpenAI-compatible endpoint (vLLM/SGLang/llama.cpp servers, hosted APIs), over the one
  HTTP client in :mod:`~agemem_gym.policies.llm.openai_client` (standard library only);
- :mod:`~agemem_gym.policies.llm.constrained`: grammar-constrained turns (llguidance);
- :mod:`~agemem_gym.policies.llm.models`: model and tokenizer loading (the bundled
  SmolLM2 GGUF, tiny models built from a config);
- :mod:`~agemem_gym.policies.llm.chat`: chat callables (a local HF model or an
  OpenAI-compatible endpoint) for the judges and the baselines' LLM steps.

Nothing here is imported by ``agemem_gym.policies``: torch and transformers load only
when one of these modules is imported (the ``[train]`` extra).
"""
