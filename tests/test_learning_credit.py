"""benchmarks/learning.py --compare credit: the report from run folders (fast) and the whole pipeline on CPU (slow)."""

import csv
import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("learning_credit")


def _run_folder(path: Path, per_step: int, steps: int, score: float) -> None:
    path.mkdir(parents=True)
    with (path / "metrics.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "task/score", "reward/mean", "perf/generated_tokens", "perf/generated_tokens_total"])
        for step in range(steps):
            writer.writerow([step, score, score / 2, per_step, per_step * (step + 1)])


def _evals(out: Path, name: str, scores: list[float]) -> None:
    episodes = [{"task": 48 + i, "seed": 100_000 + i, "score": s, "tools_by_stage": {}} for i, s in enumerate(scores)]
    (out / f"eval-{name}.json").write_text(json.dumps({"model": name, "episodes": episodes}))


def _fake_comparison(out: Path, ms_scores: list[float]) -> None:
    """Two seeds; memory-state spends twice the tokens per step; seed 1's trajectory arm ends short of the budget."""
    _evals(out, "untrained", [0.0, 0.0, 1.0, 0.0])
    for seed in (0, 1):
        _run_folder(out / f"seed{seed}-trajectory", 100, 10 if seed == 0 else 7, 0.2)
        _run_folder(out / f"seed{seed}-memory-state", 200, 5, 0.3)
        _evals(out, f"seed{seed}-trajectory", [0.0, 0.0, 1.0, 0.0])
        _evals(out, f"seed{seed}-memory-state", ms_scores)


def test_report_tables_the_arms_and_says_which_is_ahead(bench, tmp_path):
    _fake_comparison(tmp_path, [1.0, 1.0, 1.0, 1.0])
    summary = bench.summarise(tmp_path, [0, 1], 1000, 60.0, {})
    md, numbers = summary["markdown"], summary["numbers"]
    run = numbers["runs"]["seed0-memory-state"]
    assert (run["steps"], run["generated_tokens"], run["budget_reached"]) == (5, 1000.0, True)
    assert run["held_out"][0] == 1.0 and run["train_score_last5"] == pytest.approx(0.3)
    assert numbers["runs"]["seed1-trajectory"]["budget_reached"] is False
    assert "Not at the budget (1000 tokens): seed1-trajectory" in md
    per_seed = numbers["difference"]["per_seed"]["0"]
    assert per_seed["held_out"][0] == pytest.approx(0.75) and per_seed["episodes"] == 4  # paired by episode
    assert per_seed["train_score"] == pytest.approx(0.1)
    mean, ci = numbers["difference"]["held_out"]
    assert mean == pytest.approx(0.75) and ci == 0.0  # two seeds, the same difference
    assert "**memory-state** credit is ahead" in md and "the interval excludes 0." in md
    assert "| mean" in md and "0.750 ± 0.000" in md
    assert bench.plot(tmp_path, [0, 1], 1000).stat().st_size > 1000


def test_report_says_when_the_interval_includes_zero_or_there_is_one_seed(bench, tmp_path):
    _fake_comparison(tmp_path, [0.0, 1.0, 0.0, 0.0])  # seed by seed: one episode better, one worse
    md = bench.summarise(tmp_path, [0, 1], 1000, 60.0, {})["markdown"]
    assert "Neither arm is ahead" in md and "the interval includes 0: no difference is shown." in md
    one = bench.verdict({"per_seed": {"0": {"held_out": [-0.2, 0.1]}}, "held_out": [-0.2, math.nan]}, 1)
    assert one.startswith("**trajectory** credit is ahead") and "one seed" in one and "excludes 0" in one


def test_arm_command_lines_keep_user_settings_but_force_credit_and_budget(bench, monkeypatch):
    learning = importlib.import_module("learning")
    args = learning.parse(["--compare", "credit", "--token-budget", "500", "--set", "credit_weight=0.3"])
    argv = bench.run_argv(args, "memory-state", 2, Path("f"))
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert sets == ["fork_continuations=2", "credit_weight=0.5", "credit_weight=0.3", "credit=memory-state",
                    "generated_token_budget=500"]  # fmt: skip
    config = learning._config(learning.parse(argv), 2, None, Path("f"))  # later --set wins
    assert (config.credit, config.credit_weight, config.generated_token_budget) == ("memory-state", 0.3, 500)
    assert config.num_steps == bench.MAX_STEPS
    jobs = bench.train_jobs(learning.parse([*argv[:0], "--compare", "credit", "--token-budget", "9",
                                            "--seeds", "0", "--with-control"]), Path("o"))  # fmt: skip
    assert [log.name for _, log in jobs] == ["seed0-trajectory.log", "seed0-memory-state.log", "seed0-control.log"]
    assert jobs[2][0][-2:] == ["--lr", "0.0"]
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "learning.py"), "--compare", "credit"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "--compare credit needs --token-budget" in proc.stderr


@pytest.mark.slow
@pytest.mark.train
def test_compare_pipeline_runs_end_to_end_on_cpu(tmp_path):
    """The documented CPU check, one seed: train both arms to the budget, evaluate, report, plot."""
    pytest.importorskip("transformers")
    out = tmp_path / "credit"
    cmd = [sys.executable, str(BENCHMARKS / "learning.py"), "--compare", "credit", "--preset", "cpu-smoke"]
    cmd += ["--seeds", "0", "--token-budget", "1500", "--eval-reps", "1", "--jobs", "2", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    numbers = json.loads((out / "summary.json").read_text())["numbers"]
    for arm in ("trajectory", "memory-state"):
        run = numbers["runs"][f"seed0-{arm}"]
        assert run["budget_reached"] and 1500 <= run["generated_tokens"] and run["steps"] >= 1
        assert math.isfinite(run["held_out"][0])
    assert numbers["difference"]["per_seed"]["0"]["episodes"] == 16
    assert (out / "curves-credit.png").stat().st_size > 1000
    assert "ahead on the held-out panel" in (out / "summary.md").read_text()  # the verdict, whichever it is
