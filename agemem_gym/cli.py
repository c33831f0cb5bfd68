"""The ``agemem`` command: list environments, run policies.

agemem list
agemem run AgeMem/HotpotQA-v0 --policy oracle --episodes 20 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _json_arg(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"num_distractors\": 3}'")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agemem", description="agemem-gym: memory-managing LLM agents.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered environment ids and policies")
    run = sub.add_parser("run", help="run a policy on an environment and print the paper's metrics")
    run.add_argument("env_id", help="e.g. AgeMem/HotpotQA-v0")
    run.add_argument("--policy", default="oracle", help="policy name (agemem list shows them)")
    run.add_argument("--policy-kwargs", type=_json_arg, default={}, help="JSON object for the policy")
    run.add_argument("--episodes", type=int, default=20)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--env-kwargs", type=_json_arg, default={}, help="JSON object passed to gym.make")
    run.add_argument("--json", dest="json_out", default=None, help="write the summary and episodes as JSON")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _cmd_list() -> int:
    from agemem_gym import env_ids, policies

    print("environments:")
    for env_id in env_ids():
        print(f"  {env_id}")
    print("policies:")
    for name in policies.names():
        print(f"  {name}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import dataclasses

    from agemem_gym import policies
    from agemem_gym.evaluation import format_summary, run_episodes, summarize

    policy = policies.make(args.policy, **args.policy_kwargs)
    results = run_episodes(
        args.env_id,
        policy,
        episodes=args.episodes,
        seed=args.seed,
        env_kwargs=args.env_kwargs,
        progress=not args.no_progress,
    )
    summary = summarize(results)
    print(f"## {args.env_id} — policy {args.policy}, {args.episodes} episodes, seed {args.seed}\n")
    print(format_summary({args.policy: summary}))
    if args.json_out:
        path = Path(args.json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "env_id": args.env_id,
            "policy": args.policy,
            "seed": args.seed,
            "env_kwargs": args.env_kwargs,
            "summary": summary,
            "episodes": [dataclasses.asdict(r) for r in results],
        }
        path.write_text(json.dumps(payload, indent=2))
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agemem`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    from agemem_gym.error import Error

    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "run":
            return _cmd_run(args)
    except Error as exc:  # a bad name, path or argument: say what is wrong, no traceback
        print(f"agemem: error: {exc}", file=sys.stderr)
        return 2
    return 1  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":
    raise SystemExit(main())
