"""The GRPO trainer under DeepSpeed ZeRO-2 and ZeRO-3: 2 CPU processes (gloo) under ``accelerate launch``.

accelerate 1.15 runs its DeepSpeed launch on CPU (``distributed_type`` DEEPSPEED, gloo), so these
runs use the bundled ``zero2.yaml`` and ``zero3.yaml`` as a GPU run would. The proof that the
engine's loss handling, the lockstep padding and (ZeRO-3) the gathered, hook-free phases change
nothing: a ZeRO run ends with the same weights, optimizer state and metrics as the replicated run
of the same config, through a resume. Skipped without deepspeed
(CI does not install it: ``pip install "agemem-gym[deepspeed]"``).
"""

import csv
import subprocess
import sys

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from agemem_gym.adapters.grpo.checkpoint import latest_checkpoint  # noqa: E402
from agemem_gym.adapters.grpo.launch import accelerate_config_path, check_distributed_type, resolve_sharding  # noqa: E402
from agemem_gym.error import InvalidConfig  # noqa: E402

pytestmark = pytest.mark.train

# as test_grpo_fsdp.py: unequal shares (3 tasks over 2 processes), one row per micro-batch, two
# minibatches, so the ranks run different numbers of micro-batches and ZeRO-2 must pad
_CONFIG = """
preset = "cpu-smoke"
tasks_per_step = 3
rows_per_micro_batch = 1
row_tokens = 64
minibatches = 2
save_every = 1
"""


def test_deepspeed_zero2_and_zero3_accepted():
    from accelerate.utils import DistributedType

    check_distributed_type(DistributedType.DEEPSPEED)
    with pytest.raises(InvalidConfig, match="MEGATRON_LM.*fsdp.yaml.*zero2.yaml.*ddp.yaml"):
        check_distributed_type(DistributedType.MEGATRON_LM)
    for stage in (2, 3):
        layout = f"zero{stage}"
        assert resolve_sharding("auto", DistributedType.DEEPSPEED, None, stage) == layout
        assert resolve_sharding(layout, DistributedType.DEEPSPEED, None, stage) == layout
        assert resolve_sharding(layout, DistributedType.MULTI_CPU) == layout  # torchrun
    with pytest.raises(InvalidConfig, match="stages 2 and 3 only.*stage 1.*zero2.yaml.*zero3.yaml"):
        resolve_sharding("auto", DistributedType.DEEPSPEED, None, 1)
    with pytest.raises(InvalidConfig, match="contradicts the DeepSpeed ZeRO-2 launch"):
        resolve_sharding("fsdp2", DistributedType.DEEPSPEED, None, 2)
    with pytest.raises(InvalidConfig, match="'zero2' contradicts the DeepSpeed ZeRO-3 launch"):
        resolve_sharding("zero2", DistributedType.DEEPSPEED, None, 3)


def _launch(config, out, steps, *, zero=None):
    """The trainer's CLI on 2 CPU processes: accelerate's launch with a bundled ZeRO config, or torchrun replicas."""
    if zero:
        cmd = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(accelerate_config_path(zero)),
        ]
        cmd += ["--num_processes", "2", "--main_process_port", "0"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    cmd += ["-m", "agemem_gym.adapters.grpo", "--config", str(config), "--steps", str(steps)]
    cmd += ["--output-dir", str(out), "--no-progress"]
    if steps > 1 and zero:
        cmd += ["--resume"]
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


def _check_zero_matches_replicas(tmp_path, layout, lora):
    """``layout`` (zero2, zero3): step 0, then resumed for step 1 (state partitioned again); replicas: steps 0-1."""
    pytest.importorskip("deepspeed")
    config = tmp_path / "run.toml"
    config.write_text(_CONFIG + ("lora_rank = 4\nlora_alpha = 8\n" if lora else ""))
    zero, replicated = tmp_path / layout, tmp_path / "ddp"
    proc = _launch(config, zero, 1, zero=layout)
    assert f"DeepSpeed ZeRO-{layout[-1]} over 2 processes" in proc.stdout
    proc = _launch(config, zero, 2, zero=layout)
    assert f"resuming from {zero} at step 1" in proc.stdout
    _launch(config, replicated, 2)

    rows_z, rows_r = _rows(zero), _rows(replicated)
    assert all(float(r["perf/lockstep_passes"]) > 0 for r in rows_z)  # the padding did run
    for row_z, row_r in zip(rows_z, rows_r, strict=True):
        for key in row_r:
            if not key.startswith("perf/"):
                assert float(row_z[key]) == pytest.approx(float(row_r[key]), rel=1e-5, abs=1e-7), key
    ckpt_z, ckpt_r = latest_checkpoint(zero), latest_checkpoint(replicated)
    assert ckpt_z.name == ckpt_r.name == "checkpoint-000001"
    w_z, w_r, w_0 = _weights(ckpt_z), _weights(ckpt_r), _weights(zero / "checkpoint-000000")
    assert sorted(w_z) == sorted(w_r) and (not lora or all("lora_" in k for k in w_z))
    for name, tensor in w_r.items():
        torch.testing.assert_close(w_z[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(w_0[n], t) for n, t in w_z.items())  # step 1 trained
    opt_z = torch.load(ckpt_z / "optimizer.pt", weights_only=True)
    opt_r = torch.load(ckpt_r / "optimizer.pt", weights_only=True)
    assert opt_z["param_groups"] == opt_r["param_groups"]
    assert sorted(opt_z["state"]) == sorted(opt_r["state"])
    for i, state in opt_r["state"].items():
        assert sorted(opt_z["state"][i]) == sorted(state)
        for key, value in state.items():
            torch.testing.assert_close(opt_z["state"][i][key], value, rtol=1e-5, atol=1e-7, msg=f"{i}.{key}")


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_zero2_on_two_cpu_processes_matches_replicas(tmp_path, lora):
    _check_zero_matches_replicas(tmp_path, "zero2", lora)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_zero3_on_two_cpu_processes_matches_replicas(tmp_path, lora):
    """ZeRO-3: every weight partitioned (none resident), checkpoints gathered, resume partitions again."""
    _check_zero_matches_replicas(tmp_path, "zero3", lora)
