"""Proof of learning: warm start → step-wise GRPO → held-out panel, with an lr-0 control and an LTM-wiped ablation.

Per seed, a pipeline of stages, each writing into ``OUT/seed<N>/`` and skipped on ``--resume``
once its output is complete:

1. ``warm``: a deliberately partial behaviour clone (``agemem sft``'s ``run_sft``): ``--warm-steps``
   LoRA steps on the ``demonstrator``'s turns, a ``--warm-mix`` share of the training tasks played
   by ``no-memory`` instead (a full clone saturates the held-out score and leaves GRPO nothing to
   learn; the base model gets no reward signal at all). Output: ``warm/`` (a merged model folder
   with ``sft.json``: demonstrations, steps, losses).
2. ``trained`` and ``control``: GRPO from the warm start with the preset (``learning-probe``: K = 8,
   4 tasks per step, LoRA, the default reward; ``--reward answer_only`` for the task score alone;
   24 steps unless ``--steps`` says otherwise),
   and the same run at learning rate 0 (the same sampling: what the curves do without learning).
   The trainer resumes from its newest checkpoint, so a stopped run continues.
3. evaluations on the held-out panel (Probe-Recall tasks 48-63 of ``num_tasks=64``, objects never
   seen in training, eight colours so a guess scores 0.125; ``--eval-reps`` fixed sampling seeds per
   task: 64 episodes per model): ``eval-warm.json``, ``eval-control.json``, ``eval-trained.json``
   and the **LTM-wiped** panels ``eval-control-wiped.json``, ``eval-trained-wiped.json`` (the
   long-term memory emptied as Stage 3 begins, :class:`~agemem_gym.wrappers.WipeMemoryBeforeStage3`:
   a gain that comes from memory use must vanish there).

``--deadline-min`` stops cleanly: at the budget the running stages get SIGINT (a training run
stops after its last complete step with a checkpoint; a warm start or evaluation is dropped and
redone), nothing new starts, and ``--resume`` later continues where it stopped. Each seed runs
alone (``--seeds 1``), so a study can be spread over several invocations into one ``--out``; the
report merges every ``seed<N>/`` folder there: ``summary.md`` / ``summary.json`` (per seed and
mean ± 95% CI over seeds (Student t) of trained − control, the warm start, the wiped scores,
Stage-1 ``Add_memory`` and Stage-3 ``Retrieve_memory`` rates, the pass criteria PASS/FAIL, the
tool-call shift by stage (the paper's Table 3), the measured stage times) and ``curves.png``
(task score, tool calls, reward components against the step; trained solid, control dotted).

    # 2-core CPU, one seed per sitting; repeat with --resume until its stages are complete
    # (measured on 2 shared cores: warm start 5.8 min, a 16-episode panel 1.4 min, a GRPO step > 3.3 min)
    python benchmarks/learning.py --seeds 0 --jobs 1 --deadline-min 55 --out runs/learning
    python benchmarks/learning.py --seeds 0 --jobs 1 --deadline-min 55 --out runs/learning --resume
    python benchmarks/learning.py --seeds 1 --jobs 1 --deadline-min 55 --out runs/learning   # and 2
    python benchmarks/learning.py summary --out runs/learning                # the merged report
    # one GPU, three seeds at once (ten minutes)
    python benchmarks/learning.py --seeds 0 1 2 --jobs 6 --out runs/learning
    # pipeline check on CPU with a tiny model (~2 min)
    python benchmarks/learning.py --preset cpu-smoke --seeds 0 --steps 2 --warm-steps 2 --eval-reps 1 --out /tmp/l

``--compare credit`` compares the two credit modes at the same cost instead (code in
``learning_credit.py``): per seed, a ``trajectory`` and a ``memory-state`` run (``--set
fork_continuations=2 --set credit_weight=0.5`` by default; other ``--set`` fields apply to both)
that each stop once they have generated ``--token-budget`` tokens (``generated_token_budget``;
``--steps`` is then only a cap, 1000 by default), a shared learning-rate-0 control per seed with
``--with-control``; both arms' final checkpoints on the held-out panel, the difference
memory-state − trajectory per seed and over seeds, and ``curves-credit.png`` (task score and
reward against the generated tokens):

    python benchmarks/learning.py --compare credit --seeds 0 1 2 --jobs 6 --token-budget N --out runs/credit
    python benchmarks/learning.py --compare credit --preset cpu-smoke --seeds 0 1 --token-budget 3000 \
        --eval-reps 1 --jobs 2 --out /tmp/credit                                        # CPU check, ~3 min

Choose N as the generated tokens of K trajectory steps: ``perf/generated_tokens_total`` of a
trajectory run's metrics.csv at step K − 1 (K = 40: the ``learning-probe`` preset's steps);
memory-state credit spends about ``1 + (M − 1)·f`` times as many per step (f: the share after the
fork), so it reaches N in fewer steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HELD_OUT = {
    "AgeMem/Probe-Recall-v0": (64, range(48, 64)),
    # The first 48 dev-sample records train (``num_tasks=48`` loads only those); the next 16 are held out.
    "AgeMem/HotpotQA-v0": (64, range(48, 64)),
}
"""Held-out panels: env id → (``num_tasks`` of the eval env, task ids never trained on)."""


# ============================================================================ one run (a subprocess)
def _config(args: argparse.Namespace, seed: int, learning_rate: float | None, folder: Path) -> Any:
    from agemem_gym.adapters.grpo.config import PRESETS, load_config

    changes: dict[str, Any] = {k: json.loads(v) if _is_json(v) else v for k, v in (s.split("=", 1) for s in args.set)}
    if args.steps:
        changes["num_steps"] = args.steps
    if learning_rate is not None:
        changes["learning_rate"] = learning_rate
    if getattr(args, "tool_schemas", None) or getattr(args, "reward", None):
        base = PRESETS[args.preset]().env_kwargs if args.preset in PRESETS else {}
        kwargs = dict(changes.get("env_kwargs", base))
        if args.tool_schemas:  # the pipeline drops the six JSON schemas: 424 prompt tokens, not 1,036 (SmolLM2)
            kwargs["tools_in_system_prompt"] = args.tool_schemas == "keep"
        if args.reward:
            kwargs["reward"] = args.reward
        changes["env_kwargs"] = kwargs
    fresh = not getattr(args, "continue_run", False)  # pipeline runs continue from their checkpoints
    return load_config(args.preset, seed=seed, output_dir=str(folder), overwrite=fresh, tensorboard=False, **changes)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def train_one(args: argparse.Namespace) -> int:
    """Train one run; SIGINT (the deadline) ends it after a checkpoint of its last complete step."""
    from agemem_gym.adapters.grpo import train
    from agemem_gym.adapters.grpo.interrupt import TrainingInterrupted

    config = _config(args, args.seed, args.lr, Path(args.folder))
    try:
        train(config, progress=False)
    except TrainingInterrupted as stop:
        print(f"stopped at the deadline after step {stop.step}", flush=True)
    return 0


def warm_one(args: argparse.Namespace) -> int:
    """The warm start: a partial behaviour clone of the run's model in the run's prompts, written to ``--folder``."""
    from agemem_gym.adapters.sft.train import SFTConfig, run_sft

    config = _config(args, args.seed, None, Path(args.folder))
    mix = args.warm_mix
    sft = SFTConfig(
        model=config.model, env_id=config.env_id, env_kwargs=dict(config.env_kwargs),
        mix_policy="no-memory" if mix > 0 else "", mix_fraction=mix, num_steps=args.warm_steps,
        learning_rate=args.warm_lr, lora_rank=config.lora_rank, lora_alpha=config.lora_alpha,  # the run's LoRA
        seed=args.seed, output_dir=args.folder, overwrite=True, torch_threads=config.torch_threads,
        gradient_checkpointing=False,  # a step's eight short turns fit easily; no recompute
    )  # fmt: skip
    result = run_sft(sft, on_step=lambda step, loss: print(f"warm step {step + 1}: loss {loss:.4f}", flush=True))
    print(f"warm start: {result.turns} turns from {result.episodes} episodes, {args.warm_steps} steps", flush=True)
    return 0


def eval_one(args: argparse.Namespace) -> int:
    """Play the held-out panel with one model (``--wipe``: LTM emptied before Stage 3); one JSON record per episode."""
    import gymnasium as gym
    import torch

    import agemem_gym  # noqa: F401 - registers the ids
    from agemem_gym.policies.llm.hf_policy import HFPolicy
    from agemem_gym.policies.llm.models import load_model
    from agemem_gym.runner import play_episodes
    from agemem_gym.vector import make_slot_envs
    from agemem_gym.wrappers import ToolCallsByStage, WipeMemoryBeforeStage3

    config = _config(args, args.seed, None, Path(args.folder))
    num_tasks, tasks = HELD_OUT[config.env_id]
    model, tok = load_model(args.model)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    policy = HFPolicy(
        model, tok, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
        constrained=config.constrained, batch_size=args.eval_batch, seed=args.eval_seed,
    )  # fmt: skip
    kwargs = {**config.env_kwargs, "num_tasks": num_tasks, "tokenizer": tok}
    plan = [(t, 100_000 + 1_000 * r + t) for r in range(args.eval_reps) for t in tasks]

    def make() -> Any:
        env = gym.make(config.env_id, **kwargs)
        return ToolCallsByStage(WipeMemoryBeforeStage3(env) if args.wipe else env)

    envs = make_slot_envs(make, min(len(plan), args.eval_batch))
    ends = play_episodes(envs, plan, lambda _s, obs, infos: policy.act_batch(list(obs), list(infos)))
    envs.close()
    rows = [_episode_row(plan[e.index], e) for e in ends]
    path = Path(args.json)  # written whole or not at all: a stopped evaluation leaves no file to mistake for done
    path.with_suffix(".part").write_text(json.dumps({"model": args.model, "wiped": args.wipe, "episodes": rows}))
    os.replace(path.with_suffix(".part"), path)
    return 0


def _episode_row(planned: tuple[int, int], end: Any) -> dict[str, Any]:
    info = end.info if end.finished else {}
    return {
        "task": planned[0],
        "seed": planned[1],
        "score": float(info.get("task_score") or 0.0),
        "reward": float(end.episode_return),
        "answered": info.get("task_score") is not None,
        "memory_quality": info.get("memory_quality"),  # whether what was stored holds the fact
        "tools_by_stage": {
            str(k): {t: int(n) for t, n in v.items() if int(n)} for k, v in info.get("tool_calls_by_stage", {}).items()
        },
    }


# ============================================================================ the driver
def _launch(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as fh:
        return subprocess.Popen([sys.executable, __file__, *argv], stdout=fh, stderr=subprocess.STDOUT, env=env)


def _run_all(jobs: list[tuple[list[str], Path]], parallel: int, deadline: float | None) -> list[int]:
    """Run ``jobs`` (argv, log) ``parallel`` at a time; at ``deadline`` send the running ones SIGINT."""
    pending, running, codes = list(jobs), [], []
    interrupted = False
    while pending or running:
        while pending and len(running) < parallel and not interrupted:
            running.append(_launch(*pending.pop(0)))
        if deadline is not None and time.time() > deadline and not interrupted:
            interrupted = True
            pending.clear()  # runs not yet started are skipped
            for proc in running:
                proc.send_signal(signal.SIGINT)
        for proc in [p for p in running if p.poll() is not None]:
            running.remove(proc)
            codes.append(int(proc.returncode))
        time.sleep(1.0)
    return codes


def _common_args(args: argparse.Namespace) -> list[str]:
    out = ["--preset", args.preset, *[x for s in args.set for x in ("--set", s)]]
    return out + (["--steps", str(args.steps)] if args.steps else [])


def eval_jobs_for(args: argparse.Namespace, out: Path, runs: Mapping[str, Path]) -> list[tuple[list[str], Path]]:
    """Held-out evaluations of the untrained model and of each run's (name → folder) last checkpoint."""
    from agemem_gym.adapters.grpo.checkpoint import latest_checkpoint

    base = _config(args, args.seeds[0], None, out / "unused").model
    models = {"untrained": base}
    for name, folder in runs.items():
        ckpt = latest_checkpoint(folder)
        if ckpt is not None:
            models[name] = str(ckpt / "model")
    extra = ["--eval-reps", str(args.eval_reps), "--eval-batch", str(args.eval_batch)]
    return [
        (
            ["eval", *_common_args(args), "--model", m, "--json", str(out / f"eval-{n}.json"), *extra],
            out / f"eval-{n}.log",
        )
        for n, m in models.items()
    ]


def drive(args: argparse.Namespace) -> int:
    """The per-seed pipelines (``learning_stages.py``), then the merged report."""
    import learning_stages

    return learning_stages.drive(args)


def prepare_model(args: argparse.Namespace, out: Path) -> Any:
    """The first seed's config; SmolLM2's GGUF converted once, before parallel runs race to do it."""
    config = _config(args, args.seeds[0], None, out / "unused")
    if config.model == "smollm2":
        from agemem_gym.policies.llm.models import smollm2_path

        smollm2_path()
    return config


# ============================================================================ the report
def _mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% interval."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / max(1, n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def _read_csv(path: Path) -> list[dict[str, float]]:
    import csv

    if not path.is_file():
        return []
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _tool_means(episodes: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean calls per episode of each ``stage/tool`` pair."""
    totals: dict[str, float] = {}
    for ep in episodes:
        for stage, tools in ep["tools_by_stage"].items():
            for tool, n in tools.items():
                totals[f"S{stage} {tool}"] = totals.get(f"S{stage} {tool}", 0.0) + n
    return {k: v / max(1, len(episodes)) for k, v in sorted(totals.items())}


def _last(rows: Sequence[Mapping[str, float]], key: str, k: int = 5) -> float:
    vals = [r[key] for r in rows[-k:] if key in r and not math.isnan(r[key])]
    return sum(vals) / len(vals) if vals else float("nan")


# ============================================================================ command line
def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (the driver's options, then the internal ones of a single stage)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="drive", choices=("drive", "warm", "train", "eval", "summary"))
    parser.add_argument("--preset", default="learning-probe")
    parser.add_argument("--set", action="append", default=[], help="a config field, e.g. --set learning_rate=5e-5")
    parser.add_argument("--steps", type=int, default=0, help="GRPO steps (default: 24; --compare: see above)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (summary: all in --out)")
    parser.add_argument("--jobs", type=int, default=1, help="stages at a time")
    parser.add_argument("--deadline-min", type=float, default=0.0, help="stop everything after this many minutes")
    parser.add_argument("--resume", action="store_true", help="continue the seeds in --out, skipping finished stages")
    parser.add_argument("--warm-steps", type=int, default=16, help="warm-start LoRA steps (default 16)")
    parser.add_argument("--warm-lr", type=float, default=1e-3, help="warm-start learning rate (default 1e-3)")
    parser.add_argument(
        "--warm-mix", type=float, default=0.5, help="share of warm-start tasks played by no-memory (default 0.5)"
    )
    parser.add_argument(
        "--tool-schemas", choices=("keep", "drop"), default=None,
        help="tool JSON schemas in the system prompt (the pipeline's default: drop)",
    )  # fmt: skip
    parser.add_argument("--reward", default=None, help="the env's reward preset, e.g. answer_only (default: the env's)")
    parser.add_argument("--eval-reps", type=int, default=4, help="episodes per held-out task")
    parser.add_argument("--eval-batch", type=int, default=64, help="episodes played at once in evaluation")
    parser.add_argument("--eval-seed", type=int, default=1234, help="sampling seed of every evaluation")
    parser.add_argument("--out", default="runs/learning")
    parser.add_argument("--compare", choices=("credit",), default=None, help="compare credit modes (see above)")
    parser.add_argument("--token-budget", type=int, default=0, help="--compare: generated tokens per run")
    parser.add_argument("--with-control", action="store_true", help="--compare: a learning-rate-0 run per seed")
    # one stage (internal)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--folder", default="")
    parser.add_argument("--model", default="")
    parser.add_argument("--json", default="")
    parser.add_argument("--wipe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--continue-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compare and args.mode == "drive" and args.token_budget <= 0:
        parser.error(
            "--compare credit needs --token-budget N (> 0): both arms stop at the same number of generated "
            "tokens; N = perf/generated_tokens_total of a trajectory run after K steps"
        )
    if args.seeds is None and (args.compare or args.mode != "summary"):
        args.seeds = [0, 1, 2]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the mode the command line names."""
    args = parse(argv)
    if args.compare and args.mode in ("drive", "summary"):
        import learning_credit

        return learning_credit.compare(args)
    if args.mode == "warm":
        return warm_one(args)
    if args.mode == "train":
        return train_one(args)
    if args.mode == "eval":
        args.folder = args.folder or "/tmp/agemem-learning-eval"
        return eval_one(args)
    if args.mode == "summary":
        import learning_report

        learning_report.write(Path(args.out), args.seeds)
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
