"""A misconfigured or failing ``agemem eval`` never saves its failure as complete (issue 29, items 2 and 9)."""

import json

import pytest

from agemem_gym.cli import main
from agemem_gym.error import DataNotFound
from agemem_gym.harness import evaluate
from agemem_gym.harness.evaluate import plan_suite
from agemem_gym.harness.outputs import OutputFolder

SYNTHETIC = ["eval", "--suite", "synthetic", "--episodes", "1", "--no-progress", "--no-plots"]


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("agemem: error: ")
    return err[0]


def test_a_policy_that_cannot_be_built_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    out = tmp_path / "ev"
    assert main([*SYNTHETIC, "--policy", "oracle", "--policy", "openai:M", "--out", str(out)]) == 2
    line = _one_line(capsys)
    assert "policy 'openai:M' cannot be built" in line and "base_url" in line
    assert not out.exists()


def test_a_judge_that_cannot_be_used_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "ev"
    assert main([*SYNTHETIC, "--policy", "oracle", "--judge", "hf:nope", "--out", str(out)]) == 2
    line = _one_line(capsys)
    assert "judge 'hf:nope' cannot be used" in line and "Unknown model 'nope'" in line
    assert not out.exists()


def test_a_failed_panel_is_recorded_as_failed_and_resume_plays_it_again(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ev"
    real = evaluate.run_panel

    def broken(env_id, *args, **kwargs):
        if env_id == "AgeMem/LongRecall-v0":
            raise DataNotFound("the LongRecall data went missing")
        return real(env_id, *args, **kwargs)

    monkeypatch.setattr(evaluate, "run_panel", broken)
    assert main([*SYNTHETIC, "--policy", "oracle", "--out", str(out)]) == 1
    assert "1 of 3 panels failed" in capsys.readouterr().err
    saved = json.loads((out / "results.json").read_text())
    assert saved["status"] == "failed" and "LongRecall" in saved["errors"]
    assert main([*SYNTHETIC, "--policy", "oracle", "--out", str(out)]) == 2
    assert "1 of 3 panels failed" in _one_line(capsys)
    monkeypatch.setattr(evaluate, "run_panel", real)
    played = []
    monkeypatch.setattr(evaluate, "run_panel", lambda env_id, *a, **k: played.append(env_id) or real(env_id, *a, **k))
    assert main([*SYNTHETIC, "--policy", "oracle", "--out", str(out), "--resume"]) == 0
    assert played == ["AgeMem/LongRecall-v0"]
    final = json.loads((out / "results.json").read_text())
    assert final["status"] == "complete" and final["errors"] == {}


@pytest.mark.parametrize("status", ["partial", "failed"])
def test_a_folder_with_no_finished_panel_does_not_block_the_fixed_command(tmp_path, capsys, status):
    """A run that stopped before its first panel (bad endpoint, bad argument value) left only its settings."""
    out = tmp_path / "ev"
    plan = plan_suite(["no-memory"], suites=["synthetic"], episodes=3)
    missing = [] if status == "failed" else [[b["label"], "no-memory"] for b in plan.result["benchmarks"]]
    labels = [b["label"] for b in plan.result["benchmarks"]]
    errors = {label: {"no-memory": "EndpointError: down"} for label in labels} if not missing else {}
    OutputFolder(out).save({**plan.result, "missing": missing, "errors": errors, "status": status})
    assert main([*SYNTHETIC, "--policy", "oracle", "--out", str(out)]) == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["status"] == "complete" and saved["config"]["policies"] == ["oracle"]
