"""``agemem eval --out``: never overwritten silently, saved as it goes, resumable, Ctrl-C keeps the work."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agemem_gym.cli import main
from agemem_gym.error import InvalidConfig
from agemem_gym.harness import evaluate
from agemem_gym.harness.evaluate import evaluate_suite, plan_suite, run_plan
from agemem_gym.harness.outputs import OutputFolder
from agemem_gym.harness.report import render_report

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ["oracle", "no-memory"]
SYNTHETIC = ["eval", "--suite", "synthetic", "--policy", "oracle", "--policy", "no-memory", "--episodes", "1"]
TABLES = ("results", "scores", "episodes", "errors")


def _eval(out, *extra):
    return main([*SYNTHETIC, "--out", str(out), "--no-progress", *extra])


def _cli(*argv, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "agemem_gym", *argv], cwd=ROOT, capture_output=True, text=True, timeout=300, **kwargs
    )


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _tables(result):
    return {t: json.loads(json.dumps(result[t], sort_keys=True)) for t in TABLES}


@pytest.fixture(scope="module")
def uninterrupted():
    """The synthetic suite played in one go: what every resumed run must reproduce."""
    return evaluate_suite(POLICIES, suites=["synthetic"], episodes=1, progress=False)


def test_a_folder_of_other_settings_is_refused_in_one_line(tmp_path, capsys):
    """The issue's repro: a second eval into a used --out changed nothing and said why."""
    out = tmp_path / "ev"
    assert _eval(out) == 0
    before = _snapshot(out)
    done = _cli("eval", "--suite", "synthetic", "--policy", "oracle", "--episodes", "2", "--out", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "other settings" in lines[0] and "policies" in lines[0] and "episodes: 1 -> 2" in lines[0]
    assert "--overwrite" in lines[0]
    assert _snapshot(out) == before


def test_overwrite_starts_afresh_and_leaves_no_stale_plot(tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["eval", "--env", "AgeMem/Probe-Recall-v0", "--policy", "oracle", "--episodes", "1", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    assert (out / "plots" / "bench_Probe-Recall.png").exists()
    (out / "notes.txt").write_text("mine")
    assert _eval(out, "--overwrite") == 0
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == ["bench_FactUpdate.png", "bench_LongRecall.png", "bench_MemoryProbe.png", "table2.png",
                     "tool_use.png"]  # fmt: skip
    assert "5 plots" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["config"]["suites"] == ["synthetic"]
    assert (out / "notes.txt").read_text() == "mine"  # only the eval's own outputs are removed


def test_resume_and_overwrite_exclude_each_other(tmp_path, capsys):
    assert _eval(tmp_path, "--resume", "--overwrite") == 2
    assert "exclude each other" in capsys.readouterr().err


class _Stop(Exception):
    pass


def _partial_folder(out, panels_done):
    """A folder as a run leaves it when stopped after ``panels_done`` panels."""
    folder = OutputFolder(out)
    plan = plan_suite(POLICIES, suites=["synthetic"], episodes=1)

    def save(result):
        folder.save(result)
        if sum(len(per) for per in result["results"].values()) >= panels_done:
            raise _Stop

    with pytest.raises(_Stop):
        run_plan(plan, on_save=save, progress=False)
    return folder


def test_resume_runs_only_the_missing_panels(tmp_path, capsys, monkeypatch, uninterrupted):
    folder = _partial_folder(tmp_path / "ev", panels_done=3)
    saved = folder.load()
    assert saved["status"] == "partial" and len(saved["missing"]) == 3
    assert _eval(folder.path) == 2
    assert "partial run of these settings (3 of 6 panels done); add --resume" in capsys.readouterr().err

    played = []
    real = evaluate.run_panel
    monkeypatch.setattr(evaluate, "run_panel", lambda env_id, *a, **k: played.append(env_id) or real(env_id, *a, **k))
    assert _eval(folder.path, "--resume") == 0
    assert f"resuming from {folder.path}: 3 of 6 panels done" in capsys.readouterr().err
    assert played == ["AgeMem/LongRecall-v0", "AgeMem/MemoryProbe-v0", "AgeMem/MemoryProbe-v0"]
    final = folder.load()
    assert final["status"] == "complete" and final["missing"] == []
    assert _tables(final) == _tables(uninterrupted)
    assert "Partial report" not in folder.report.read_text()


def test_a_complete_folder_of_the_same_settings(tmp_path, capsys, monkeypatch):
    """Refused with nothing to run; --resume re-renders the report without playing an episode."""
    out = tmp_path / "ev"
    assert _eval(out) == 0
    capsys.readouterr()
    assert _eval(out) == 2
    assert "already holds the complete results of these settings" in capsys.readouterr().err
    (out / "report.md").unlink()
    (out / "plots" / "stale.png").write_bytes(b"old")

    def no_play(*args, **kwargs):
        raise AssertionError("a complete folder must not play episodes again")

    monkeypatch.setattr(evaluate, "run_panel", no_play)
    assert _eval(out, "--resume") == 0
    assert "6 of 6 panels done" in capsys.readouterr().err
    assert (out / "report.md").read_text().startswith("# agemem eval report")
    assert not (out / "plots" / "stale.png").exists()


def test_a_partial_report_says_what_is_missing():
    plan = plan_suite(POLICIES, suites=["synthetic"], episodes=1)
    result = dict(plan.result, missing=[["FactUpdate", "oracle"]], status="partial")
    report = render_report(result)
    assert "**Partial report**: 5 of 6 (benchmark, policy) panels done" in report
    assert "Missing: FactUpdate / oracle." in report and "--resume" in report


def test_an_unreadable_results_file_is_refused(tmp_path):
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(InvalidConfig, match="not readable"):
        OutputFolder(tmp_path).prepare({}, resume=False, overwrite=False)


# The panels of the synthetic suite take milliseconds: the child sleeps before each one so that
# Ctrl-C surely lands in the middle of the run. The numbers do not depend on the pacing.
_PACED = """
import sys, time
from agemem_gym.harness import evaluate
real = evaluate.run_panel
def paced(*args, **kwargs):
    time.sleep(0.5)
    return real(*args, **kwargs)
evaluate.run_panel = paced
from agemem_gym.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _wait_for_a_finished_panel(results, child, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        try:
            if json.loads(results.read_text())["results"]:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no panel was saved in {timeout} s (exit status {child.poll()})")


def test_ctrl_c_writes_the_partial_report_and_resume_finishes_it(tmp_path, capsys, uninterrupted):
    out = tmp_path / "ev"
    argv = [*SYNTHETIC, "--out", str(out), "--no-progress"]
    child = subprocess.Popen(
        [sys.executable, "-c", _PACED, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for_a_finished_panel(out / "results.json", child)
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("interrupted: ") and "of 6 benchmark panels done" in lines[0]
    assert f"partial report in {out}; resume with --resume" in lines[0]
    saved = json.loads((out / "results.json").read_text())
    assert saved["status"] == "partial" and saved["missing"]
    assert "**Partial report**" in (out / "report.md").read_text()

    assert _eval(out, "--resume") == 0
    final = json.loads((out / "results.json").read_text())
    assert final["status"] == "complete"
    assert _tables(final) == _tables(uninterrupted)
