"""Shared by the sharded-training tests (FSDP2, ZeRO-2/3): 2-process CPU runs and their comparison.

Each test runs a layout and the replicated layout on the same config and checks that they end
with the same metrics, weights and optimizer state: the proof that lockstep padding, gathered
phases and engine-owned steps change nothing.
"""

import csv
import subprocess
import sys

import torch

from agemem_gym.adapters.grpo.checkpoint import latest_checkpoint
from agemem_gym.adapters.grpo.launch import accelerate_config_path

# ranks get unequal shares (3 tasks over 2 processes) and one row per micro-batch, so they run
# different numbers of micro-batches and a sharded update must pad; two minibatches per step
CONFIG = """
preset = "cpu-smoke"
tasks_per_step = 3
rows_per_micro_batch = 1
row_tokens = 64
minibatches = 2
save_every = 1
"""


def write_config(tmp_path, lora):
    """The run's TOML file (a LoRA r4 variant when ``lora``)."""
    config = tmp_path / "run.toml"
    config.write_text(CONFIG + ("lora_rank = 4\nlora_alpha = 8\n" if lora else ""))
    return config


def launch(config, out, steps, *extra, accelerate_config=None):
    """The trainer's CLI on 2 CPU processes: torchrun, or ``accelerate launch`` with a bundled config."""
    if accelerate_config:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file"]
        cmd += [str(accelerate_config_path(accelerate_config)), "--num_processes", "2", "--main_process_port", "0"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    cmd += ["-m", "agemem_gym.adapters.grpo", "--config", str(config), "--steps", str(steps)]
    cmd += ["--output-dir", str(out), "--no-progress", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _weights(checkpoint):
    from safetensors.torch import load_file

    files = sorted((checkpoint / "model").glob("*.safetensors"))
    assert len(files) == 1, files
    return load_file(str(files[0]))


def _rows(out):
    with (out / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def assert_same_run(run, replicated, lora):
    """``run`` (a sharded layout, resumed after step 0) ends where the replicated run does after 2 steps."""
    import pytest

    rows_s, rows_r = _rows(run), _rows(replicated)
    assert all(float(r["perf/lockstep_passes"]) > 0 for r in rows_s)  # the padding did run
    assert all(float(r["perf/lockstep_passes"]) == 0 for r in rows_r)  # replicas never pad
    for row_s, row_r in zip(rows_s, rows_r, strict=True):
        for key in row_r:
            if not key.startswith("perf/"):
                # a term the task does not score (maintenance where nothing goes stale) is NaN in both
                assert float(row_s[key]) == pytest.approx(float(row_r[key]), rel=1e-5, abs=1e-7, nan_ok=True), key
    ckpt_s, ckpt_r = latest_checkpoint(run), latest_checkpoint(replicated)
    assert ckpt_s.name == ckpt_r.name == "checkpoint-000001"
    w_s, w_r, w_0 = _weights(ckpt_s), _weights(ckpt_r), _weights(run / "checkpoint-000000")
    assert sorted(w_s) == sorted(w_r) and (not lora or all("lora_" in k for k in w_s))
    for name, tensor in w_r.items():
        torch.testing.assert_close(w_s[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(w_0[n], t) for n, t in w_s.items())  # step 1 trained
    opt_s = torch.load(ckpt_s / "optimizer.pt", weights_only=True)
    opt_r = torch.load(ckpt_r / "optimizer.pt", weights_only=True)
    assert opt_s["param_groups"] == opt_r["param_groups"]
    assert sorted(opt_s["state"]) == sorted(opt_r["state"])
    for i, state in opt_r["state"].items():
        assert sorted(opt_s["state"][i]) == sorted(state)
        for key, value in state.items():
            torch.testing.assert_close(opt_s["state"][i][key], value, rtol=1e-5, atol=1e-7, msg=f"{i}.{key}")
