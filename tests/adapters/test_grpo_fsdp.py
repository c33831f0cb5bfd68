"""The GRPO trainer with FSDP2-sharded parameters: 2 CPU processes (gloo) under torchrun.

accelerate 1.15 has no FSDP on CPU (an FSDP config becomes plain MULTI_CPU), so these runs
ask for ``--sharding fsdp2``: the trainer shards with ``torch.distributed.fsdp.fully_shard``
itself, the same code path an ``accelerate launch --config_file fsdp.yaml`` GPU run takes.
The proof that the lockstep padding adds nothing: a sharded run ends with the same weights,
optimizer state and metrics as the replicated run of the same config.
"""

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from agemem_gym.adapters.grpo.config import load_config  # noqa: E402
from agemem_gym.adapters.grpo.launch import check_distributed_type, resolve_sharding  # noqa: E402
from agemem_gym.error import InvalidConfig  # noqa: E402
from tests.adapters.sharded_runs import assert_same_run, launch, write_config  # noqa: E402

pytestmark = pytest.mark.train


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


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_fsdp2_on_two_cpu_processes_matches_replicas(tmp_path, lora):
    """Sharded: step 0, then resumed for step 1 (sharded optimizer state loaded); replicated: steps 0-1 in one go."""
    config = write_config(tmp_path, lora)
    sharded, replicated = tmp_path / "fsdp", tmp_path / "ddp"
    launch(config, sharded, 1, "--sharding", "fsdp2")
    proc = launch(config, sharded, 2, "--sharding", "fsdp2", "--resume")
    assert f"resuming from {sharded} at step 1" in proc.stdout
    launch(config, replicated, 2, "--sharding", "replicate")
    assert_same_run(sharded, replicated, lora)
