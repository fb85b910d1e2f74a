"""Exercises a reader can check: ``check("<chapter>-<topic>", answer)``.

Every checkable exercise of the book has a checker here, one module per chapter; ``EXERCISES``
maps each label to it. See :mod:`lsnotes.exercises.core` for what a checker does with an answer.
"""

from __future__ import annotations

from . import (adversarial_ls, classic_attacks, evaluation_checklist, gradient_masking,  # noqa: F401
               logit_squeezing, soft_labels_at, toy_problem, training_with_ls, unified_framework)
from .core import EXERCISES, CaseFailed, Exercise, NotAttempted, check, passes, record_path

__all__ = ["EXERCISES", "CaseFailed", "Exercise", "NotAttempted", "check", "passes",
           "record_path", "add_cli"]


def add_cli(subparsers) -> None:
    """``lsnotes exercises``: every checkable exercise, by chapter, and which ones you passed."""
    parser = subparsers.add_parser("exercises", help="list the book's exercises and your passes")
    parser.add_argument("--chapter", default=None, help="only this chapter's exercises")
    parser.set_defaults(func=_list_exercises)


def _list_exercises(args) -> int:
    chapters = sorted({ex.chapter for ex in EXERCISES.values()})
    if args.chapter is not None and args.chapter not in chapters:
        raise ValueError(f"chapter must be one of {chapters}; got {args.chapter!r}")
    done = passes()
    for ex in EXERCISES.values():
        if args.chapter in (None, ex.chapter):
            print(f"[{'x' if ex.label in done else ' '}] {ex.label:40s} {ex.summary}")
    print(f"passed {len(done)} of {len(EXERCISES)} (recorded in {record_path()})")
    return 0
