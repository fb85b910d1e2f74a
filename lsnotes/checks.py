"""Argument checks shared by every module, and the parameters every chapter takes.

Every public function validates its inputs with these helpers so that bad input fails early
with a message naming the parameter and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

PROFILES = ("quick", "full")
DEVICES = ("auto", "cpu", "cuda")


def choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``; otherwise raise a ``ValueError``."""
    allowed = tuple(allowed)
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {shown}; got {value!r}")
    return value


def number_in(name: str, value: Any, low: float = -math.inf, high: float = math.inf,
              *, low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a float if it is a finite number in the stated interval."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ValueError(f"{name} must be a number; got {value!r}")
    x = float(value)
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    bad_low = x <= low if low_open else x < low
    bad_high = x >= high if high_open else x > high
    if math.isnan(x) or bad_low or bad_high:
        raise ValueError(f"{name} must lie in {left}{low}, {high}{right}; got {value!r}")
    return x


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) and not (
            hasattr(value, "__index__")):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def resolve_device(device: str | None = "auto") -> str:
    """Map ``"auto"`` to ``"cuda"`` when a GPU is present and ``"cpu"`` otherwise."""
    import torch

    device = "auto" if device is None else str(device)
    base = device.split(":")[0]
    choice("device", base, DEVICES)
    if base == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch.cuda.is_available() is False; "
                         "use device='cpu' or 'auto'")
    return device


@dataclass(frozen=True)
class ChapterParams:
    profile: str
    seed: int
    device: str

    @property
    def quick(self) -> bool:
        return self.profile == "quick"


def chapter_params(profile: str = "quick", seed: int = 0, device: str = "auto") -> ChapterParams:
    """Validate a chapter's papermill parameters; call it in the cell after ``parameters``."""
    choice("profile", profile, PROFILES)
    seed = positive_int("seed", seed, minimum=0)
    return ChapterParams(profile=profile, seed=seed, device=resolve_device(device))
