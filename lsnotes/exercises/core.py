"""The exercise checker: ``check(label, answer)`` runs hidden cases and prints one short result.

A checker (one per checkable exercise, registered with :func:`exercise` in the chapter's module)
receives the reader's answer and raises :class:`CaseFailed` with the case's name and a hint
written for the most likely mistake. It never shows the reference answer: a reader who wants it
opens the collapsed solution under the exercise in the book.

A stub answer (``...``, ``None``, a function that raises ``NotImplementedError`` or returns
``...``/``None``) is *not attempted*, reported in one line, never as a traceback. So is an
exception raised inside the reader's function: it becomes the failing case, with its message.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

KINDS = ("function", "sympy", "number")


class CaseFailed(Exception):
    """One hidden case failed; ``hint`` says what is probably wrong."""

    def __init__(self, case: str, hint: str):
        super().__init__(f"{case}: {hint}")
        self.case, self.hint = case, hint


class NotAttempted(Exception):
    """The answer is still the stub."""


@dataclass(frozen=True)
class Exercise:
    """A checkable exercise: its label, the kind of answer and the function that checks it."""

    label: str
    kind: str
    summary: str
    checker: Callable[[Any], int]

    @property
    def chapter(self) -> str:
        return self.label.split("-", 1)[0]

    def __call__(self, answer) -> int:
        """Run the hidden cases; return how many ran. Raises CaseFailed or NotAttempted."""
        return self.checker(answer)


#: label -> Exercise, filled by the chapter modules as they are imported.
EXERCISES: dict[str, Exercise] = {}


def exercise(label: str, kind: str, summary: str):
    """Register ``checker(answer) -> number of cases`` under ``label`` (``<chapter>-<topic>``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    if "-" not in label or label in EXERCISES:
        raise ValueError(f"label must be a new '<chapter>-<topic>'; got {label!r}")

    def register(checker):
        EXERCISES[label] = Exercise(label, kind, summary, checker)
        return checker

    return register


def _is_stub(value) -> bool:
    return value is None or value is Ellipsis


class ReaderFunction:
    """The reader's function, called case by case: a stub or a crash becomes a one-line result."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, case: str, *args, **kwargs):
        try:
            result = self.fn(*args, **kwargs)
        except NotImplementedError:
            raise NotAttempted() from None
        except Exception as err:  # the reader's bug: report it as this case's failure
            message = " ".join(str(err).split())[:200]
            raise CaseFailed(case, f"your function raised {type(err).__name__}: {message}") from None
        if _is_stub(result):
            raise NotAttempted()
        return result


def as_sympy(answer, case: str = "your expression"):
    """The reader's symbolic answer as a sympy expression (a string is parsed)."""
    import sympy as sp

    try:
        expr = sp.sympify(answer)
    except (sp.SympifyError, TypeError, SyntaxError) as err:
        raise CaseFailed(case, f"could not read it as a sympy expression ({err})") from None
    if not isinstance(expr, sp.Basic):
        raise CaseFailed(case, "expected a sympy expression")
    return expr


def as_number(answer, case: str = "your number") -> float:
    try:
        value = float(answer)
    except (TypeError, ValueError):
        raise CaseFailed(case, f"expected a number; got {type(answer).__name__}") from None
    if not math.isfinite(value):
        raise CaseFailed(case, f"expected a finite number; got {value}")
    return value


def _prepare(exercise_: Exercise, answer):
    if exercise_.kind == "function":
        if not callable(answer):
            raise CaseFailed("your answer", f"expected a function; got {type(answer).__name__}")
        return ReaderFunction(answer)
    return answer


def check(label: str, answer, *, record: bool = True, quiet: bool = False) -> bool:
    """Check ``answer`` for the exercise ``label``; print a short result; return whether it passed.

    ``record`` adds a pass to the local record that ``lsnotes exercises`` lists.
    """
    if not isinstance(label, str) or label not in EXERCISES:
        raise ValueError(f"label must be one of {sorted(EXERCISES)}; got {label!r}")
    ex = EXERCISES[label]
    say = (lambda text: None) if quiet else (lambda text: print(_wrapped(text)))
    if _is_stub(answer):
        say(f"{label}: not attempted. Write your answer in the cell above, then run this "
            "cell again.")
        return False
    try:
        cases = ex(_prepare(ex, answer))
    except NotAttempted:
        say(f"{label}: not attempted. Your function is still the stub: fill it in.")
        return False
    except CaseFailed as failure:
        say(f"{label}: not yet. The hidden case '{failure.case}' failed.\nHint: {failure.hint}")
        return False
    say(f"{label}: passed ({cases} hidden case{'s' if cases != 1 else ''}).")
    if record:
        record_pass(label)
    return True


def _wrapped(text: str) -> str:
    """Lines of at most 75 characters: the book's output box shows no more without scrolling."""
    return "\n".join(textwrap.fill(line, 75, subsequent_indent="  ") for line in text.splitlines())


# ----------------------------------------------------------------------------- local record
def record_path() -> Path:
    """``$LSNOTES_EXERCISES_FILE``, else ``~/.cache/lsnotes/exercises.json``."""
    path = os.environ.get("LSNOTES_EXERCISES_FILE")
    return Path(path).expanduser() if path else Path.home() / ".cache" / "lsnotes" / "exercises.json"


def passes() -> dict[str, float]:
    """label -> time of the first pass (seconds since the epoch); {} when nothing is recorded."""
    try:
        data = json.loads(record_path().read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items() if k in EXERCISES} if isinstance(data, dict) else {}


def record_pass(label: str) -> None:
    """Add ``label`` to the record (atomic replace; a read-only home just skips recording)."""
    done = passes()
    if label in done:
        return
    done[label] = time.time()
    path = record_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
            json.dump(done, f, indent=1, sort_keys=True)
        os.replace(f.name, path)
    except OSError:  # recording is a convenience; checking must not fail because of it
        pass
