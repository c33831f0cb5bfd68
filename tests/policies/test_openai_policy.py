"""The ``openai:MODEL`` policy against a real OpenAI-compatible HTTP server on 127.0.0.1.

The server (:mod:`tests.openai_server`) replays what a scripted policy did on the same
observations, so a served "model" must reach the scripted policy's scores exactly when the
policy sends the env's observations faithfully and hands the replies back unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time

import pytest

from agemem_gym import policies
from agemem_gym.cli import main
from agemem_gym.error import EndpointError, InvalidConfig
from agemem_gym.harness.runner import run_panel
from agemem_gym.policies.llm.openai_policy import OpenAIPolicy, reply_turn
from agemem_gym.tools import TOOL_NAMES
from tests.openai_server import ChatServer, ScriptedReplay

MODEL = "scripted-model"
FAST = {"backoff": 0.001, "timeout": 5.0}  # retries without the production waits


@pytest.fixture
def serve():
    servers = []

    def start(reply=lambda body: "<think>ok</think><answer>ok</answer>", **kwargs):
        servers.append(ChatServer(reply, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _scores(results):
    """Every field of every episode result (scores, rewards, tokens, tool-call histograms), as JSON values."""
    return json.loads(json.dumps([dataclasses.asdict(r) for r in results]))


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------- end to end through `agemem eval`
def test_eval_cli_served_model_scores_equal_the_scripted_policy(serve, tmp_path):
    replay = ScriptedReplay("store-all")
    for env_id in ("AgeMem/LongRecall-v0", "AgeMem/MemoryProbe-v0"):
        replay.record(env_id, episodes=3)
    server = serve(replay)
    argv = ["eval", "--env", "AgeMem/LongRecall-v0", "--env", "AgeMem/MemoryProbe-v0", "--policy", "store-all"]
    argv += ["--policy", f"openai:{MODEL}", "--base-url", server.url, "--episodes", "3", "--num-envs", "2"]
    assert main([*argv, "--out", str(tmp_path), "--no-plots", "--no-progress"]) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    served = f"openai:{MODEL}"
    for label, per in result["scores"].items():
        assert per[served] == per["store-all"], label
        assert result["episodes"][label][served] == result["episodes"][label]["store-all"]
        assert result["results"][label][served] == result["results"][label]["store-all"]
    assert result["scores"]["LongRecall"]["store-all"] > 0  # a panel whose scores can differ
    assert result["config"]["policy_kwargs"][served] == {"base_url": server.url}
    # usage per panel, summed, is what the server reported; no other policy gets a usage entry
    usage = [result["usage"][label][served] for label in result["scores"]]
    assert set(result["usage"]["LongRecall"]) == {served}
    assert sum(u["prompt_tokens"] for u in usage) == server.usage["prompt_tokens"] > 0
    assert sum(u["completion_tokens"] for u in usage) == server.usage["completion_tokens"] > 0
    assert sum(u["requests"] for u in usage) == len(server.bodies) and all(u["retries"] == 0 for u in usage)
    report = (tmp_path / "report.md").read_text()
    assert "## Endpoint usage (served models)" in report and f"| LongRecall | {served} |" in report
    body = server.bodies[0]
    assert body["model"] == MODEL and "seed" in body and body["temperature"] == 0.6
    assert body["stop"] == ["</tool_call>", "</answer>", "</action>"] and "tools" not in body


def test_requests_to_several_envs_overlap(serve):
    replay = ScriptedReplay("rag")
    expected = replay.record("AgeMem/MemoryProbe-v0", episodes=3)
    server = serve(replay, delay=0.05)
    policy = OpenAIPolicy(MODEL, base_url=server.url, **FAST)
    results = run_panel("AgeMem/MemoryProbe-v0", lambda: policy, episodes=3, num_envs=3)
    assert _scores(results) == _scores(expected)
    assert server.max_in_flight == 3  # three sub-envs, three requests in flight at once
    assert policy.usage["requests"] == len(server.bodies)
    assert len({b["seed"] for b in server.bodies}) == len(server.bodies)  # one seed per request


def test_tools_schema_round_trips_through_tool_calls(serve):
    replay = ScriptedReplay("store-all", schema=True)
    expected = replay.record("AgeMem/LongRecall-v0", episodes=2)
    server = serve(replay)
    policy = OpenAIPolicy(MODEL, base_url=server.url, tools="schema", **FAST)
    results = run_panel("AgeMem/LongRecall-v0", lambda: policy, episodes=2, num_envs=2)
    assert _scores(results) == _scores(expected) and sum(sum(r.tool_calls.values()) for r in results) > 0
    body = server.bodies[0]
    assert [t["function"]["name"] for t in body["tools"]] == list(TOOL_NAMES)
    assert all(t["type"] == "function" for t in body["tools"]) and "stop" not in body


def test_reply_turn_writes_tool_calls_and_restores_cut_stops():
    calls = [{"id": "c", "type": "function", "function": {"name": "Add_memory", "arguments": '{"content": "x"}'}}]
    turn = reply_turn({"message": {"content": "<think>keep</think>", "tool_calls": calls}})
    assert turn == '<think>keep</think><tool_call>[{"name": "Add_memory", "arguments": {"content": "x"}}]</tool_call>'
    bad = [{"function": {"name": "Add_memory", "arguments": "{not json"}}]
    assert '"arguments": "{not json"' in reply_turn({"message": {"content": "", "tool_calls": bad}})
    stops = ("</tool_call>", "</answer>", "</action>")
    cut = {"message": {"content": "<think>t</think><answer>42"}, "finish_reason": "stop"}
    assert reply_turn(cut, stops).endswith("<answer>42</answer>")
    assert reply_turn({**cut, "stop_reason": None}, stops).endswith("42")  # vLLM: ended on EOS
    assert reply_turn({**cut, "finish_reason": "length"}, stops).endswith("42")
    split = {"message": {"content": "<answer>4</answer>", "reasoning_content": "2+2"}, "finish_reason": "stop"}
    assert reply_turn(split, stops) == "<think>2+2</think><answer>4</answer>"


# ----------------------------------------------------------------- failures: retried, then clear errors
def test_server_errors_and_garbage_are_retried_then_succeed(serve):
    server = serve()
    server.faults = ["500", "429", "garbage", "no-choices"]
    policy = OpenAIPolicy(MODEL, base_url=server.url, max_retries=4, **FAST)
    assert policy.act([{"role": "user", "content": "hi"}], {}) == "<think>ok</think><answer>ok</answer>"
    assert policy.usage == {
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
        "requests": 5,
        "retries": 4,
    }


def test_garbage_after_every_retry_says_what_came_back(serve):
    server = serve()
    server.faults = ["garbage"] * 3
    policy = OpenAIPolicy(MODEL, base_url=server.url, max_retries=2, **FAST)
    with pytest.raises(EndpointError, match=r"failed 3 times.*not JSON.*upstream proxy error"):
        policy.act([{"role": "user", "content": "hi"}], {})
    server.faults = ["no-choices"]
    with pytest.raises(EndpointError, match="no choices"):
        OpenAIPolicy(MODEL, base_url=server.url, max_retries=0, **FAST).act([{"role": "user", "content": "x"}], {})


def test_a_stall_past_the_timeout_is_retried_then_a_clear_error(serve):
    server = serve()
    server.faults = ["stall"]
    policy = OpenAIPolicy(MODEL, base_url=server.url, timeout=0.2, max_retries=1, backoff=0.001)
    assert policy.act([{"role": "user", "content": "hi"}], {}).endswith("</answer>")
    assert policy.usage["retries"] == 1
    server.faults = ["stall", "stall"]
    start = time.perf_counter()
    with pytest.raises(EndpointError, match=r"failed 2 times \(timeout 0.2 s each\); last attempt: timed out"):
        policy.act([{"role": "user", "content": "hi"}], {})
    assert time.perf_counter() - start < 2.0


def test_a_reply_trickled_byte_by_byte_is_bounded_by_the_timeout(serve):
    # every read gets a byte well within the timeout; only a bound on the whole attempt stops it
    server = serve()
    server.faults = ["trickle", "trickle"]
    policy = OpenAIPolicy(MODEL, base_url=server.url, timeout=2.0, max_retries=1, backoff=0.001)
    start = time.perf_counter()
    with pytest.raises(EndpointError, match=r"failed 2 times \(timeout 2 s each\); last attempt: timed out"):
        policy.act([{"role": "user", "content": "hi"}], {})
    assert time.perf_counter() - start < 60.0  # 2 attempts of 2 s; the reply alone takes > 100 s
    assert policy.usage["requests"] == 2


def test_nothing_listening_is_a_clear_error_at_construction(capsys, tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(EndpointError, match="connection refused"):
        OpenAIPolicy(MODEL, base_url=url, max_retries=1, backoff=0.001)
    kwargs = json.dumps({f"openai:{MODEL}": {"max_retries": 0}})
    argv = ["eval", "--env", "AgeMem/MemoryProbe-v0", "--policy", f"openai:{MODEL}", "--base-url", url]
    argv += ["--policy-kwargs", kwargs, "--episodes", "1", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "connection refused" in err and url in err and len(err.splitlines()) == 1


def test_unknown_model_is_a_clear_error_on_the_first_call_and_not_retried(serve):
    server = serve()
    policy = OpenAIPolicy("no-such-model", base_url=server.url, **FAST)
    with pytest.raises(EndpointError, match=r"does not serve model 'no-such-model'.*it serves: scripted-model"):
        policy.act([{"role": "user", "content": "hi"}], {})
    assert len(server.bodies) == 1


def test_a_listed_model_that_is_refused_is_not_called_unserved(serve):
    server = serve()
    server.refused = {MODEL}
    policy = OpenAIPolicy(MODEL, base_url=server.url, **FAST)
    with pytest.raises(EndpointError) as err:
        policy.act([{"role": "user", "content": "hi"}], {})
    message = str(err.value)
    assert f"lists model '{MODEL}' but answered HTTP 404" in message and "does not serve" not in message


# ----------------------------------------------------------------- names and arguments
def test_openai_name_carries_the_model_and_the_base_url_comes_from_the_environment(serve, monkeypatch):
    server = serve()
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    policy = policies.make(f"openai:{MODEL}", tool_role="user")
    assert isinstance(policy, OpenAIPolicy) and policy.model == MODEL and policy.base_url == server.url
    body = policy.request_body([{"role": "tool", "content": "r"}], seed=1)
    assert body["messages"] == [{"role": "user", "content": "r"}]
    assert "model" not in policies.arguments("openai:m") and "base_url" in policies.arguments("openai:m")
    with pytest.raises(InvalidConfig, match="no argument 'model'"):
        policies.check_arguments("openai:m", {"model": "other"})
    with pytest.raises(InvalidConfig, match="names no model"):
        policies.make("openai:")
    with pytest.raises(InvalidConfig, match="tools must be one of"):
        OpenAIPolicy(MODEL, tools="json")
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(InvalidConfig, match="OPENAI_BASE_URL"):
        OpenAIPolicy(MODEL)


def test_agemem_run_takes_base_url(serve, tmp_path):
    replay = ScriptedReplay("rag")
    expected = replay.record("AgeMem/MemoryProbe-v0", episodes=2)
    server = serve(replay)
    out = tmp_path / "run.json"
    argv = ["run", "AgeMem/MemoryProbe-v0", "--policy", f"openai:{MODEL}", "--base-url", server.url]
    assert main([*argv, "--episodes", "2", "--json", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["episodes"] == _scores(expected)
    assert main(["run", "AgeMem/MemoryProbe-v0", "--policy", "rag", "--base-url", server.url]) == 2
