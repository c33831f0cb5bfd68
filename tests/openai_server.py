"""A small OpenAI-compatible server on 127.0.0.1 for the ``openai:`` policy tests.

:class:`ChatServer` answers ``GET /v1/models`` and ``POST /v1/chat/completions`` (threaded, so
concurrent requests overlap and the overlap is measured). What it replies comes from a
``reply(body)`` function; scheduled ``faults`` (HTTP 500, 429, a stall past the client's
timeout, a valid reply trickled one byte per ``trickle_seconds``, a non-JSON body, a reply without
choices) are served first, one per request.

:class:`ScriptedReplay` is the reply function that stands in for a model: a scripted policy
from :mod:`agemem_gym.policies` plays the same seeded panel first, and every observation it
saw is stored with the turn it chose. The server finds the conversation it is sent (the
messages, role and content) and answers that turn; a conversation the scripted policy never
saw gets HTTP 400, so a policy that sends anything but the env's observation fails loudly.
Scripted policies read ``info`` (stage, round), which never travels over HTTP; replaying
what they did on the very same observations is what makes the two runs comparable.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agemem_gym import policies
from agemem_gym.harness.runner import run_panel
from agemem_gym.policies.base import BasePolicy

FAULTS = ("500", "429", "stall", "trickle", "garbage", "no-choices")


def conversation_key(messages: list[dict[str, Any]]) -> str:
    """What identifies a conversation: its messages' roles and contents, in order."""
    return json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False)


def _words(text: str) -> int:
    return len(str(text).split())


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
        if self.path.rstrip("/") != "/v1/models":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in self.server.models]})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.bodies.append(body)
            fault = self.server.faults.pop(0) if self.server.faults else None
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        try:
            self._answer(body, fault)
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def _answer(self, body: dict[str, Any], fault: str | None) -> None:
        if fault == "stall":
            self.server.release.wait(self.server.stall_seconds)
            return  # the client gave up long ago; close without a reply
        if fault == "trickle":
            self._trickle(body)
            return
        if fault in ("500", "429"):
            self._send(int(fault), {"error": {"message": f"scheduled {fault}"}})
        elif fault == "garbage":
            self._send_raw(200, b"<html>upstream proxy error</html>", "text/html")
        elif fault == "no-choices":
            self._send(200, {"object": "chat.completion", "choices": []})
        elif body.get("model") not in self.server.models or body.get("model") in self.server.refused:
            # vLLM's answer to an unknown model (or a listed one whose backend is gone)
            message = f"The model `{body.get('model')}` does not exist."
            self._send(404, {"error": {"message": message, "type": "NotFoundError", "code": 404}})
        else:
            self._reply(body)

    def _reply(self, body: dict[str, Any]) -> None:
        time.sleep(self.server.delay)  # long enough for concurrent requests to overlap
        try:
            message = self.server.reply(body)
        except KeyError as exc:
            self._send(400, {"error": {"message": f"unknown conversation: {exc}"}})
            return
        if isinstance(message, str):
            message = {"role": "assistant", "content": message}
        prompt = sum(_words(m["content"]) for m in body["messages"])
        calls = message.get("tool_calls")
        completion = _words(message.get("content") or "") + (_words(json.dumps(calls)) if calls else 0)
        with self.server.lock:
            self.server.usage["prompt_tokens"] += prompt
            self.server.usage["completion_tokens"] += completion
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        self._send(200, {"object": "chat.completion", "model": body["model"], "choices": [choice], "usage": usage})

    def _trickle(self, body: dict[str, Any]) -> None:
        """A valid completion, one byte per ``trickle_seconds``: every read succeeds, the reply never ends."""
        choice = {"index": 0, "message": {"role": "assistant", "content": "late"}, "finish_reason": "stop"}
        data = json.dumps({"object": "chat.completion", "model": body.get("model"), "choices": [choice]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for i in range(len(data)):
                if self.server.release.wait(self.server.trickle_seconds):
                    return
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
        except OSError:
            return  # the client hung up

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json")

    def _send_raw(self, status: int, data: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class ChatServer(ThreadingHTTPServer):
    """An OpenAI-compatible endpoint on ``127.0.0.1`` (a free port), served from a thread.

    Args:
        reply: ``body -> str | message dict`` for a normal request (raise ``KeyError``: HTTP 400).
        models: The model ids it serves (others get vLLM's 404).
        delay: Seconds each normal reply waits (makes concurrency visible).
    """

    daemon_threads = True

    def __init__(
        self,
        reply: Callable[[dict[str, Any]], Any],
        models: tuple[str, ...] = ("scripted-model",),
        delay: float = 0.0,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply, self.models, self.delay = reply, models, delay
        self.lock = threading.Lock()
        self.faults: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = self.max_in_flight = 0
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}
        self.release = threading.Event()  # set on close: stalled handlers return
        self.stall_seconds = 5.0
        self.trickle_seconds = 0.5
        self.refused: set[str] = set()  # listed by /models, yet answered with vLLM's 404
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _Recorder(BasePolicy):
    """Plays a scripted policy and stores, per observation, the turn it chose."""

    def __init__(self, inner: Any, turns: dict[str, str]) -> None:
        self.inner, self.turns = inner, turns
        self.needs_privileged_info = inner.needs_privileged_info

    def act(self, observation: Any, info: Any) -> str:
        turn = self.inner.act(observation, info)
        key = conversation_key(list(observation))
        if self.turns.setdefault(key, turn) != turn:
            raise AssertionError("the scripted policy chose two turns for one observation: replay is ambiguous")
        return turn

    def reset(self) -> None:
        self.inner.reset()

    def reseed(self, seed: int) -> None:
        self.inner.reseed(seed)


class ScriptedReplay:
    """A reply function: the turn a scripted policy chose for the conversation it is sent.

    Args:
        policy: A scripted policy name (``store-all``, ``rag``, ``no-memory``).
        schema: Answer tool-call turns as OpenAI ``tool_calls`` (the think text as content)
            instead of text, for ``tools="schema"``.
    """

    def __init__(self, policy: str, schema: bool = False) -> None:
        self.policy, self.schema = policy, schema
        self.turns: dict[str, str] = {}

    def record(self, env_id: str, episodes: int, seed: int = 0) -> list[Any]:
        """Play the panel with the scripted policy (one env), storing its turns; its results."""
        return run_panel(
            env_id, lambda: _Recorder(policies.make(self.policy), self.turns), episodes=episodes, seed=seed
        )

    def __call__(self, body: dict[str, Any]) -> str | dict[str, Any]:
        turn = self.turns[conversation_key(body["messages"])]
        return as_tool_calls(turn) if self.schema else turn


_CALL_TURN = re.compile(r"^<think>(.*?)</think><tool_call>(.*)</tool_call>$", re.S)


def as_tool_calls(turn: str) -> str | dict[str, Any]:
    """A ``<tool_call>`` turn as an OpenAI assistant message with ``tool_calls``; others unchanged."""
    found = _CALL_TURN.match(turn)
    if found is None:
        return turn
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
        }
        for i, c in enumerate(json.loads(found.group(2)))
    ]
    return {"role": "assistant", "content": found.group(1), "tool_calls": calls}
