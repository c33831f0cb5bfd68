"""benchmarks/learning.py: the merged report from seed folders and the stage runner (fast), the pipeline (slow)."""

import csv
import importlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
PANELS = ("warm", "control", "control-wiped", "trained", "trained-wiped")


@pytest.fixture
def report(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("learning_report")


@pytest.fixture
def stages(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("learning_stages")


def _metrics(path: Path, scores: list[float]) -> None:
    path.mkdir(parents=True)
    with (path / "metrics.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "task/score", "reward/mean", "reward/task", "tools/Add_memory"])
        for step, score in enumerate(scores):
            writer.writerow([step, score, score / 2, score, 1.0])


def _panel(folder: Path, name: str, scores: list[float], memory: bool) -> None:
    tools = {"1": {"Add_memory": 1}, "3": {"Retrieve_memory": 1}} if memory else {}
    episodes = [
        {"task": 48 + i % 16, "seed": 100_000 + i, "score": s, "tools_by_stage": tools, "memory_quality": float(memory)}
        for i, s in enumerate(scores)
    ]
    (folder / f"eval-{name}.json").write_text(json.dumps({"model": name, "episodes": episodes}))


def _seed(out: Path, seed: int, trained: float, wiped: float = 0.0, complete: bool = True) -> None:
    """A finished seed: warm start and control at 0.375 (half use memory), the trained model at ``trained``."""
    folder = out / f"seed{seed}"
    (folder / "warm").mkdir(parents=True)
    sft = {"turns": 150, "episodes": 48, "config": {"num_steps": 16, "mix_policy": "no-memory", "mix_fraction": 0.5}}
    (folder / "warm" / "sft.json").write_text(json.dumps(sft))
    _metrics(folder / "trained", [0.3 + 0.02 * i for i in range(20)])
    _metrics(folder / "control", [0.35] * 20)
    half = [1.0, 0.0, 0.5, 0.0] * 16  # mean 0.375
    for name in ("warm", "control"):
        _panel(folder, name, half, memory=False)
    _panel(folder, "control-wiped", [0.125] * 64, memory=False)
    _panel(folder, "trained", [trained] * 64, memory=True)
    if complete:
        _panel(folder, "trained-wiped", [wiped] * 64, memory=True)
    (folder / "times.json").write_text(json.dumps({"warm": 90.0, "trained": 3600.0}))


def test_report_merges_seeds_and_evaluates_every_criterion(report, tmp_path):
    for seed, trained in ((0, 0.9), (1, 0.8), (2, 0.85)):
        _seed(tmp_path, seed, trained)
    summary = report.write(tmp_path, None)
    numbers, md = summary["numbers"], summary["markdown"]
    assert sorted(numbers["seeds"]) == ["0", "1", "2"]
    seed0 = numbers["seeds"]["0"]
    assert seed0["difference"][0] == pytest.approx(0.9 - 0.375)  # paired over the same 64 episodes
    assert seed0["warm_start"] == {"turns": 150, "episodes": 48, "steps": 16, "mix_policy": "no-memory",
                                   "mix_fraction": 0.5}  # fmt: skip
    assert seed0["panels"]["trained"]["add_s1"] == 1.0 and seed0["panels"]["warm"]["retrieve_s3"] == 0.0
    assert seed0["panels"]["trained"]["memory_quality"] == 1.0 and seed0["panels"]["warm"]["memory_quality"] == 0.0
    assert seed0["steps"] == {"trained": 20, "control": 20} and seed0["control_drift"] == pytest.approx(0.0)
    mean, ci = numbers["difference_over_seeds"]
    assert mean == pytest.approx(0.85 - 0.375)
    assert ci == pytest.approx(4.303 * 0.05 / math.sqrt(3))  # Student t with two degrees of freedom
    assert [c["result"] for c in numbers["criteria"]] == ["PASS"] * 6
    assert md.count("PASS") == 6 and "Tool calls per episode" in md and "S1 Add_memory" in md
    assert (tmp_path / "summary.md").read_text().startswith("Held-out task score")
    assert json.loads((tmp_path / "summary.json").read_text())["numbers"]["criteria"][0]["result"] == "PASS"
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_report_fails_a_gain_that_survives_the_wipe_and_waits_for_three_seeds(report, tmp_path):
    _seed(tmp_path, 0, 0.9, wiped=0.9)  # a gain without memory use: not what is claimed
    _seed(tmp_path, 4, 0.9, complete=False)  # still running: shown, not counted
    numbers = report.summarise(tmp_path)["numbers"]
    results = {c["criterion"]: c["result"] for c in numbers["criteria"]}
    assert results["trained model's LTM-wiped score ≤ 0.2 (guess 0.125)"] == "FAIL"
    assert [r for c, r in results.items() if c.startswith("mean trained − control")] == ["n/a"]  # one seed
    assert numbers["seeds"]["4"]["complete"] is False and "trained-wiped" not in numbers["seeds"]["4"]["panels"]
    assert "(1 complete)" in numbers["criteria"][0]["criterion"]
    assert list(report.summarise(tmp_path, [4])["numbers"]["seeds"]) == ["4"]  # --seeds picks folders


def test_stages_run_in_order_skip_what_is_complete_and_stop_at_the_deadline(stages, tmp_path, monkeypatch):
    def launch(argv, log):  # a stage writes its output file after ``argv[1]`` seconds
        code = f"import time, pathlib; time.sleep({argv[1]}); pathlib.Path({argv[0]!r}).write_text('x')"
        return subprocess.Popen([sys.executable, "-c", code])

    monkeypatch.setattr(stages.L, "_launch", launch)
    (tmp_path / "seed0").mkdir()
    path = {n: tmp_path / n for n in ("a", "b", "c")}

    def stage(name, needs, seconds):
        out = path[name]
        return stages.Stage(f"seed0/{name}", needs, out.is_file, lambda: [str(out), seconds], tmp_path / name)

    plan = [stage("a", (), "0"), stage("b", ("seed0/a",), "0"), stage("c", ("seed0/b",), "30")]
    state = stages.run_stages(plan, 2, time.time() + 3, tmp_path, poll_s=0.1)
    assert state == {"seed0/a": "done", "seed0/b": "done", "seed0/c": "stopped"}  # SIGINT at the deadline
    assert not path["c"].exists()
    times = json.loads((tmp_path / "seed0" / "times.json").read_text())
    assert set(times) == {"a", "b", "c"}
    plan[2] = stage("c", ("seed0/b",), "0")
    state = stages.run_stages(plan, 1, None, tmp_path, poll_s=0.1)  # --resume: a and b are skipped
    assert state == {"seed0/a": "complete", "seed0/b": "complete", "seed0/c": "done"}
    path["a"].unlink()
    plan[0] = stages.Stage("seed0/a", (), lambda: False, lambda: ["/", "0"], tmp_path / "a")  # cannot write: exits 1
    plan[1] = stage("b", ("seed0/a",), "0")
    path["b"].unlink()
    state = stages.run_stages(plan[:2], 1, None, tmp_path, poll_s=0.1)
    assert state == {"seed0/a": "failed", "seed0/b": "blocked"}  # a failure blocks what needs it


def test_the_pipeline_refuses_a_used_folder_without_resume(stages, tmp_path):
    learning = importlib.import_module("learning")
    (tmp_path / "seed0").mkdir()
    (tmp_path / "seed0" / "warm.log").write_text("")
    args = learning.parse(["--seeds", "0", "--out", str(tmp_path)])
    assert "pass --resume" in stages.check_fresh(args, tmp_path)
    assert stages.check_fresh(learning.parse(["--seeds", "0", "--resume", "--out", str(tmp_path)]), tmp_path) is None
    names = [s.name for s in stages.seed_stages(args, tmp_path, 0)]
    assert names == ["seed0/warm", "seed0/eval-warm", "seed0/trained", "seed0/control",
                     *[f"seed0/eval-{p}" for p in PANELS[1:]]]  # fmt: skip
    train = stages.seed_stages(args, tmp_path, 0)[2].argv()
    config = learning._config(learning.parse(train), 0, None, tmp_path / "t")
    assert config.model == str((tmp_path / "seed0" / "warm").resolve())  # GRPO starts from the warm start
    assert config.env_kwargs["tools_in_system_prompt"] is False and not config.overwrite  # resumable
    wipe = stages.seed_stages(args, tmp_path, 0)[-1]
    assert wipe.needs == ("seed0/trained",) and wipe.log.name == "eval-trained-wiped.log"


@pytest.mark.slow
@pytest.mark.train
def test_pipeline_runs_resumes_and_reports_memory_use_on_cpu(tmp_path):
    """The documented tiny-model check: every stage completes, a second call skips them all."""
    pytest.importorskip("transformers")
    out = tmp_path / "learning"
    cmd = [sys.executable, str(BENCHMARKS / "learning.py"), "--preset", "cpu-smoke", "--seeds", "0", "--steps", "2"]
    cmd += ["--warm-steps", "2", "--eval-reps", "1", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count(": done") == 8
    seed = json.loads((out / "summary.json").read_text())["numbers"]["seeds"]["0"]
    assert seed["complete"] and seed["steps"] == {"trained": 2, "control": 2}
    for panel in PANELS:  # the memory-use rates are reported for every panel
        assert seed["panels"][panel]["episodes"] == 16 and math.isfinite(seed["panels"][panel]["add_s1"])
    assert seed["warm_start"]["steps"] == 2 and seed["warm_start"]["mix_policy"] == "no-memory"
    again = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count(": complete") == 8  # nothing reruns
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "pass --resume" in refused.stdout
