"""Results files record how they were made, without the secrets that made them."""

from __future__ import annotations

import json

from agemem_gym.harness.evaluate import evaluate_suite
from agemem_gym.harness.provenance import redact_secrets


def test_redact_secrets_hides_keys_by_name_and_in_command_lines() -> None:
    kwargs = {"openai:m": {"api_key": "sk-live-123", "max_new_tokens": 5, "headers": {"Token": "t0"}}}
    assert redact_secrets(kwargs) == {"openai:m": {"api_key": "***", "max_new_tokens": 5, "headers": {"Token": "***"}}}
    command = "agemem eval --policy-kwargs " + json.dumps(kwargs)
    redacted = redact_secrets(command)
    assert "sk-live-123" not in redacted and "t0" not in redacted
    assert '"max_new_tokens": 5' in redacted  # only the secrets go


def test_results_never_hold_an_api_key() -> None:
    secret = "sk-do-not-record"
    result = evaluate_suite(
        ["rag"],
        suites=[],
        env_ids=["AgeMem/MemoryProbe-v0"],
        episodes=1,
        policy_kwargs={"rag": {"api_key": secret}},
        command=f'agemem eval --policy-kwargs \'{{"rag": {{"api_key": "{secret}"}}}}\'',
        progress=False,
    )
    assert secret not in json.dumps(result, default=str)
