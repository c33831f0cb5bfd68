"""Scale-out of the GRPO trainer: bundled accelerate configs, crash-safe checkpoints, resuming
with another number of processes."""

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("transformers")
accelerate = pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from agemem_gym.adapters.grpo import ACCELERATE_CONFIGS, accelerate_config_path  # noqa: E402
from agemem_gym.adapters.grpo import distributed as D  # noqa: E402
from agemem_gym.adapters.grpo.checkpoint import (  # noqa: E402
    COMPLETE,
    is_complete,
    latest_checkpoint,
    load_training_state,
    save_checkpoint,
)
from agemem_gym.adapters.grpo.config import load_config  # noqa: E402
from agemem_gym.adapters.grpo.update import minibatch_split  # noqa: E402
from agemem_gym.error import UnknownName  # noqa: E402

pytestmark = pytest.mark.train


# ============================================================================ bundled accelerate configs
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ddp", {"multi_gpu": True, "use_fsdp": False, "use_deepspeed": False}),
        ("fsdp", {"use_fsdp": True, "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP"}),
        ("zero2", {"use_deepspeed": True, "zero_stage": 2}),
        ("zero3", {"use_deepspeed": True, "zero_stage": 3, "zero3_save_16bit_model": True}),
    ],
)
def test_bundled_accelerate_config_is_what_accelerate_launch_reads(name, expected):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    path = accelerate_config_path(name)
    config = load_config_from_file(str(path))  # unknown top-level keys raise TypeError
    assert isinstance(config, ClusterConfig) and config.mixed_precision == "no"  # the run's `precision` decides
    parser = launch_command_parser()
    dests = {action.dest for action in parser._actions}
    nested = {**(config.fsdp_config or {}), **(config.deepspeed_config or {})}
    assert set(nested) <= dests, set(nested) - dests  # every nested key is one accelerate launch reads
    args, _, _ = _validate_launch_command(parser.parse_args(["--config_file", str(path), "train.py"]))
    assert {k: getattr(args, k) for k in expected} == expected
    assert (args.num_machines, args.machine_rank, args.main_process_port) == (1, 0, 29500)


def test_accelerate_config_names_and_cli(capsys):
    from agemem_gym.cli import main

    assert ACCELERATE_CONFIGS == ("ddp", "fsdp", "zero2", "zero3")
    with pytest.raises(UnknownName, match="Did you mean 'zero3'"):
        accelerate_config_path("zero-3")
    assert main(["train", "--print-accelerate-config", "zero2"]) == 0
    assert capsys.readouterr().out.strip() == str(accelerate_config_path("zero2"))


# ============================================================================ world-size-free run state
@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_task_shares_are_contiguous_and_cover_the_step(world):
    for n in (1, 2, 7, 16):
        shares = [D.task_share(n, rank, world) for rank in range(world)]
        assert [i for share in shares for i in share] == list(range(n))
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_minibatch_split_advances_the_run_rng_the_same_on_every_rank():
    """Ranks hold different sample counts; the run's RNG (the task schedule) must stay identical."""
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    parts = minibatch_split(5, 2, a)
    minibatch_split(11, 2, b)
    assert a.bit_generator.state == b.bit_generator.state
    assert sorted(int(i) for p in parts for i in p) == list(range(5)) and len(parts) == 2


# ============================================================================ crash-safe checkpoints
def _tiny():
    from agemem_gym.policies.llm.models import load_model

    model, tokenizer = load_model("tiny", seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return model, tokenizer, optimizer


def test_only_complete_checkpoints_are_loaded_and_leftovers_are_cleared(tmp_path):
    model, tokenizer, optimizer = _tiny()
    first = save_checkpoint(tmp_path, 0, model, tokenizer, optimizer, np.random.default_rng(0), {"seed": 0})
    assert (first / COMPLETE).read_text() == "0\n" and latest_checkpoint(tmp_path) == first
    # a newer checkpoint without its marker (written by this format, cut short) is skipped
    cut = tmp_path / "checkpoint-000001"
    cut.mkdir()
    (cut / "trainer_state.json").write_text(json.dumps({"format": 2, "step": 1}))
    assert not is_complete(cut) and latest_checkpoint(tmp_path) == first
    # an older-format checkpoint (atomic rename, no marker) still counts
    shutil.rmtree(cut)
    shutil.copytree(first, cut)
    (cut / COMPLETE).unlink()
    state = {k: v for k, v in json.loads((first / "trainer_state.json").read_text()).items() if k != "format"}
    (cut / "trainer_state.json").write_text(json.dumps({**state, "step": 1}))
    assert latest_checkpoint(tmp_path) == cut
    # the staging folder of a killed save goes at the next save; re-saving a step replaces it
    (tmp_path / ".checkpoint-000002.abc").mkdir()
    again = save_checkpoint(tmp_path, 0, model, tokenizer, optimizer, np.random.default_rng(7), {"seed": 0})
    assert again == first and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-000000", cut.name]
    rng = np.random.default_rng(0)
    assert load_training_state(first, optimizer, rng) == 0
    assert rng.bit_generator.state == np.random.default_rng(7).bit_generator.state


_SAVER = textwrap.dedent(
    """
    import json, os, signal, sys, tempfile
    import numpy as np, torch
    torch.set_num_threads(1)
    from safetensors.torch import load_file
    from agemem_gym.adapters.grpo import checkpoint as ck
    from agemem_gym.policies.llm.models import load_model

    folder, fractions = sys.argv[1], json.loads(sys.argv[2])
    model, tok = load_model("tiny", seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    name, marker = next(model.named_parameters())
    events, kill_at = [0], [0]

    def counted(fn):  # every file write, fsync and rename of a save is a point where it may die
        def wrapper(*args, **kwargs):
            events[0] += 1
            if events[0] == kill_at[0]:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)
        return wrapper

    ck._fsync_path, ck._write_synced = counted(ck._fsync_path), counted(ck._write_synced)
    ck._replace_folder, torch.save = counted(ck._replace_folder), counted(torch.save)
    with tempfile.TemporaryDirectory() as scratch:  # how many such points one save has
        ck.save_checkpoint(scratch, 0, model, tok, opt, np.random.default_rng(0), {"seed": 0})
    points = events[0]
    for step, fraction in enumerate(fractions, start=1):
        with torch.no_grad():
            marker.view(-1)[0] = float(step)  # the saved weights say which step they are
        pid = os.fork()
        if pid == 0:  # the child saves and SIGKILLs itself at its kill point (1.0: the last; past it: it finishes)
            events[0], kill_at[0] = 0, 1 + round(fraction * (points - 1))
            ck.save_checkpoint(folder, step, model, tok, opt, np.random.default_rng(step), {"seed": 0})
            os._exit(0)
        status = os.waitpid(pid, 0)[1]
        finished = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        path = ck.latest_checkpoint(folder)
        weight = float(load_file(str(path / "model" / "model.safetensors"))[name].view(-1)[0])
        rng = np.random.default_rng(123)
        got = ck.load_training_state(path, torch.optim.AdamW(model.parameters(), lr=1e-3), rng)
        same_rng = rng.bit_generator.state == np.random.default_rng(got).bit_generator.state
        print(json.dumps({"step": step, "finished": finished, "loaded": got, "weight": weight,
                          "same_rng": same_rng, "folders": sorted(os.listdir(folder))}), flush=True)
    """
)


def test_checkpoint_save_killed_midway_leaves_the_previous_one_loadable(tmp_path):
    """SIGKILL a process while it saves, at points spread over the save; the newest complete checkpoint loads.

    The kill points are counted in the save's own work (file writes, fsyncs, the rename), not
    timed: a busy machine changes how long the test takes, not what it checks.
    """
    folder = tmp_path / "run"
    first = _tiny()
    with torch.no_grad():
        next(first[0].parameters()).view(-1)[0] = -1.0
    save_checkpoint(folder, 0, *first, np.random.default_rng(0), {"seed": 0})  # the baseline
    fractions = [0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0, 2.0, 0.5]  # 1.0: after the rename; 2.0: never killed
    proc = subprocess.run(
        [sys.executable, "-c", _SAVER, str(folder), json.dumps(fractions)], capture_output=True, text=True
    )  # no timeout: the work is bounded (one save per kill point, no waiting)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == len(fractions)
    complete = {0}  # steps whose folder exists (the rename is the last act of a save)
    for row in rows:
        names = [n for n in row["folders"] if n.startswith("checkpoint-")]
        complete |= {int(n.split("-")[1]) for n in names}
        assert row["loaded"] == max(complete)  # never a half-written one
        assert row["same_rng"] and row["weight"] == (row["loaded"] if row["loaded"] else -1.0)
        if row["finished"]:
            assert row["loaded"] == row["step"]
        assert all(n.startswith((".checkpoint-", "checkpoint-")) for n in row["folders"])
    killed_midway = [r for r in rows if not r["finished"] and r["loaded"] != r["step"]]
    assert killed_midway and any(r["finished"] for r in rows)  # kills landed before and after the end


# ============================================================================ resume with another world size
def _launch(out, steps, nproc, *extra):
    """The trainer's CLI on ``nproc`` CPU processes (gloo), as the README's torchrun line."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone"]
    cmd += ["-m", "agemem_gym.adapters.grpo", "--config", "cpu-smoke", "--steps", str(steps)]
    cmd += ["--output-dir", str(out), "--no-progress", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def _saved_weights(checkpoint):
    from safetensors.torch import load_file

    return load_file(str(checkpoint / "model" / "model.safetensors"))


@pytest.mark.slow
def test_resume_with_another_number_of_processes(tmp_path):
    """Checkpointed by 2 processes, resumed by 1 (same process, loaded state checked), then by 2 again."""
    from agemem_gym.adapters.grpo.state import build_state
    from agemem_gym.adapters.grpo.trainer import train

    out = tmp_path / "run"
    proc = _launch(out, 1, 2, "--record", str(tmp_path / "rec"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["rank0", "rank1"]  # two processes ran
    saved = latest_checkpoint(out)
    assert saved is not None and saved.name == "checkpoint-000000"
    # one process loads what two saved: the step, the weights, the run's RNG
    config = load_config("cpu-smoke", output_dir=str(out), num_steps=2, resume=True)
    state = build_state(config)
    try:
        assert (state.start_step, state.world, state.local_tasks) == (1, 1, config.tasks_per_step)
        weights = _saved_weights(saved)
        for name, tensor in state.model.state_dict().items():
            if name in weights:
                assert torch.equal(tensor, weights[name]), name
        recorded = json.loads((saved / "trainer_state.json").read_text())["numpy_rng"]
        assert json.loads(json.dumps(state.rng.bit_generator.state)) == recorded
    finally:
        state.envs.close()
    result = train(config, progress=False)
    assert [int(r["step"]) for r in result.metrics] == [0, 1] and result.checkpoint.name == "checkpoint-000001"
    assert any(not torch.equal(t, _saved_weights(result.checkpoint)[n]) for n, t in _saved_weights(saved).items())
    # and two processes continue what one saved (the replicas' checksums must agree, or it raises)
    proc = _launch(out, 3, 2, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming from {out} at step 2" in proc.stdout
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [int(float(r.split(",")[0])) for r in rows[1:]] == [0, 1, 2]
    assert latest_checkpoint(out).name == "checkpoint-000002"
