"""The ``lsnotes`` command: one sub-command per task, each defined next to the code it runs.

Every module listed in :data:`COMMAND_MODULES` provides ``add_cli(subparsers)``, which adds its
sub-commands and sets ``func`` (called with the parsed arguments; returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ("lsnotes.train", "lsnotes.robustness.evaluate", "lsnotes.robustness.cli",
                   "lsnotes.runbook", "lsnotes.zoo.cli", "lsnotes.exercises")

#: What a user can cause and fix (a bad option, a dataset not downloaded, a read-only cache):
#: one line on stderr and exit status 2, as argparse does for its own errors.
USER_ERRORS = (ValueError, FileNotFoundError, PermissionError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lsnotes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as err:  # bad input: one clear line, no traceback
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"lsnotes {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
