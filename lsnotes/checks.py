"""Argument checks shared by every module, and the parameters every chapter takes.

Every public function validates its inputs with these helpers so that bad input fails early
with a message naming the parameter and what is allowed.
"""

from __future__ import annotations

import math
import operator
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


#: The largest finite float32: a setting beyond it overflows to inf in a model or optimiser.
FLOAT32_MAX = 3.4028234663852886e38


def number_in(name: str, value: Any, low: float = -math.inf, high: float = math.inf,
              *, low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a float if it is a finite number in the stated interval.

    NaN and ±inf are refused even where the interval is unbounded.
    """
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ValueError(f"{name} must be a number; got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError, RuntimeError):  # e.g. a tensor of several numbers
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    bad_low = x <= low if low_open else x < low
    bad_high = x >= high if high_open else x > high
    if not math.isfinite(x) or bad_low or bad_high:
        raise ValueError(f"{name} must be a finite number in {left}{low}, {high}{right}; got {value!r}")
    return x


def positive_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` if it is an integer ``>= minimum`` (default 1) and, when ``maximum`` is
    given, ``<= maximum``; bools are refused."""
    allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise ValueError(f"{name} must be an integer {allowed}; got {value!r}")
    try:
        number = operator.index(value)
    except (TypeError, RuntimeError):  # e.g. a tensor of several numbers
        raise ValueError(f"{name} must be an integer {allowed}; got {value!r}") from None
    if number < minimum or maximum is not None and number > maximum:
        raise ValueError(f"{name} must be an integer {allowed}; got {value!r}")
    return number


def non_negative_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an integer ``>= 0`` (a seed, a count that may be zero)."""
    return positive_int(name, value, minimum=0)


def flag(name: str, value: Any) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return value


def check_device(device: Any) -> str:
    """Return ``device`` as a string if it names one: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Only the spelling is checked here (a config may name a GPU this machine lacks);
    :func:`resolve_device` also checks that the device exists.
    """
    text = "auto" if device is None else str(device)
    base, sep, index = text.partition(":")
    choice("device", base, DEVICES)
    if sep and (base == "auto" or not index.isdigit()):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' with N a GPU index "
                         f"(a whole number); got {device!r}")
    return text


def resolve_device(device: str | None = "auto") -> str:
    """Map ``"auto"`` to ``"cuda"`` when a GPU is present and ``"cpu"`` otherwise.

    A device this machine does not have (``cuda`` without a GPU, ``cuda:3`` with one GPU) is
    refused with a ``ValueError``.
    """
    import torch

    device = check_device(device)
    base, _, index = device.partition(":")
    if base == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but torch.cuda.is_available() is False; "
                         "use device='cpu' or 'auto'")
    if base == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} names GPU {index} but this machine has "
                         f"{torch.cuda.device_count()} (indices from 0)")
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
    seed = non_negative_int("seed", seed)
    return ChapterParams(profile=profile, seed=seed, device=resolve_device(device))
