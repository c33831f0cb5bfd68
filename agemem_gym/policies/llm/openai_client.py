"""One HTTP client for OpenAI-compatible endpoints (vLLM, SGLang, llama.cpp, Ollama, hosted APIs).

Standard library only (``urllib``), so serving a model needs no extra package. Both the
``openai:`` judges (:class:`~agemem_gym.policies.llm.chat.OpenAIChat`) and the ``openai:``
policy (:class:`~agemem_gym.policies.llm.openai_policy.OpenAIPolicy`) talk through it.

What it guarantees:

* one attempt (connect, send, the whole reply) takes at most ``timeout`` seconds, however
  slowly the server trickles bytes: a watchdog shuts the socket down at the deadline. A whole
  call therefore takes at most ``(max_retries + 1) * timeout`` plus the backoff waits;
* connection errors, timeouts, HTTP 429 and 5xx, and garbage replies (not JSON, no
  ``choices``) are retried with exponential backoff, a bounded number of times, then raise
  :class:`~agemem_gym.error.EndpointError` saying what the last attempt got;
* other 4xx replies are not retried: an unknown model (404, or a "model ... not found /
  does not exist" body) raises at once, naming the models the server lists;
* ``requests`` and ``retries`` count what was sent (thread-safe: callers send concurrently).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from agemem_gym.error import EndpointError, InvalidConfig

__all__ = ["OpenAIClient", "resolve_base_url"]

_EXCERPT = 200  # characters of a bad reply quoted in an error


def resolve_base_url(base_url: str | None, owner: str) -> str:
    """``base_url`` or ``$OPENAI_BASE_URL``, without a trailing slash; raises when neither is set."""
    url = base_url or os.environ.get("OPENAI_BASE_URL")
    if not url:
        raise InvalidConfig(f"{owner} needs base_url (or $OPENAI_BASE_URL), e.g. http://localhost:8000/v1")
    if not url.startswith(("http://", "https://")):
        raise InvalidConfig(f"{owner}: base_url must start with http:// or https://, got {url!r}")
    return url.rstrip("/")


class _Retry(Exception):
    """An attempt failed in a way worth retrying; the message says how."""


class _Deadline:
    """Shuts down every connection of one attempt when its time is up.

    A socket timeout bounds each read, not the reply: a server sending one byte per second
    never trips it. The watchdog timer shuts the socket down instead, which makes the blocked
    read return at once.
    """

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down at the deadline (at once when it has passed)."""
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone


def _watched(cls: type[http.client.HTTPConnection], deadline: _Deadline) -> Callable[..., Any]:
    """A connection factory for ``do_open`` whose connections the deadline watches.

    The socket exists only once ``connect`` ran (inside the first ``request``), so the factory
    wraps ``connect`` to hand the socket over right after. The socket itself is kept, not the
    connection: ``urllib`` detaches it from the connection before the body is read.
    """

    def make(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
        connection = cls(*args, **kwargs)
        connect = connection.connect

        def watched_connect() -> None:
            connect()
            if connection.sock is not None:
                deadline.watch(connection.sock)

        connection.connect = watched_connect  # type: ignore[method-assign]  # per-instance hook
        return connection

    return make


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPConnection, self.deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPSConnection, self.deadline), req)  # http.client's default context


def _excerpt(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(text.split())
    return repr(text[:_EXCERPT] + ("..." if len(text) > _EXCERPT else ""))


def _error_message(raw: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body's start."""
    try:
        body = json.loads(raw)
    except ValueError:
        return _excerpt(raw)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return _excerpt(raw)


def _is_unknown_model(status: int, message: str) -> bool:
    lowered = message.lower()
    return status in (400, 404) and "model" in lowered and ("not exist" in lowered or "not found" in lowered)


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the server running at this address?)"
    if isinstance(reason, TimeoutError):
        return "timed out"
    return f"{type(reason).__name__}: {reason}"


class OpenAIClient:
    """JSON requests to an OpenAI-compatible ``/v1`` base URL, with retries and clear errors.

    Args:
        base_url: e.g. ``http://localhost:8000/v1`` (default ``$OPENAI_BASE_URL``).
        api_key: Bearer token (default ``$OPENAI_API_KEY``; local servers need none).
        timeout: Seconds one attempt may take (connect plus the whole reply, however slow).
        max_retries: Further attempts after a retryable failure (0: try once).
        backoff: Seconds before the first retry; doubles each retry.
        max_backoff: Longest wait between two attempts.
        owner: Who uses the client, for error messages.

    Attributes:
        requests: Chat attempts sent so far (retries included; ``GET /models`` not counted).
        retries: Chat attempts that were retries.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        owner: str = "OpenAIClient",
    ) -> None:
        if timeout <= 0 or max_retries < 0 or backoff < 0 or max_backoff < 0:
            raise InvalidConfig(
                f"{owner}: timeout must be > 0 and max_retries, backoff, max_backoff >= 0; "
                f"got {timeout}, {max_retries}, {backoff}, {max_backoff}"
            )
        self.base_url = resolve_base_url(base_url, owner)
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.requests = 0
        self.retries = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]  # locks do not pickle; a copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public
    def chat(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``/chat/completions``; the reply has a ``choices[0].message`` dict.

        Raises:
            EndpointError: Unknown model, another 4xx, or retries used up (the message says
                what the last attempt got).
        """
        return self._request("/chat/completions", dict(body), _check_chat, count=True)

    def models(self) -> list[str]:
        """The model ids ``GET /models`` lists (``[]`` when the server has no such route).

        Raises:
            EndpointError: The server cannot be reached (after the retries).
        """
        try:
            payload = self._request("/models", None, _check_object, count=False)
        except EndpointError as exc:
            if isinstance(exc.__cause__, urllib.error.HTTPError):
                return []  # it answered, just not this route: reachable
            raise
        data = payload.get("data")
        return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m] if isinstance(data, list) else []

    # ------------------------------------------------------------------ attempts
    def _request(
        self, path: str, body: dict[str, Any] | None, check: Callable[[Any], str | None], *, count: bool
    ) -> dict[str, Any]:
        url = self.base_url + path
        failure = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
            if count:
                with self._lock:
                    self.requests += 1
                    self.retries += bool(attempt)
            try:
                return self._attempt(url, body, check)
            except _Retry as exc:
                failure = str(exc)
        raise EndpointError(
            f"{'POST' if body is not None else 'GET'} {url} failed {self.max_retries + 1} times "
            f"(timeout {self.timeout:g} s each); last attempt: {failure}"
        )

    def _attempt(self, url: str, body: dict[str, Any] | None, check: Callable[[Any], str | None]) -> dict[str, Any]:
        """One request: the checked JSON reply; :class:`_Retry` or :class:`EndpointError` otherwise."""
        with _Deadline(self.timeout) as deadline:
            try:
                raw = self._send(url, body, deadline)
            except _Retry as exc:  # the cut socket reads as reset, refused or a short reply
                if deadline.expired:
                    raise _Retry(f"timed out: no complete reply within {self.timeout:g} s") from exc
                raise
        if deadline.expired:  # a reply cut at the deadline may read as complete (no Content-Length)
            raise _Retry(f"timed out: no complete reply within {self.timeout:g} s")
        return self._parse(raw, check)

    def _parse(self, raw: bytes, check: Callable[[Any], str | None]) -> dict[str, Any]:
        """The checked JSON reply, or :class:`_Retry`."""
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise _Retry(f"the reply is not JSON: {_excerpt(raw)}") from exc
        problem = check(payload)
        if problem is not None:
            raise _Retry(f"{problem}: {_excerpt(raw)}")
        return payload

    def _send(self, url: str, body: dict[str, Any] | None, deadline: _Deadline) -> bytes:
        """The raw reply; :class:`_Retry` or :class:`EndpointError` for a failed request."""
        try:
            return self._open(url, body, deadline)
        except urllib.error.HTTPError as exc:
            try:
                raw_error = exc.read()
            except (OSError, http.client.HTTPException) as cut:  # the error body cut short (or at the deadline)
                raise _Retry(f"HTTP {exc.code}, then {_describe(cut)}") from cut
            if exc.code == 429 or exc.code >= 500:
                raise _Retry(f"HTTP {exc.code}: {_excerpt(raw_error)}") from exc
            raise EndpointError(self._client_error(url, exc.code, raw_error, body)) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # refused, reset, timed out
            raise _Retry(_describe(exc)) from exc

    def _open(self, url: str, body: dict[str, Any] | None, deadline: _Deadline) -> bytes:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        payload = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=payload, headers=headers)
        opener = urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline))
        with opener.open(request, timeout=self.timeout) as response:  # noqa: S310 - user-given URL
            data: bytes = response.read()
            return data

    def _client_error(self, url: str, status: int, raw: bytes, body: Mapping[str, Any] | None) -> str:
        message = _error_message(raw)
        model = (body or {}).get("model")
        if model is not None and _is_unknown_model(status, message):
            try:
                listed = self.models()
            except EndpointError:
                listed = []
            if model in listed:  # listed yet refused: still loading, or a router pointing elsewhere
                return (
                    f"{self.base_url} lists model {model!r} but answered HTTP {status} for it ({message}); "
                    "the server may still be loading it, or route it to another backend"
                )
            served = ", ".join(listed) or "none listed"
            return f"{self.base_url} does not serve model {model!r} (HTTP {status}: {message}); it serves: {served}"
        return f"{url} answered HTTP {status}: {message}"


def _check_object(payload: Any) -> str | None:
    return None if isinstance(payload, dict) else "the reply is not a JSON object"


def _check_chat(payload: Any) -> str | None:
    """What is wrong with a ``/chat/completions`` reply, or ``None``."""
    if not isinstance(payload, dict):
        return "the reply is not a JSON object"
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        return "the reply has no choices"
    if not isinstance(choices[0], dict) or not isinstance(choices[0].get("message"), dict):
        return "the reply's first choice has no message"
    return None
