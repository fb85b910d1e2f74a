"""A verified cache of expensive results (attack results), stored like the models.

Attack results (adversarial examples) cost minutes and several chapters ask for the same ones.
They are stored like models, one immutable entry per key under <cache>/results/ (or
$LSNOTES_RESULTS): the value and a manifest of its SHA-256, written in a temporary folder and
renamed into place whole. The key covers everything the value depends on, so a changed input is
a new key, never a stale hit.

The attack's randomness comes from generators seeded by (seed, attack, batch), so a stored
result is exactly what recomputing it gives. A model with randomness of its own (noise drawn from
torch's global generator) gets the examples of its first run; ``LSNOTES_RESULT_CACHE=0`` draws
afresh.

Everything on disk goes through :mod:`lsnotes.cache`'s machinery: atomic writes, a manifest of
SHA-256 checksums read back before anything is deserialised, ``torch.load(weights_only=True)``.
A damaged entry is warned about (:class:`lsnotes.cache.CacheWarning`), deleted and computed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from lsnotes import __version__
from lsnotes.cache import (CacheCorruption, CacheWarning, _read_bundle, _torch_bytes,
                           _torch_from_bytes, _write_bundle, cache_root, sha256)

RESULT = "result.pt"
RESULT_MANIFEST = "manifest.json"
#: Set to ``0`` to compute every result afresh and store nothing.
RESULTS_SWITCH = "LSNOTES_RESULT_CACHE"
_RESULT_KEY_FORMAT = 1


def package_fingerprint() -> dict:
    """SHA-256 of the code a result or an executed chapter depends on: every
    ``lsnotes/**/*.py``, the package's data (``lsnotes/**/*.json``: the papers' tables), the
    package version, ``requirements.txt`` beside the package, and the Python version. Read afresh
    on every call."""
    package = Path(__file__).resolve().parent
    checkout = package.parent
    files = sorted(path for path in package.rglob("*") if path.suffix in (".py", ".json")
                   and "__pycache__" not in path.parts and path.is_file())
    files += [checkout / "requirements.txt"] if (checkout / "requirements.txt").is_file() else []
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(checkout).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return {"version": __version__, "python": sys.version.split()[0], "files": digest.hexdigest()}


_loaded_fingerprint: dict | None = None


def loaded_package_fingerprint() -> dict:
    """:func:`package_fingerprint` as of this process's first call: the code it has loaded."""
    global _loaded_fingerprint
    if _loaded_fingerprint is None:
        _loaded_fingerprint = package_fingerprint()
    return _loaded_fingerprint


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 of the dtypes, shapes and values of ``tensors`` (wherever they live)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"tensor_digest takes tensors; got {type(tensor).__name__}")
        flat = tensor.detach().cpu().contiguous().reshape(-1)  # a 0-d tensor views as bytes too
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def model_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's class and every entry of its ``state_dict`` (weights and buffers)."""
    state = model.state_dict()
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name in sorted(state):
        digest.update(name.encode() + b"\0" + tensor_digest(state[name]).encode())
    return digest.hexdigest()


def result_key(*, model: str, attack: str, settings: dict, x: torch.Tensor, y: torch.Tensor,
               eps: float, seed: int, package: dict | None = None) -> str:
    """The key of one attack result: the model (its cache key or :func:`model_digest`), the
    attack's name and settings (everything else that shapes it: overrides, batching), the
    evaluation examples and the device they are on, ε, the seed and the package
    (:func:`loaded_package_fingerprint`). Not the CPU thread count: as with the model cache, it
    can change the last bits of a result, and a different one still reads the stored result."""
    if not isinstance(attack, str) or not attack:
        raise ValueError(f"attack must be a non-empty name; got {attack!r}")
    if not isinstance(settings, dict):
        raise ValueError(f"settings must be a dict; got {type(settings).__name__}")
    described = {"format": _RESULT_KEY_FORMAT, "model": str(model), "attack": attack,
                 "settings": settings, "examples": tensor_digest(x, y),
                 "device": x.device.type if isinstance(x, torch.Tensor) else None,
                 "eps": float(eps),
                 "seed": int(seed),
                 "package": package if package is not None else loaded_package_fingerprint()}
    text = json.dumps(described, sort_keys=True, default=_key_part)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in attack)[:40]
    return f"{safe}-{sha256(text.encode())[:40]}"


def _key_part(value: Any) -> str:
    """A setting that is not JSON, as text that changes when it does: tensors and models by their
    values (a tensor's repr elides them); anything else by repr (an object without a repr of its
    own shows its address, so it never matches another process's: recomputed, never stale)."""
    if isinstance(value, torch.Tensor):
        return f"tensor:{tensor_digest(value)}"
    if isinstance(value, torch.nn.Module):
        return f"model:{model_digest(value)}"
    return repr(value)


def results_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir/results``, else ``$LSNOTES_RESULTS``, else ``<model cache>/results``."""
    if cache_dir is None and os.environ.get("LSNOTES_RESULTS"):
        return Path(os.environ["LSNOTES_RESULTS"]).expanduser().absolute()
    return cache_root(cache_dir) / "results"


def results_enabled() -> bool:
    return os.environ.get(RESULTS_SWITCH, "1").strip() != "0"


def load_cached_result(key: str, cache_dir: str | os.PathLike | None = None) -> Any | None:
    """The verified value stored under ``key``, or None (a damaged entry is warned about and
    deleted, so the caller computes it again)."""
    entry = results_root(cache_dir) / key
    try:
        contents = _read_bundle(entry, RESULT_MANIFEST)
        if contents is None:
            return None
        stored = _torch_from_bytes(contents[RESULT], RESULT)
        if not isinstance(stored, dict) or stored.get("key") != key or "value" not in stored:
            raise CacheCorruption(f"{RESULT} is not the result stored for this key")
        with contextlib.suppress(OSError):
            os.utime(entry)  # recently used: pruned last
        return stored["value"]
    except (CacheCorruption, KeyError) as err:
        warnings.warn(f"discarding cached result {entry}: {err}; it will be computed again",
                      CacheWarning, stacklevel=2)
        shutil.rmtree(entry, ignore_errors=True)
        return None


def store_cached_result(key: str, value: Any, cache_dir: str | os.PathLike | None = None) -> bool:
    """Store ``value`` (``weights_only``-loadable: tensors, numbers, lists, dicts) under ``key``;
    False when the cache cannot be written (the value is then simply not kept)."""
    folder = results_root(cache_dir)
    data = _torch_bytes({"key": key, "value": value})
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".{key}."))
    except OSError:
        return False
    try:
        _write_bundle(staging, {RESULT: data}, RESULT_MANIFEST)
        os.rename(staging, folder / key)  # whole or not at all; an entry never changes
    except OSError:  # another process stored the same key first: its entry is as good
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    prune_results(folder)
    return True


#: The results kept, in MiB (``$LSNOTES_RESULTS_MAX_MB``): every package edit makes new keys, so
#: the least recently used entries go once the folder outgrows this.
RESULTS_MAX_MB = 2048


def results_max_bytes() -> int:
    raw = os.environ.get("LSNOTES_RESULTS_MAX_MB", "").strip()
    if raw and not raw.isdigit():
        raise ValueError(f"LSNOTES_RESULTS_MAX_MB must be a whole number of MiB; got {raw!r}")
    return int(raw or RESULTS_MAX_MB) * 2**20


def prune_results(folder: Path, max_bytes: int | None = None) -> None:
    """Delete the least recently used results until those left fit in ``max_bytes``."""
    max_bytes = results_max_bytes() if max_bytes is None else max_bytes
    entries = []
    for entry in Path(folder).iterdir():
        stored = entry / RESULT
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.name.startswith("."):
                entries.append((entry.stat().st_mtime, stored.stat().st_size, entry))
    total = sum(size for _, size, _ in entries)
    for _, size, entry in sorted(entries):
        if total <= max_bytes:
            break
        shutil.rmtree(entry, ignore_errors=True)
        total -= size


def cached_result(key: str, compute, cache_dir: str | os.PathLike | None = None) -> Any:
    """The value stored under ``key``, or ``compute()``, stored for next time.

    One process computes a key at a time (a file lock); the others wait and load its result. With
    ``$LSNOTES_RESULT_CACHE=0``, or a cache folder that cannot be written, it just computes.
    """
    if not results_enabled():
        return compute()
    results_max_bytes()  # a bad limit fails now, not after the work
    found = load_cached_result(key, cache_dir)
    if found is not None:
        return found
    folder = results_root(cache_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / f"{key}.lock"))
        lock.acquire()
    except OSError:  # a read-only cache: compute, keep nothing
        return compute()
    try:
        found = load_cached_result(key, cache_dir)  # computed while we waited?
        if found is None:
            found = compute()
            store_cached_result(key, found, cache_dir)
        return found
    finally:
        lock.release()
