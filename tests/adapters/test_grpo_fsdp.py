"""The GRPO trainer with FSDP2-sharded parameters: 2 CPU processes (gloo) under torchrun.

accelerate 1.15 has no FSDP on CPU (an FSDP config becomes plain MULTI_CPU), so these runs
ask for ``--sharding fsdp2``: the trainer shards with ``torch.distributed.fsdp.fully_shard``
itself, the same code path an ``accelerate launch --config_file fsdp.yaml`` GPU run takes.
The proof that the lockstep padding adds nothing: a sharded run ends with the same weights,
optimizer state and metrics as the replicated run of the same config.
"""

import csv
import subprocess
import sys

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from agemem_gym.adapters.grpo.checkpoint import latest_checkpoint  # noqa: E402
from agemem_gym.adapters.grpo.config import load_config  # noqa: E402
from agemem_gym.adapters.grpo.launch import check_distributed_type, resolve_sharding  # noqa: E402
from agemem_gym.error import InvalidConfig  # noqa: E402

pytestmark = pytest.mark.train

# ranks get unequal shares (3 tasks over 2 processes) and one row per micro-batch, so they run
# different numbers of micro-batches and the sharded update must pad; two minibatches per step
_CONFIG = """
preset = "cpu-smoke"
tasks_per_step = 3
rows_per_micro_batch = 1
row_tokens = 64
minibatches = 2
save_every = 1
"""


def test_fsdp_is_accepted_megatron_refused():
    from accelerate.utils import DistributedType

    for kind in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU, DistributedType.FSDP):
        check_distributed_type(kind)
    with pytest.raises(InvalidConfig, match="under accelerate's MEGATRON_LM.*fsdp.yaml.*ddp.yaml"):
        check_distributed_type(DistributedType.MEGATRON_LM)
    assert resolve_sharding("auto", DistributedType.FSDP, 2) == "fsdp2"
    assert resolve_sharding("auto", DistributedType.MULTI_GPU) == "replicate"
    assert resolve_sharding("fsdp2", DistributedType.MULTI_CPU) == "fsdp2"  # how CPU runs shard
    with pytest.raises(InvalidConfig, match="FSDP2 only.*FSDP1"):
        resolve_sharding("auto", DistributedType.FSDP, 1)
    with pytest.raises(InvalidConfig, match="contradicts"):
        resolve_sharding("replicate", DistributedType.FSDP, 2)
    with pytest.raises(InvalidConfig, match="sharding must be"):
        load_config("cpu-smoke", sharding="zero1")


def _launch(config, out, steps, *extra):
    """The trainer's CLI on 2 CPU processes (gloo)."""
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


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_fsdp2_on_two_cpu_processes_matches_replicas(tmp_path, lora):
    """Sharded: step 0, then resumed for step 1 (sharded optimizer state loaded); replicated: steps 0-1 in one go."""
    config = tmp_path / "run.toml"
    config.write_text(_CONFIG + ("lora_rank = 4\nlora_alpha = 8\n" if lora else ""))
    sharded, replicated = tmp_path / "fsdp", tmp_path / "ddp"
    _launch(config, sharded, 1, "--sharding", "fsdp2")
    proc = _launch(config, sharded, 2, "--sharding", "fsdp2", "--resume")
    assert f"resuming from {sharded} at step 1" in proc.stdout
    _launch(config, replicated, 2, "--sharding", "replicate")

    rows_s, rows_r = _rows(sharded), _rows(replicated)
    assert [float(r["perf/lockstep_passes"]) for r in rows_r] == [0.0, 0.0]
    assert all(float(r["perf/lockstep_passes"]) > 0 for r in rows_s)  # the padding did run
    for row_s, row_r in zip(rows_s, rows_r, strict=True):
        for key in row_r:
            if not key.startswith("perf/"):
                assert float(row_s[key]) == pytest.approx(float(row_r[key]), rel=1e-5, abs=1e-7), key
    ckpt_s, ckpt_r = latest_checkpoint(sharded), latest_checkpoint(replicated)
    assert ckpt_s.name == ckpt_r.name == "checkpoint-000001"
    w_s, w_r, w_0 = _weights(ckpt_s), _weights(ckpt_r), _weights(sharded / "checkpoint-000000")
    assert sorted(w_s) == sorted(w_r) and (not lora or all("lora_" in k for k in w_s))
    for name, tensor in w_r.items():
        torch.testing.assert_close(w_s[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(w_0[n], t) for n, t in w_s.items())  # step 1 trained
    opt_s = torch.load(ckpt_s / "optimizer.pt", weights_only=True)["state"]
    opt_r = torch.load(ckpt_r / "optimizer.pt", weights_only=True)["state"]
    assert sorted(opt_s) == sorted(opt_r)
    for i, state in opt_r.items():
        for key, value in state.items():
            torch.testing.assert_close(opt_s[i][key], value, rtol=1e-5, atol=1e-7, msg=f"{i}.{key}")
