"""Chat callables (``list[dict] -> str``) for judges and the LLM steps of baseline policies.

* :class:`HFChat`: any local Hugging Face chat model (``"smollm2"``, ``"tiny"`` or a folder),
  greedy decoding, loaded once per process and shared by every caller.
* :class:`OpenAIChat`: an OpenAI-compatible ``/chat/completions`` endpoint (vLLM, llama.cpp
  server, Ollama, a hosted API) through :class:`~agemem_gym.policies.llm.openai_client.OpenAIClient`
  (standard library, retries with backoff), so it needs no extra package.
* :func:`make_chat` builds one from a spec string: ``"hf:smollm2"``, ``"hf:/path/to/model"``
  or ``"openai:MODEL"`` (base URL from ``base_url`` or ``$OPENAI_BASE_URL``, key from
  ``$OPENAI_API_KEY``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from agemem_gym.error import InvalidConfig
from agemem_gym.policies.llm.openai_client import OpenAIClient

__all__ = ["HFChat", "OpenAIChat", "make_chat"]


@functools.lru_cache(maxsize=4)
def _shared_model(name_or_path: str) -> tuple[Any, Any]:
    from agemem_gym.policies.llm.models import load_model

    return load_model(name_or_path)


class HFChat:
    """A local chat model as ``list[dict] -> str`` (greedy, deterministic).

    Args:
        model: ``"smollm2"``, ``"tiny"`` or a local Hugging Face folder.
        max_new_tokens: Longest reply.

    Example:
        >>> chat = HFChat("smollm2")  # doctest: +SKIP
        >>> chat([{"role": "user", "content": "Say hi."}])  # doctest: +SKIP
        'Hi!'
    """

    def __init__(self, model: str = "smollm2", max_new_tokens: int = 64) -> None:
        if max_new_tokens < 1:
            raise InvalidConfig(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.model_name = str(model)
        self.name = f"hf:{self.model_name}"
        self.max_new_tokens = int(max_new_tokens)

    def __call__(self, messages: Sequence[dict[str, str]]) -> str:
        """The model's reply to ``messages``."""
        import torch

        model, tok = _shared_model(self.model_name)
        prompt = tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(
                **ids,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )
        return str(tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)).strip()

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)  # the model is process-global (lru_cache), never pickled


class OpenAIChat:
    """An OpenAI-compatible chat endpoint as ``list[dict] -> str``.

    Args:
        model: Model name the server knows.
        base_url: e.g. ``http://localhost:8000/v1`` (default ``$OPENAI_BASE_URL``).
        api_key: Bearer token (default ``$OPENAI_API_KEY``; optional for local servers).
        max_tokens: Longest reply.
        timeout: Seconds per request.
        max_retries: Further attempts after a connection error, timeout, 429, 5xx or garbage
            reply (:class:`~agemem_gym.policies.llm.openai_client.OpenAIClient`).
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int = 64,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        if not model:
            raise InvalidConfig("OpenAIChat needs a model name")
        self.client = OpenAIClient(base_url, api_key, timeout=timeout, max_retries=max_retries, owner="OpenAIChat")
        self.model = model
        self.base_url = self.client.base_url
        self.max_tokens = int(max_tokens)
        self.name = f"openai:{model}@{self.base_url}"

    def __call__(self, messages: Sequence[dict[str, str]]) -> str:
        """The endpoint's reply (temperature 0).

        Raises:
            EndpointError: The endpoint failed (a ``ConnectionError``).
        """
        body = {"model": self.model, "messages": list(messages), "temperature": 0.0, "max_tokens": self.max_tokens}
        payload = self.client.chat(body)
        return str(payload["choices"][0]["message"].get("content") or "").strip()


def make_chat(spec: str, base_url: str | None = None, max_new_tokens: int = 64) -> HFChat | OpenAIChat:
    """A chat callable from ``"hf:NAME_OR_PATH"`` or ``"openai:MODEL"``.

    Args:
        spec: The spec string.
        base_url: For ``openai:``: the endpoint (default ``$OPENAI_BASE_URL``).
        max_new_tokens: Longest reply.

    Returns:
        The callable; its ``name`` says what it is (for reports).
    """
    kind, _, rest = str(spec).partition(":")
    if kind == "hf" and rest:
        return HFChat(rest, max_new_tokens=max_new_tokens)
    if kind == "openai" and rest:
        return OpenAIChat(rest, base_url=base_url, max_tokens=max_new_tokens)
    raise InvalidConfig(f"chat spec must be 'hf:NAME_OR_PATH' or 'openai:MODEL', got {spec!r}")
