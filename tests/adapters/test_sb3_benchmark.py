"""Smoke test of benchmarks/sb3_memory_controller.py with a minimal budget."""

import importlib
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_benchmark_runs_with_a_tiny_budget(tmp_path, monkeypatch):
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("matplotlib")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    bench = importlib.import_module("sb3_memory_controller")
    out, png = tmp_path / "result.json", tmp_path / "curves.png"
    argv = ["--envs", "AgeMem/MemoryProbe-v0", "--algos", "ppo", "--timesteps", "256", "--n-envs", "2"]
    argv += ["--train-tasks", "20", "--eval-tasks", "3", "--json", str(out), "--png", str(png)]
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())
    controllers = [r["controller"] for r in result["results"]]
    assert controllers == ["random", "no-memory", "store-all", "ppo"]
    assert all(r["episodes"] == 3 for r in result["results"])
    assert result["curves"]["AgeMem/MemoryProbe-v0"]["ppo"]["returns"]
    assert png.stat().st_size > 1000
