"""The real trainer on the real tiny model: learning, resume, CLI, configs, 2-process DDP."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import nullcontext

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from agemem_gym.adapters.grpo.batching import Sample  # noqa: E402
from agemem_gym.adapters.grpo.config import GRPOConfig, load_config  # noqa: E402
from agemem_gym.adapters.grpo.rollout import RolloutBatch, Trajectory  # noqa: E402
from agemem_gym.adapters.grpo.trainer import _attach_advantages, distractors_at, train  # noqa: E402
from agemem_gym.adapters.grpo.update import score_logprobs, update_policy  # noqa: E402
from agemem_gym.error import InvalidConfig, UnknownName  # noqa: E402

pytestmark = pytest.mark.train


def probe_config(tmp_path, **changes):
    base = load_config(
        "cpu-smoke",
        output_dir=str(tmp_path),
        tensorboard=False,
        save_every=1000,
        env_kwargs={"num_tasks": 1, "max_rounds": 3, "tools_in_system_prompt": False, "reward": "answer_only"},
    )
    return base.replace(**changes)


def test_wiring_mean_reward_rises_as_the_tiny_model_is_penalised_less(tmp_path):
    """Wiring, not memory: the update moves a random tiny LM in the direction of its reward.

    On a one-task probe the reward rises because the model makes fewer invalid turns; nothing
    here needs memory (the answer is constant). ``benchmarks/learning.py`` carries the memory
    claim: a held-out panel where only storing and retrieving beats the 1/8 guess.
    """
    config = probe_config(tmp_path, tasks_per_step=1, group_size=16, learning_rate=5e-3, num_steps=16)
    result = train(config, progress=False)
    rewards = [row["reward/mean"] for row in result.metrics]
    assert len(rewards) == 16
    assert np.mean(rewards[-4:]) > np.mean(rewards[:4]) + 0.4, rewards
    kl = [row["losses/kl"] for row in result.metrics if not np.isnan(row["losses/kl"])]
    assert kl[0] < 1e-3 < kl[-1]  # the policy moved away from the reference
    mismatch = [row["losses/logprob_mismatch"] for row in result.metrics]
    assert max(mismatch) < 1e-3  # rollout log-probs = the trainer's old log-probs


def test_checkpoint_resume_replays_the_same_run(tmp_path):
    straight = train(probe_config(tmp_path / "a", num_steps=3, save_every=1), progress=False)
    first = train(probe_config(tmp_path / "b", num_steps=2, save_every=1), progress=False)
    assert first.checkpoint is not None and first.checkpoint.name == "checkpoint-000001"
    with pytest.raises(InvalidConfig, match="seed: 0 -> 1"):  # other settings: refused, folder untouched
        train(probe_config(tmp_path / "b", num_steps=3, save_every=1, seed=1), progress=False)
    with pytest.raises(InvalidConfig, match="--resume"):
        train(probe_config(tmp_path / "b", num_steps=3, save_every=1, resume=False), progress=False)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["num_steps"] == 2
    resumed = train(probe_config(tmp_path / "b", num_steps=3, save_every=1), progress=False)
    assert [r["step"] for r in resumed.metrics] == [0.0, 1.0, 2.0]
    for key in ("reward/mean", "losses/policy", "losses/kl"):
        assert resumed.metrics[2][key] == pytest.approx(straight.metrics[2][key], rel=1e-5, abs=1e-7), key
    assert (tmp_path / "b" / "training_curve.png").is_file()
    from transformers.utils import logging as hf_logging

    assert not hf_logging.is_progress_bar_enabled()  # no loading bars between the training bar's lines
    # --overwrite starts afresh: the same rows as a fresh run, the old checkpoints gone
    fresh = train(probe_config(tmp_path / "b", num_steps=1, save_every=1, overwrite=True), progress=False)
    assert [r["step"] for r in fresh.metrics] == [0.0]
    assert fresh.metrics[0]["reward/mean"] == straight.metrics[0]["reward/mean"]
    assert sorted(p.name for p in (tmp_path / "b").glob("checkpoint-*")) == ["checkpoint-000000"]


def test_an_interrupted_run_resumes_exactly(tmp_path, monkeypatch):
    """Ctrl-C before a step's update drops the step (RNGs rewound); during it, the step completes first."""
    import os

    from agemem_gym.adapters.grpo import trainer
    from agemem_gym.adapters.grpo.interrupt import TrainingInterrupted

    straight = train(probe_config(tmp_path / "a", num_steps=3), progress=False)
    collect, update = trainer._collect_rollouts, trainer._update

    def collect_then_interrupt(state, step):
        batch = collect(state, step)  # the step's draws are made, then Ctrl-C
        if step == 1:
            raise KeyboardInterrupt
        return batch

    monkeypatch.setattr(trainer, "_collect_rollouts", collect_then_interrupt)
    with pytest.raises(TrainingInterrupted) as stop:
        train(probe_config(tmp_path / "b", num_steps=3), progress=False)
    assert stop.value.step == 0 and stop.value.checkpoint == tmp_path / "b" / "checkpoint-000000"
    monkeypatch.setattr(trainer, "_collect_rollouts", collect)

    def interrupt_during_update(state, samples):
        os.kill(os.getpid(), signal.SIGINT)  # deferred: the update, log and checkpoint still run
        return update(state, samples)

    monkeypatch.setattr(trainer, "_update", interrupt_during_update)
    with pytest.raises(TrainingInterrupted) as stop:
        train(probe_config(tmp_path / "b", num_steps=3), progress=False)
    assert stop.value.step == 1 and (tmp_path / "b" / "checkpoint-000001").is_dir()
    monkeypatch.setattr(trainer, "_update", update)
    resumed = train(probe_config(tmp_path / "b", num_steps=3), progress=False)
    assert [r["step"] for r in resumed.metrics] == [0.0, 1.0, 2.0]
    for row, expected in zip(resumed.metrics, straight.metrics):
        for key in ("reward/mean", "losses/policy", "losses/kl"):
            assert row[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), (row["step"], key)


def test_sigint_saves_the_last_completed_step_and_resume_continues(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "agemem_gym", "train", "--config", "cpu-smoke", "--output-dir", str(out)]
    proc = subprocess.Popen([*cmd, "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "metrics.csv").is_file() and len((out / "metrics.csv").read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    match = re.fullmatch(r"agemem: interrupted at step (\d+); checkpoint saved to (.+); resume with --resume", last)
    assert match, stderr
    done = int(match.group(1))
    assert match.group(2) == str(out / f"checkpoint-{done:06d}")
    assert (out / f"checkpoint-{done:06d}" / "trainer_state.json").is_file()
    assert len((out / "metrics.csv").read_text().splitlines()) == done + 2  # header + steps 0..done
    resumed = subprocess.run(
        [*cmd, "--resume", "--steps", str(done + 2), "--no-progress"], capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from {out} at step {done + 1}" in resumed.stdout
    assert (out / f"checkpoint-{done + 1:06d}").is_dir()
    assert len((out / "metrics.csv").read_text().splitlines()) == done + 3


def test_cli_writes_logs_checkpoint_and_plot(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agemem_gym.adapters.grpo",
            "--config",
            "cpu-smoke",
            "--steps",
            "2",
            "--output-dir",
            str(out),
            "--no-progress",
            "--record",
            str(tmp_path / "rec"),
            "--record-every",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "metrics.csv").is_file() and (out / "training_curve.png").is_file()
    assert (out / "checkpoint-000001" / "model" / "config.json").is_file()
    assert any((out / "tensorboard").iterdir())
    assert json.loads((out / "config.json").read_text())["model"] == "tiny-vocab"
    recorded = sorted((tmp_path / "rec" / "rank0").glob("env*.jsonl"))
    assert len(recorded) == 16  # step 0 only (every 2nd step): 2 tasks x 8 rollouts
    from agemem_gym.wrappers import read_episode

    assert read_episode(recorded[0]).steps
    # the repro: another setting in the same folder is refused in one line, config.json untouched
    cli = [sys.executable, "-m", "agemem_gym", "train", "--config", "cpu-smoke", "--no-progress"]
    proc = subprocess.run([*cli, "--output-dir", str(out), "--seed", "1"], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "seed: 0 -> 1" in proc.stderr
    assert json.loads((out / "config.json").read_text())["seed"] == 0
    # recording into a used folder names the flag that allows it
    rec = ["--record", str(tmp_path / "rec"), "--record-every", "2"]
    proc = subprocess.run([*cli, "--output-dir", str(tmp_path / "other"), *rec], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "--overwrite" in proc.stderr
    # agemem view opens what train --record wrote (rank subfolders)
    page = tmp_path / "view.html"
    proc = subprocess.run(
        [sys.executable, "-m", "agemem_gym", "view", str(tmp_path / "rec"), "--out", str(page)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and page.is_file(), proc.stderr
    # --resume continues from the checkpoint, says so, and numbers its recordings by step
    proc = subprocess.run(
        [*cli, "--output-dir", str(out), "--steps", "3", "--resume", *rec], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"resuming from {out} at step 2" in proc.stdout
    assert len((out / "metrics.csv").read_text().splitlines()) == 4
    assert len(list((tmp_path / "rec" / "rank0").glob("env*-00002-*.jsonl"))) == 16
    assert json.loads((out / "config.json").read_text())["num_steps"] == 3


def test_two_processes_with_torchrun_and_gloo(tmp_path):
    """The launch line the README gives: ``accelerate launch --cpu`` runs ONE process (without MPI)."""
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun is not on PATH")
    out = tmp_path / "ddp"
    cmd = ["torchrun", "--nproc_per_node", "2", "-m", "agemem_gym.adapters.grpo", "--config", "cpu-smoke"]
    cmd += ["--steps", "2", "--output-dir", str(out), "--no-progress", "--record", str(tmp_path / "rec")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    # the trainer raises if the two replicas' weights diverge, so exit 0 means they stayed equal
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["rank0", "rank1"]  # two processes ran
    assert proc.stdout.count("run folder:") == 1  # the main process reports; rank 1 has nothing to say
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3
    header = rows[0].split(",")
    last = dict(zip(header, map(float, rows[2].split(","))))
    assert float(rows[1].split(",")[header.index("perf/samples")]) > 0
    assert last["losses/kl"] > 0 and np.isfinite(last["losses/policy"])  # after one update, over both ranks


def test_update_metrics_are_reduced_over_ranks(monkeypatch):
    """Token-weighted means of every rank's sums, not rank 0's alone (here: another rank with 3x the sums)."""
    from agemem_gym.adapters.grpo import distributed as D
    from agemem_gym.adapters.grpo import update as U

    monkeypatch.setattr(D, "world", lambda: (0, 2))
    monkeypatch.setattr(D, "all_sum_many", lambda values: [4.0 * v for v in values])
    sums = {"loss": 0.5, "kl": 2.0, "clipped": 1.0, "entropy": 3.0, "tokens": 10.0, "grad_norm": 0.4, "padding": 0.2}
    means = U._update_means(sums, n_updates=1)
    assert means["losses/policy"] == 2.0  # the ranks' shares add up to the minibatch loss
    assert means["losses/kl"] == pytest.approx(8.0 / 40.0) and means["losses/clipfrac"] == pytest.approx(0.1)
    assert means["losses/grad_norm"] == 0.4  # already global (taken after the gradient sum)
    assert means["perf/padding"] == pytest.approx(0.4)  # mean over the 2 ranks


def test_summary_prints_no_nan_and_the_plot_is_labelled():
    import math

    import matplotlib

    from agemem_gym.adapters.grpo.metrics import training_figure
    from agemem_gym.commands.train import summary_line

    matplotlib.use("Agg")
    line = summary_line({"step": 1.0, "reward/mean": 0.5, "losses/kl": math.nan})
    assert json.loads(line) == {"step": 1.0, "reward/mean": 0.5, "losses/kl": "n/a"} and "NaN" not in line
    rows = [{"step": float(i), "reward/mean": 0.1, "losses/kl": kl} for i, kl in enumerate([math.nan, 0.2, math.nan])]
    fig = training_figure(rows)
    assert all(ax.get_ylabel() for ax in fig.axes)
    kl_line = fig.axes[2].get_lines()[0]
    assert kl_line.get_marker() == "o"  # the isolated step-1 KL shows as a point


def test_config_presets_toml_and_validation(tmp_path):
    assert load_config("paper").group_size == 8 and load_config("paper").kl_beta == 0.1
    assert load_config("paper").clip == 0.2 and load_config("paper").lora_rank == 32
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "cpu-smoke"\nnum_steps = 3\nclip = 0.1\n[env_kwargs]\nmax_rounds = 4\n')
    cfg = load_config(toml, seed=9)
    assert (cfg.num_steps, cfg.clip, cfg.seed, cfg.model) == (3, 0.1, 9, "tiny-vocab")
    assert cfg.env_kwargs["max_rounds"] == 4 and cfg.env_kwargs["num_tasks"] == 2
    with pytest.raises(UnknownName, match="Did you mean 'paper'"):
        load_config("papr")
    toml.write_text("num_stepz = 3\n")
    with pytest.raises(UnknownName, match="num_steps"):
        load_config(toml)
    toml.write_text("num_steps = \n")
    with pytest.raises(InvalidConfig, match="TOML"):
        load_config(toml)
    with pytest.raises(InvalidConfig, match="group_size"):
        GRPOConfig(group_size=1)


def test_curriculum_schedule():
    cfg = GRPOConfig(stage2_warmup_steps=2, distractor_ramp_steps=4)
    assert [distractors_at(s, cfg, 5) for s in range(8)] == [0, 0, 1, 2, 3, 4, 5, 5]
    assert [distractors_at(s, GRPOConfig(), 5) for s in range(2)] == [5, 5]


def test_every_step_gets_its_trajectory_group_advantage():
    # 2 groups of K=2; trajectory t owns the samples whose .traj is t (turns interleaved, as collected)
    rewards = [1.0, 0.0, 3.0, 3.0]
    samples = [Sample([1], [2], traj=t) for t in (0, 1, 2, 3, 0, 1, 0)]
    owned = [[i for i, s in enumerate(samples) if s.traj == t] for t in range(4)]
    trajs = [
        Trajectory(group=t // 2, task_id=t // 2, reward=r, info={}, samples=owned[t]) for t, r in enumerate(rewards)
    ]
    batch = RolloutBatch(samples, trajs, 2, [[] for _ in samples], 0, 0.0)
    _attach_advantages(batch, GRPOConfig(group_size=2))
    a = 1 / (2**0.5 + 1e-6)  # (r - mean) / (sample std + eps) = 0.5 / 0.7071...
    expected = {0: a, 1: -a, 2: 0.0, 3: 0.0}
    assert [s.advantage for s in samples] == pytest.approx([expected[s.traj] for s in samples])


def test_a_group_with_a_rollout_lost_by_an_env_worker_gets_zero_advantage():
    # group 0 lost trajectory 1 to a dead worker (reward 0 is not a real reward); group 1 is whole
    rewards = [1.0, 0.0, 3.0, 2.0]
    infos = [{}, {"worker_error": "actor died twice"}, {}, {}]
    samples = [Sample([1], [2], traj=t) for t in range(4)]
    trajs = [
        Trajectory(group=t // 2, task_id=t // 2, reward=r, info=infos[t], samples=[t]) for t, r in enumerate(rewards)
    ]
    batch = RolloutBatch(samples, trajs, 2, [[] for _ in samples], 0, 0.0)
    _attach_advantages(batch, GRPOConfig(group_size=2))
    a = 1 / (2**0.5 + 1e-6)
    assert [s.advantage for s in samples] == pytest.approx([0.0, 0.0, a, -a])


@pytest.mark.parametrize("aggregation", ["token-mean", "sequence-mean"])
def test_micro_batches_add_up_to_the_minibatch_update(aggregation):
    """Splitting a minibatch into rows and micro-batches must not change the gradient."""
    from agemem_gym.policies.llm.models import load_model

    def run(row_tokens, rows_per_micro_batch):
        model, tok = load_model("tiny-vocab", seed=0)
        rng = np.random.default_rng(0)
        samples = []
        for t in range(6):
            prompt = rng.integers(5, len(tok), int(rng.integers(4, 12))).tolist()
            response = rng.integers(5, len(tok), int(rng.integers(1, 6))).tolist()
            samples.append(Sample(prompt, response, traj=t, advantage=float(rng.normal())))
        config = GRPOConfig(
            row_tokens=row_tokens,
            rows_per_micro_batch=rows_per_micro_batch,
            loss_aggregation=aggregation,
            temperature=1.0,
            kl_beta=0.1,
            max_grad_norm=0.0,
            lora_rank=0,
        )
        old = score_logprobs(model, samples, config, tok.pad_token_id)
        for s, o in zip(samples, old):
            s.old_logprobs, s.ref_logprobs = o, o + 0.05
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        before = [p.detach().clone() for p in model.parameters()]
        stats = update_policy(model, optimizer, samples, config, tok.pad_token_id, rng, nullcontext)
        steps = [p.detach() - b for p, b in zip(model.parameters(), before)]  # = -gradient
        return stats, steps

    one_row, split = run(4096, 8), run(24, 1)  # all samples in one forward pass vs one short row per pass
    assert split[0]["perf/padding"] >= 0.0
    for key in ("losses/policy", "losses/kl"):
        assert split[0][key] == pytest.approx(one_row[0][key], rel=1e-5, abs=1e-7), key
    for a, b in zip(one_row[1], split[1]):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
