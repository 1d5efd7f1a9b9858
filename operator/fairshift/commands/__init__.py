"""Subcommands of the ``fairshift`` CLI, one module each with ``register(subparsers)``."""
