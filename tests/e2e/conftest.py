"""The CLI fixtures of ``test_cli.py`` (``bare_cli``, ``cli``) for every end-to-end test."""

from tests.e2e.test_cli import bare_cli, cli

__all__ = ["bare_cli", "cli"]
