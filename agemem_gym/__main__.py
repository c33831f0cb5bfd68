"""``python -m agemem_gym`` runs the ``agemem`` command."""

from agemem_gym.cli import main

raise SystemExit(main())
