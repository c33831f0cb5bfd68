"""``OpenAIPolicy``: a served model (vLLM, SGLang, llama.cpp, Ollama, a hosted API) as a policy.

It sends each observation to an OpenAI-compatible ``/chat/completions`` endpoint as the same
chat messages :class:`~agemem_gym.policies.llm.hf_policy.HFPolicy` renders (system prompt with
the tool list, then the context), one request per sub-env, concurrently, and hands the
replies back as turns in the env's grammar.

>>> from agemem_gym import policies
>>> policy = policies.make("openai:Qwen/Qwen3-8B", base_url="http://localhost:8000/v1")  # doctest: +SKIP

or, from the command line::

    agemem eval --policy openai:Qwen/Qwen3-8B --base-url http://localhost:8000/v1

Tools reach the model in one of two ways (``tools=``):

* ``"text"`` (default): the tool list stays in the system prompt, as the env wrote it, and the
  reply's text is the turn (``<think>...</think><tool_call>[...]</tool_call>``);
* ``"schema"``: the tool schemas go in the request's ``tools=[{"type": "function", ...}]`` and the
  reply's ``tool_calls`` are written back into the env's ``<tool_call>`` JSON text (the server
  must run a tool-call parser, e.g. vLLM's ``--enable-auto-tool-choice --tool-call-parser``);
* ``"auto"``: ``"schema"`` only when the system prompt does not list the tools (what
  ``HFPolicy(tools="auto")`` does with a chat template).

An endpoint failure (unreachable, unknown model, errors or garbage after the retries) raises
:class:`~agemem_gym.error.EndpointError`; it is never sent to the env as a turn.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from agemem_gym.error import InvalidConfig
from agemem_gym.policies.base import BasePolicy, Observation
from agemem_gym.policies.llm.hf_policy import DEFAULT_STOPS, chat_messages, wants_tool_schemas
from agemem_gym.policies.llm.openai_client import OpenAIClient
from agemem_gym.tools import format_tool_call, tool_schemas
from agemem_gym.typecheck import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

__all__ = ["OpenAIPolicy", "reply_turn"]

_TOOL_MODES = ("text", "schema", "auto")
_THINK = re.compile(r"</?think>")


def _tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """One OpenAI ``tool_calls`` entry as the env's ``{"name", "arguments"}`` call.

    Arguments that are not a JSON object are passed on as they came: the env answers the
    model's mistake with a tool message (a model error, not an endpoint error).
    """
    found = call.get("function")
    function: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    arguments: Any = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            pass
    return {"name": function.get("name"), "arguments": arguments}


def _restore_stop(text: str, choice: Mapping[str, Any], stops: Sequence[str]) -> str:
    """Put back the stop string the server cut off (OpenAI's ``stop`` drops it from the reply).

    vLLM reports it as ``stop_reason``, SGLang as ``matched_stop``; elsewhere a reply that
    stopped with an opening tag still open ended on that tag's closing stop string.
    """
    if not stops or choice.get("finish_reason") != "stop":
        return text
    for key in ("stop_reason", "matched_stop"):
        if key in choice:
            matched = choice[key]
            return text + matched if isinstance(matched, str) and matched in stops else text
    for stop in stops:
        opening = stop.replace("</", "<", 1)
        if text.count(opening) > text.count(stop):
            return text + stop
    return text


def reply_turn(choice: Mapping[str, Any], stops: Sequence[str] = ()) -> str:
    """The env turn (grammar text) of one ``/chat/completions`` choice.

    Args:
        choice: ``choices[i]`` of the reply (it has a ``message`` dict).
        stops: The stop strings the request named (restored when the server cut one off).

    Returns:
        ``tool_calls`` written as ``<think>...</think><tool_call>[...]</tool_call>`` (the think
        text from the reasoning or the content), else the content, with the reasoning a server
        split off (``reasoning_content`` / ``reasoning``) put back in ``<think>`` when the
        content has none.
    """
    message = choice["message"]
    content = str(message.get("content") or "")
    reasoning = str(message.get("reasoning_content") or message.get("reasoning") or "")
    calls = message.get("tool_calls") or []
    if calls:
        think = " ".join(p for p in (reasoning.strip(), _THINK.sub("", content).strip()) if p)
        return format_tool_call([_tool_call(c) for c in calls if isinstance(c, Mapping)], think)
    text = _restore_stop(content, choice, stops)
    if reasoning and "<think>" not in text:
        text = f"<think>{reasoning}</think>{text}"
    return text


class OpenAIPolicy(BasePolicy):
    """A model behind an OpenAI-compatible chat endpoint, acting on every sub-env concurrently.

    Args:
        model: The model name the server knows (``openai:MODEL`` in :func:`agemem_gym.policies.make`).
        base_url: e.g. ``http://localhost:8000/v1`` (default ``$OPENAI_BASE_URL``).
        api_key: Bearer token (default ``$OPENAI_API_KEY``; local servers need none).
        tools: ``"text"``, ``"schema"`` or ``"auto"`` (see the module docstring).
        max_new_tokens: ``max_tokens`` of each request.
        temperature: Sampling temperature (0: greedy).
        seed: Request ``seed`` is ``seed * 1_000_003`` plus a request counter
            (:meth:`reseed` restarts it); servers that honour it replay a run.
        stop: Stop strings; ``"auto"``: the closing tags in ``"text"`` mode, none with schemas
            (a server's tool-call parser needs the whole call).
        max_concurrency: Most requests in flight at once (a batch of more waits its turn).
        timeout: Seconds one request may take.
        max_retries: Further attempts after a connection error, timeout, 429, 5xx or garbage
            reply; then :class:`~agemem_gym.error.EndpointError`.
        backoff: Seconds before the first retry (doubling each retry, at most 8 s).
        tool_role: Role the env's ``tool`` messages are sent as; ``"user"`` for hosted APIs that
            accept ``tool`` messages only as answers to their own ``tool_calls``.
        check: Ask ``GET /models`` at construction, so a wrong URL fails here, not mid-run.
        extra_body: Further request fields (``top_p``, ``chat_template_kwargs``, ...).

    Attributes:
        last_requests: The request bodies of the last :meth:`act_batch` call.
    """

    name = "openai"
    batched = True

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        tools: str = "text",
        max_new_tokens: PositiveInt = 1024,
        temperature: NonNegativeFloat = 0.6,
        seed: NonNegativeInt = 0,
        stop: Sequence[str] | str = "auto",
        max_concurrency: PositiveInt = 16,
        timeout: PositiveFloat = 120.0,
        max_retries: NonNegativeInt = 3,
        backoff: NonNegativeFloat = 0.5,
        tool_role: str = "tool",
        check: bool = True,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if not model:
            raise InvalidConfig("OpenAIPolicy needs a model name, e.g. openai:Qwen/Qwen3-8B")
        if tools not in _TOOL_MODES:
            raise InvalidConfig(f"tools must be one of {_TOOL_MODES}, got {tools!r}")
        if max_new_tokens < 1 or max_concurrency < 1 or temperature < 0:
            raise InvalidConfig("max_new_tokens and max_concurrency must be >= 1 and temperature >= 0")
        self.client = OpenAIClient(
            base_url, api_key, timeout=timeout, max_retries=max_retries, backoff=backoff, owner="OpenAIPolicy"
        )
        self.model = str(model)
        self.base_url = self.client.base_url
        self.tools = tools
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.stops = tuple(DEFAULT_STOPS if tools == "text" else ()) if stop == "auto" else tuple(stop)
        self.max_concurrency = int(max_concurrency)
        self.tool_role = str(tool_role)
        self.extra_body = dict(extra_body or {})
        self.last_requests: list[dict[str, Any]] = []
        self._requests = 0
        self._tokens = {"prompt_tokens": 0, "completion_tokens": 0}
        self._lock = threading.Lock()
        if check:
            self.client.models()  # raises EndpointError when nothing answers at base_url

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def usage(self) -> dict[str, int]:
        """Tokens the endpoint reported, summed, and the HTTP attempts made.

        Returns:
            ``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``requests`` (attempts,
            retries included) and ``retries``.
        """
        with self._lock:
            prompt, completion = self._tokens["prompt_tokens"], self._tokens["completion_tokens"]
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "requests": self.client.requests,
            "retries": self.client.retries,
        }

    def reseed(self, seed: int) -> None:
        """Restart the request seeds from ``seed``."""
        self.seed, self._requests = int(seed), 0

    def request_body(self, observation: Observation, seed: int) -> dict[str, Any]:
        """The ``/chat/completions`` body for one observation."""
        messages = chat_messages(observation)
        if self.tool_role != "tool":
            messages = [{**m, "role": self.tool_role} if m["role"] == "tool" else m for m in messages]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "seed": seed,
        }
        if self.tools == "schema" or (self.tools == "auto" and wants_tool_schemas(messages, "auto")):
            body["tools"] = tool_schemas()
        if self.stops:
            body["stop"] = list(self.stops)
        return {**body, **self.extra_body}

    def act(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """One turn for one env."""
        return self.act_batch([observation], [info])[0]

    def act_batch(self, observations: Sequence[Observation], infos: Sequence[Mapping[str, Any]]) -> list[str]:
        """One turn per observation; the requests go out concurrently (at most ``max_concurrency``).

        Raises:
            EndpointError: A request failed for good (the others are cancelled or awaited).
        """
        bodies = []
        for observation in observations:
            bodies.append(self.request_body(observation, self.seed * 1_000_003 + self._requests))
            self._requests += 1
        self.last_requests = bodies
        if len(bodies) <= 1:
            return [self._ask(b) for b in bodies]
        pool = concurrent.futures.ThreadPoolExecutor(min(len(bodies), self.max_concurrency), "openai-policy")
        try:
            return list(pool.map(self._ask, bodies))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _ask(self, body: Mapping[str, Any]) -> str:
        payload = self.client.chat(body)
        usage = payload.get("usage")
        if isinstance(usage, Mapping):
            with self._lock:
                for key in self._tokens:
                    value = usage.get(key)
                    self._tokens[key] += int(value) if isinstance(value, (int, float)) else 0
        return reply_turn(payload["choices"][0], self.stops)
