"""The ``lsnotes`` command: one sub-command per task, each defined next to the code it runs.

Every module listed in :data:`COMMAND_MODULES` provides ``add_cli(subparsers)``, which adds its
sub-commands and sets ``func`` (called with the parsed arguments; returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ("lsnotes.train", "lsnotes.evaluate", "lsnotes.audit", "lsnotes.runbook")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lsnotes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # that part of the package is not written yet
                continue
            raise
        module.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as err:  # bad input: one clear line, no traceback
        print(f"lsnotes {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
