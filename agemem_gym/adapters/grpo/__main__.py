"""``python -m agemem_gym.adapters.grpo [--config ...]``: the bundled training script."""

import sys

from agemem_gym.cli import main

raise SystemExit(main(["train", *sys.argv[1:]]))
