"""``agemem run``: play a policy on an environment and print the paper's metrics."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from agemem_gym.commands._args import (
    ENV_KWARGS,
    POLICY_KWARGS_HELP,
    check_env_id,
    check_env_kwargs,
    check_model_option,
    json_object,
    non_negative_int,
    policy_kwargs_by_name,
)
from agemem_gym.commands._outputs import check_output_dir, check_output_file, recordings_in

HELP = "run a policy on an environment and print the paper's metrics"


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agemem run``."""
    parser.add_argument("env_id", help="e.g. AgeMem/HotpotQA-v0")
    parser.add_argument("--policy", default="oracle", help="policy name (agemem list shows them)")
    parser.add_argument("--policy-kwargs", type=json_object('{"top_k": 3}'), default={}, help=POLICY_KWARGS_HELP)
    parser.add_argument(
        "--model",
        default=None,
        help="for policies that run a chat model (hf, mem0-style, ...): smollm2, tiny or a local model folder",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="for --policy openai:MODEL: the OpenAI-compatible endpoint ($OPENAI_BASE_URL; key from $OPENAI_API_KEY)",
    )
    parser.add_argument("--episodes", type=int, default=20, help="number of episodes to play (default 20)")
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="episode i is seeded with seed + i (default 0)"
    )
    parser.add_argument("--env-kwargs", type=json_object(ENV_KWARGS), default={}, help="JSON object passed to gym.make")
    parser.add_argument("--json", dest="json_out", default=None, help="write the summary and episodes as JSON")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--record", metavar="DIR", default=None, help="write each episode as JSON Lines into DIR (see agemem view)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --json file and the recordings in --record DIR"
    )


def main(args: argparse.Namespace) -> int:
    """Run the episodes, print the tables, optionally write JSON."""
    from agemem_gym import policies
    from agemem_gym.evaluation import format_summary, run_episodes, summarize

    policy_kwargs = _check(args)
    if args.record and args.overwrite:
        for path in recordings_in(args.record):
            path.unlink()
    policy = policies.make(args.policy, **policy_kwargs)
    results = run_episodes(
        args.env_id,
        policy,
        episodes=args.episodes,
        seed=args.seed,
        env_kwargs=args.env_kwargs,
        progress=not args.no_progress,
        record=args.record,
    )
    summary = summarize(results)
    if args.json_out:  # first: a closed stdout (`| head`) must not lose the results
        payload = {
            "env_id": args.env_id,
            "policy": args.policy,
            "seed": args.seed,
            "env_kwargs": args.env_kwargs,
            "summary": summary,
            "episodes": [dataclasses.asdict(r) for r in results],
        }
        path = Path(args.json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2))
    print(f"## {args.env_id} — policy {args.policy}, {args.episodes} episodes, seed {args.seed}\n")
    print(format_summary({args.policy: summary}))
    if args.json_out:
        print(f"wrote {args.json_out}")
    if args.record:
        print(f"recorded {args.episodes} episodes in {args.record}; view them with: agemem view {args.record}")
    return 0


def _check(args: argparse.Namespace) -> dict[str, object]:
    """Validate the arguments before any model loads; returns the policy's keyword arguments."""
    import gymnasium as gym

    from agemem_gym import policies
    from agemem_gym.error import InvalidConfig

    if args.episodes < 1:
        raise InvalidConfig(f"--episodes must be >= 1, got {args.episodes}")
    check_env_id(args.env_id)
    check_env_kwargs(args.env_kwargs, [args.env_id])
    check_model_option(args.model, [args.policy])
    _check_outputs(args)
    policy_kwargs = policy_kwargs_by_name(args.policy_kwargs, [args.policy])[args.policy]
    if args.model is not None:
        policy_kwargs["model"] = args.model
    if args.base_url is not None:
        if "base_url" not in policies.arguments(args.policy):
            raise InvalidConfig(f"--base-url applies to openai:MODEL policies, not {args.policy!r}")
        policy_kwargs["base_url"] = args.base_url
    policies.check_arguments(args.policy, policy_kwargs)
    gym.make(args.env_id, **args.env_kwargs).close()  # env-specific arguments too, before the model loads
    return policy_kwargs


def _check_outputs(args: argparse.Namespace) -> None:
    """``--json`` and ``--record`` can be written and replace nothing unasked, before any episode."""
    from agemem_gym.error import InvalidConfig

    if args.json_out:
        check_output_file(args.json_out, "--json", overwrite=args.overwrite)
    if args.record:
        check_output_dir(args.record, "--record")
        if recordings_in(args.record) and not args.overwrite:
            raise InvalidConfig(
                f"--record folder {args.record} already holds recordings; record into a new folder, "
                "or pass --overwrite to replace them"
            )
