"""Subcommands of the ``agemem`` command, one module each.

A command module defines ``HELP`` (one line), ``configure(parser)`` (adds its arguments;
keep imports there light) and ``main(args) -> int`` (does the work; import heavy
dependencies inside it). Add a command by adding its module to :data:`COMMANDS`.
"""

COMMANDS: dict[str, str] = {
    "list": "agemem_gym.commands.list_envs",
    "run": "agemem_gym.commands.run",
    "view": "agemem_gym.commands.view",
    "train": "agemem_gym.commands.train",
    "sft": "agemem_gym.commands.sft",
    "eval": "agemem_gym.commands.eval",
}
