"""The GRPO trainer under DeepSpeed ZeRO-2 and ZeRO-3: 2 CPU processes (gloo) under ``accelerate launch``.

accelerate 1.15 runs its DeepSpeed launch on CPU (``distributed_type`` DEEPSPEED, gloo), so these
runs use the bundled ``zero2.yaml`` and ``zero3.yaml`` as a GPU run would. The proof that the
engine's loss handling, the lockstep padding and (ZeRO-3) the gathered, hook-free phases change
nothing: a ZeRO run ends with the same weights, optimizer state and metrics as the replicated run
of the same config, through a resume. Skipped without deepspeed
(CI does not install it: ``pip install "agemem-gym[deepspeed]"``).
"""

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from agemem_gym.adapters.grpo.launch import check_distributed_type, resolve_sharding  # noqa: E402
from agemem_gym.error import InvalidConfig  # noqa: E402
from tests.adapters.sharded_runs import assert_same_run, launch, write_config  # noqa: E402

pytestmark = pytest.mark.train


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


def _check_zero_matches_replicas(tmp_path, layout, lora):
    """``layout`` (zero2, zero3): step 0, then resumed for step 1 (state partitioned again); replicas: steps 0-1."""
    pytest.importorskip("deepspeed")
    config = write_config(tmp_path, lora)
    zero, replicated = tmp_path / layout, tmp_path / "ddp"
    proc = launch(config, zero, 1, accelerate_config=layout)
    assert f"DeepSpeed ZeRO-{layout[-1]} over 2 processes" in proc.stdout
    proc = launch(config, zero, 2, "--resume", accelerate_config=layout)
    assert f"resuming from {zero} at step 1" in proc.stdout
    launch(config, replicated, 2)
    assert_same_run(zero, replicated, lora)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_zero2_on_two_cpu_processes_matches_replicas(tmp_path, lora):
    _check_zero_matches_replicas(tmp_path, "zero2", lora)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_zero3_on_two_cpu_processes_matches_replicas(tmp_path, lora):
    """ZeRO-3: every weight partitioned (none resident), checkpoints gathered, resume partitions again."""
    _check_zero_matches_replicas(tmp_path, "zero3", lora)
