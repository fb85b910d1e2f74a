"""An atomic, verified cache of trained models, and the epoch checkpoints that let training resume.

One folder per training configuration (named by :meth:`lsnotes.train.TrainConfig.key`) under
``$LSNOTES_CACHE`` or ``~/.cache/lsnotes``::

    <key>/weights.pt       the trained state_dict (torch.save)
    <key>/record.json      key, config and per-epoch history
    <key>/manifest.json    SHA-256 of the two files above; written last, so its presence means
                           the entry is complete
    <key>/progress.pt      the last epoch checkpoint of an unfinished run (+ progress.json)
    <key>/best.pt          optional: the best-by-held-out-robust-accuracy epoch's weights
                           (+ best.json, its manifest; written before manifest.json)
    <key>.lock             a file lock: one process trains a key, the others wait and then load

Every file is written to a temporary file in the same folder, fsynced and moved into place with
``os.replace``, so a reader sees the old file or the new one, never half of one. Reading verifies
the checksum of the exact bytes it then deserialises (``torch.load(weights_only=True)`` only); a
truncated, corrupted or tampered entry, or one that verifies but does not load, is reported with
a :class:`CacheWarning`, deleted, and treated as missing, so the caller retrains it.

Reading needs no write access: a verified entry is served from a read-only folder. Only training
takes the lock, and a folder that cannot be written then raises :class:`CacheNotWritable`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

MANIFEST = "manifest.json"
WEIGHTS = "weights.pt"
RECORD = "record.json"
PROGRESS = "progress.pt"
PROGRESS_MANIFEST = "progress.json"
BEST = "best.pt"
BEST_MANIFEST = "best.json"


class CacheCorruption(Exception):
    """An entry failed verification; the message says which file and how."""


class CacheWarning(UserWarning):
    """Issued when a corrupted entry is found and deleted."""


class CacheNotWritable(PermissionError):
    """A model must be trained (or an entry repaired) but the cache folder cannot be written."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder, as an absolute path.

    ``cache_dir`` if given, else ``$LSNOTES_CACHE``, else ``$XDG_CACHE_HOME/lsnotes`` (~/.cache).
    A relative ``$LSNOTES_CACHE`` is resolved against the working directory the first time it is
    read and written back to the environment as an absolute path, so a later ``chdir`` (a chapter
    run from ``book/``) or a child process (a kernel, a worker) sees the same folder. A path that
    exists but is not a folder is refused with a ``ValueError``.
    """
    if cache_dir is not None:
        root = Path(cache_dir).expanduser().absolute()
        name = "cache_dir"
    elif os.environ.get("LSNOTES_CACHE"):
        root = Path(os.environ["LSNOTES_CACHE"]).expanduser().absolute()
        os.environ["LSNOTES_CACHE"] = str(root)
        name = "LSNOTES_CACHE"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base).expanduser().absolute() / "lsnotes"
        name = "the default cache folder"
    if root.exists() and not root.is_dir():
        raise ValueError(f"{name} must name a folder; {root} is a file")
    return root


def entry_dir(key: str, cache_dir: str | os.PathLike | None = None) -> Path:
    if not isinstance(key, str) or not key or "/" in key or key.startswith("."):
        raise ValueError(f"key must be a plain file name; got {key!r}")
    path = cache_root(cache_dir) / key
    if path.is_symlink():
        raise ValueError(f"the cache entry {path} is a symbolic link; refusing to follow it "
                         f"(remove the link, or point LSNOTES_CACHE at the real folder)")
    return path


def lock_for(key: str, cache_dir: str | os.PathLike | None = None) -> FileLock:
    """The per-key lock; hold it while checking, training and storing one configuration.

    Raises :class:`CacheNotWritable` when the cache folder cannot be created or written.
    """
    path = entry_dir(key, cache_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _not_writable(path.parent, err) from None
    if not os.access(path.parent, os.W_OK):
        raise _not_writable(path.parent, "no write permission")
    return _CheckedLock(str(path) + ".lock")


class _CheckedLock(FileLock):
    """A file lock whose failure to create its lock file is a :class:`CacheNotWritable`."""

    def acquire(self, *args, **kwargs):
        try:
            return super().acquire(*args, **kwargs)
        except (CacheNotWritable, Timeout):  # Timeout is an OSError too: another holder, not a fault
            raise
        except OSError as err:
            raise _not_writable(Path(self.lock_file).parent, err) from None


def _not_writable(folder: Path, reason) -> CacheNotWritable:
    return CacheNotWritable(f"the model is not in the cache and the cache folder {folder} cannot be "
                            f"written ({reason}); point LSNOTES_CACHE at a writable folder")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link; refusing to write through it")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's files are private; a shared cache is not
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    # Make the rename itself durable.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _umask() -> int:
    """The process's umask, read without changing it (Linux ≥ 4.7); 0o022 where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _torch_from_bytes(data: bytes, name: str) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling failure means the file is not what we wrote
        raise CacheCorruption(f"{name} does not load: {err}") from err


def _write_bundle(directory: Path, files: dict[str, bytes], manifest_name: str) -> None:
    """Write ``files`` then a manifest of their checksums (last: it marks the bundle complete)."""
    for name, data in files.items():
        atomic_write(directory / name, data)
    manifest = {"files": {name: sha256(data) for name, data in files.items()}}
    atomic_write(directory / manifest_name, json.dumps(manifest, indent=1).encode())


def _read_bundle(directory: Path, manifest_name: str) -> dict[str, bytes] | None:
    """The verified bytes of every file in the bundle; None if there is no manifest yet."""
    manifest_path = directory / manifest_name
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_bytes())
        expected = dict(manifest["files"])
    except Exception as err:
        raise CacheCorruption(f"{manifest_path} is not a valid manifest: {err}") from err
    contents = {}
    for name, digest in expected.items():
        path = directory / name
        if path.is_symlink():
            raise CacheCorruption(f"{path} is a symbolic link; the cache does not follow links")
        if not path.is_file():
            raise CacheCorruption(f"{path} is listed in the manifest but missing")
        data = path.read_bytes()
        if sha256(data) != digest:
            raise CacheCorruption(f"{path} fails its SHA-256 check (truncated or modified)")
        contents[name] = data
    return contents


def _discard(directory: Path, names: tuple[str, ...], reason: Exception | str) -> None:
    warnings.warn(f"discarding cache entry {directory}: {reason}; it will be retrained",
                  CacheWarning, stacklevel=3)
    for name in names:
        try:
            (directory / name).unlink(missing_ok=True)
        except OSError:  # a read-only cache: the retrain that follows reports it
            pass


def discard_result(directory: Path, reason: Exception | str) -> None:
    """Warn about and delete a finished entry that verified but cannot be used (say why)."""
    _discard(Path(directory), (MANIFEST, WEIGHTS, RECORD), reason)


def store_result(directory: Path, key: str, config: dict, state_dict: dict, history: list) -> None:
    """Store a finished run: weights, then record, then the manifest."""
    weights = {k: v.detach().cpu() for k, v in state_dict.items()}
    record = {"key": key, "config": config, "history": history}
    _write_bundle(Path(directory), {WEIGHTS: _torch_bytes(weights),
                                    RECORD: json.dumps(record, indent=1).encode()}, MANIFEST)


def load_result(directory: Path, key: str, config: dict, *,
                discard: bool = False) -> tuple[dict, list] | None:
    """``(state_dict, history)`` of a verified entry for exactly this key and config, else None.

    A damaged entry reads as None. ``discard=True`` says the caller holds the key's lock (so no
    writer can be replacing the entry): the damaged entry is then warned about and deleted.
    """
    directory = Path(directory)
    try:
        contents = _read_bundle(directory, MANIFEST)
        if contents is None:
            return None
        if set(contents) != {WEIGHTS, RECORD}:
            raise CacheCorruption(f"manifest lists {sorted(contents)}, expected {[RECORD, WEIGHTS]}")
        record = json.loads(contents[RECORD])
        if not isinstance(record, dict) or not isinstance(record.get("history"), list) \
                or not all(isinstance(epoch, dict) for epoch in record["history"]):
            raise CacheCorruption(f"{RECORD} is not a record (an object with a list of epochs)")
        if record.get("key") != key or record.get("config") != config:
            raise CacheCorruption("the stored config does not match the requested one")
        state_dict = _torch_from_bytes(contents[WEIGHTS], WEIGHTS)
        if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor)
                                                       for v in state_dict.values()):
            raise CacheCorruption(f"{WEIGHTS} is not a state_dict")
        return state_dict, record["history"]
    except (CacheCorruption, ValueError, KeyError) as err:
        if discard:
            _discard(directory, (MANIFEST, WEIGHTS, RECORD), err)
        return None


def save_checkpoint(directory: Path, state: dict) -> None:
    """Store an epoch checkpoint (any ``weights_only``-loadable dict) atomically, with a checksum."""
    _write_bundle(Path(directory), {PROGRESS: _torch_bytes(state)}, PROGRESS_MANIFEST)


def load_checkpoint(directory: Path, key: str, *, discard: bool = True) -> dict | None:
    """The verified epoch checkpoint of ``key``, or None. Checkpoints are read by the trainer,
    which holds the key's lock: a bad one is warned about and deleted unless ``discard=False``."""
    return _load_keyed(directory, key, PROGRESS_MANIFEST, PROGRESS, "checkpoint", discard=discard)


def _load_keyed(directory, key: str, manifest: str, name: str, what: str,
                valid=lambda state: True, *, discard: bool) -> dict | None:
    """The verified dict stored as ``name`` under ``manifest`` if it was written for ``key`` (and
    passes ``valid``); otherwise None, and with ``discard`` (the caller holds the key's lock) a
    bad file is warned about and deleted."""
    directory = Path(directory)
    try:
        contents = _read_bundle(directory, manifest)
        if contents is None:
            return None
        state = _torch_from_bytes(contents[name], name)
        if not isinstance(state, dict) or state.get("key") != key or not valid(state):
            raise CacheCorruption(f"the {what} belongs to another configuration")
        return state
    except (CacheCorruption, KeyError) as err:
        if discard:
            _discard(directory, (manifest, name), err)
        return None


def clear_checkpoint(directory: Path) -> None:
    for name in (PROGRESS_MANIFEST, PROGRESS):
        (Path(directory) / name).unlink(missing_ok=True)


# ------------------------------------------------------------------------------ best epoch

def store_best(directory: Path, key: str, best: dict) -> None:
    """Store ``{"epoch", "robust_acc", "model"}`` of a run's best epoch beside its entry."""
    payload = {"key": key, "epoch": int(best["epoch"]), "robust_acc": float(best["robust_acc"]),
               "model": {k: v.detach().cpu() for k, v in best["model"].items()}}
    _write_bundle(Path(directory), {BEST: _torch_bytes(payload)}, BEST_MANIFEST)


def load_best(directory: Path, key: str, *, discard: bool = False) -> dict | None:
    """The verified best-epoch record of ``key``, or None; with ``discard`` (the caller holds the
    key's lock) a bad one is warned about and deleted."""
    return _load_keyed(directory, key, BEST_MANIFEST, BEST, "best-epoch file",
                       valid=lambda best: isinstance(best.get("model"), dict), discard=discard)


# ------------------------------------------------------------------------------ bytes from elsewhere
# A Ray worker serialises on its own machine and sends bytes plus their SHA-256; the driver checks
# the digest before anything is written, so what lands in the cache is what the worker produced.

def serialise(obj: Any) -> tuple[bytes, str]:
    """``torch.save`` bytes of ``obj`` and their SHA-256 (what a remote writer sends)."""
    data = _torch_bytes(obj)
    return data, sha256(data)


def _checked(data: bytes, digest: str, what: str) -> bytes:
    if not isinstance(data, bytes) or sha256(data) != digest:
        raise CacheCorruption(f"{what}: the received bytes fail their SHA-256 check")
    return data


def save_checkpoint_bytes(directory: Path, key: str, data: bytes, digest: str) -> None:
    """:func:`save_checkpoint` for a checkpoint serialised elsewhere (verified, then written)."""
    state = _torch_from_bytes(_checked(data, digest, PROGRESS), PROGRESS)
    if not isinstance(state, dict) or state.get("key") != key:
        raise CacheCorruption("the checkpoint belongs to another configuration")
    _write_bundle(Path(directory), {PROGRESS: data}, PROGRESS_MANIFEST)


def checkpoint_bytes(directory: Path, key: str) -> tuple[bytes, str] | None:
    """The verified bytes (and SHA-256) of ``key``'s epoch checkpoint, to send to a worker."""
    state = load_checkpoint(directory, key, discard=False)  # the driver sends, it does not repair
    return None if state is None else serialise(state)


def store_result_bytes(directory: Path, key: str, config: dict, weights: bytes, weights_digest: str,
                       history: list, best: bytes | None = None, best_digest: str | None = None) -> None:
    """:func:`store_result` (and :func:`store_best`) for weights serialised elsewhere.

    Every byte string is checked against its sender's SHA-256 and must load as what it claims to
    be before the entry is written; then the entry is read back and verified as any reader would.
    """
    state = _torch_from_bytes(_checked(weights, weights_digest, WEIGHTS), WEIGHTS)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CacheCorruption(f"{WEIGHTS} is not a state_dict")
    directory = Path(directory)
    if best is not None:
        record = _torch_from_bytes(_checked(best, best_digest, BEST), BEST)
        if not isinstance(record, dict) or record.get("key") != key:
            raise CacheCorruption("the best-epoch file belongs to another configuration")
        _write_bundle(directory, {BEST: best}, BEST_MANIFEST)
    record = {"key": key, "config": config, "history": history}
    _write_bundle(directory, {WEIGHTS: weights, RECORD: json.dumps(record, indent=1).encode()}, MANIFEST)
    if load_result(directory, key, config) is None:
        raise CacheCorruption(f"{directory}: the entry just written does not verify")
