"""Results files record how they were made, without the secrets that made them."""

from __future__ import annotations

import json

from agemem_gym.harness.evaluate import evaluate_suite
from agemem_gym.harness.provenance import redact_secrets
from tests.openai_server import ChatServer


def test_redact_secrets_hides_keys_by_name_and_in_command_lines() -> None:
    kwargs = {"openai:m": {"api_key": "sk-live-123", "max_new_tokens": 5, "headers": {"Token": "t0"}}}
    assert redact_secrets(kwargs) == {"openai:m": {"api_key": "***", "max_new_tokens": 5, "headers": {"Token": "***"}}}
    command = "agemem eval --policy-kwargs " + json.dumps(kwargs)
    redacted = redact_secrets(command)
    assert "sk-live-123" not in redacted and "t0" not in redacted
    assert '"max_new_tokens": 5' in redacted  # only the secrets go


def test_results_never_hold_an_api_key() -> None:
    # a policy that takes the key, on a local server (one that cannot be built is refused before any result)
    secret = "sk-do-not-record"
    server = ChatServer(lambda body: "<think>ok</think><answer>ok</answer>")
    try:
        kwargs = {"openai:scripted-model": {"api_key": secret, "base_url": server.url}}
        result = evaluate_suite(
            ["openai:scripted-model"],
            suites=[],
            env_ids=["AgeMem/MemoryProbe-v0"],
            episodes=1,
            policy_kwargs=kwargs,
            command=f"agemem eval --policy-kwargs '{json.dumps(kwargs)}'",
            progress=False,
        )
    finally:
        server.close()
    assert result["status"] == "complete"
    assert secret not in json.dumps(result, default=str)
