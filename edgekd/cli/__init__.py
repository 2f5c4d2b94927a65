"""The ``edgekd`` command: parses arguments, calls one library function, maps errors to exit codes."""

from edgekd.cli.app import app, main

__all__ = ["app", "main"]
