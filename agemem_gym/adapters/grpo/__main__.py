"""``python -m agemem_gym.adapters.grpo [--config ...]``: the bundled training script."""

from agemem_gym.cli import main

raise SystemExit(main(["train", *__import__("sys").argv[1:]]))
