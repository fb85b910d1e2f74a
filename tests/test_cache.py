"""The checkpoint cache: corruption is detected and retrained, interrupted runs resume exactly,
and concurrent callers train a configuration once."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from lsnotes import cache
from lsnotes.train import TrainConfig, train_or_load

CONFIG = TrainConfig(model="linear", train_size=100, test_size=50, epochs=2, batch_size=25,
                     device="cpu", seed=5)


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_atomic_write_replaces_whole_files(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    cache.atomic_write(path, b"first")
    cache.atomic_write(path, b"second")
    assert path.read_bytes() == b"second" and os.listdir(path.parent) == ["f.bin"]


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LSNOTES_CACHE", str(tmp_path))
    assert cache.cache_root() == tmp_path and cache.cache_root("/x") == cache.Path("/x")
    with pytest.raises(ValueError, match="key"):
        cache.entry_dir("../escape")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A first run into a fresh cache, and its weights."""
    root = tmp_path_factory.mktemp("cache")
    result = train_or_load(CONFIG, progress=False, cache_dir=root)
    return root, {k: v.clone() for k, v in result.model.state_dict().items()}


def test_second_call_loads_from_cache(trained):
    root, weights = trained
    again = train_or_load(CONFIG, progress=False, cache_dir=root)
    assert again.from_cache and same_weights(again.model.state_dict(), weights)
    assert [h["epoch"] for h in again.history] == [1, 2]
    assert not (again.path / cache.PROGRESS).exists()


def _truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _tamper_manifest(path):
    manifest = json.loads(path.read_text())
    manifest["files"][cache.WEIGHTS] = "0" * 64
    path.write_text(json.dumps(manifest))


def _tamper_record(path):
    record = json.loads(path.read_text())
    record["config"]["alpha"] = 0.5
    text = json.dumps(record).encode()
    path.write_bytes(text)
    # Re-sign the manifest too: a consistent forgery must still be caught by the config check.
    manifest_path = path.parent / cache.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][cache.RECORD] = cache.sha256(text)
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("damage, victim", [(_truncate, cache.WEIGHTS), (_flip_byte, cache.WEIGHTS),
                                            (_tamper_manifest, cache.MANIFEST),
                                            (_tamper_record, cache.RECORD),
                                            (os.remove, cache.RECORD)])
def test_corruption_is_detected_and_retrained(trained, damage, victim):
    root, weights = trained
    damage(cache.entry_dir(CONFIG.key(), root) / victim)
    with pytest.warns(cache.CacheWarning, match="discarding"):
        result = train_or_load(CONFIG, progress=False, cache_dir=root)
    assert not result.from_cache and same_weights(result.model.state_dict(), weights)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train_or_load(CONFIG, progress=False, cache_dir=root).from_cache


def _resign(path, data: bytes):
    """Write ``data`` to a cache file and update its manifest, so the entry still verifies."""
    path.write_bytes(data)
    manifest_path = path.parent / cache.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][path.name] = cache.sha256(data)
    manifest_path.write_text(json.dumps(manifest))


def _record_as_list(path):
    _resign(path, json.dumps([json.loads(path.read_text())]).encode())


def _weights_of_another_shape(path):
    weights = torch.load(path, weights_only=True)
    name = next(k for k, v in weights.items() if v.dim() == 2)
    weights[name] = torch.zeros(weights[name].shape[0] + 1, weights[name].shape[1])
    _resign(path, cache._torch_bytes(weights))


@pytest.mark.parametrize("damage, victim, reason", [(_record_as_list, cache.RECORD, "not a record"),
                                                    (_weights_of_another_shape, cache.WEIGHTS,
                                                     "do not fit")])
def test_an_entry_that_verifies_but_does_not_load_is_retrained(trained, damage, victim, reason):
    root, weights = trained
    damage(cache.entry_dir(CONFIG.key(), root) / victim)
    with pytest.warns(cache.CacheWarning, match=reason):
        result = train_or_load(CONFIG, progress=False, cache_dir=root)
    assert not result.from_cache and same_weights(result.model.state_dict(), weights)
    assert train_or_load(CONFIG, progress=False, cache_dir=root).from_cache


def test_cache_folder_that_is_a_file_is_refused(tmp_path, monkeypatch):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    monkeypatch.setenv("LSNOTES_CACHE", str(a_file))
    with pytest.raises(ValueError, match="LSNOTES_CACHE must name a folder"):
        train_or_load(CONFIG, progress=False)
    with pytest.raises(ValueError, match="cache_dir must name a folder"):
        train_or_load(CONFIG, progress=False, cache_dir=a_file)


def test_a_relative_cache_folder_is_resolved_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LSNOTES_CACHE", "models")
    root = cache.cache_root()
    assert root == tmp_path / "models" and root.is_absolute()
    assert os.environ["LSNOTES_CACHE"] == str(root)        # what a kernel or worker inherits
    (tmp_path / "book").mkdir()
    monkeypatch.chdir(tmp_path / "book")                   # a chapter run from book/
    assert cache.cache_root() == root


@pytest.fixture
def interrupted(tmp_path):
    """A cache folder holding the epoch-1 checkpoint of CONFIG, as left by an interrupted run."""
    def stop_after_first_epoch(epoch, history):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_or_load(CONFIG, progress=False, cache_dir=tmp_path, on_epoch_end=stop_after_first_epoch)
    assert (cache.entry_dir(CONFIG.key(), tmp_path) / cache.PROGRESS).exists()
    return tmp_path


def test_interrupted_run_resumes_at_epoch_2_with_the_same_weights(trained, interrupted):
    _, uninterrupted = trained
    epochs_run = []
    result = train_or_load(CONFIG, progress=False, cache_dir=interrupted,
                           on_epoch_end=lambda epoch, history: epochs_run.append(epoch))
    assert epochs_run == [2] and [h["epoch"] for h in result.history] == [1, 2]
    assert same_weights(result.model.state_dict(), uninterrupted)


def test_corrupt_checkpoint_is_discarded_and_training_restarts(trained, interrupted):
    _, uninterrupted = trained
    _flip_byte(cache.entry_dir(CONFIG.key(), interrupted) / cache.PROGRESS)
    epochs_run = []
    with pytest.warns(cache.CacheWarning):
        result = train_or_load(CONFIG, progress=False, cache_dir=interrupted,
                               on_epoch_end=lambda epoch, history: epochs_run.append(epoch))
    assert epochs_run == [1, 2] and same_weights(result.model.state_dict(), uninterrupted)


# Workers run single-threaded like this process (see conftest.one_thread): CPU reductions split
# over another number of threads round differently, and the weights are compared bit for bit.
WORKER_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

WORKER = textwrap.dedent("""
    import hashlib, sys
    from lsnotes.train import TrainConfig, train_or_load
    config = TrainConfig.from_dict({config!r})
    result = train_or_load(config, progress=False, cache_dir=sys.argv[1])
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in result.model.state_dict().values()))
    print(result.from_cache, [h["epoch"] for h in result.history], digest.hexdigest())
""")


def _spawn(root):
    return subprocess.Popen([sys.executable, "-c", WORKER.format(config=CONFIG.to_dict()), str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=WORKER_ENV)


def _digest(weights):
    return hashlib.sha256(b"".join(v.numpy().tobytes() for v in weights.values())).hexdigest()


@pytest.mark.slow
def test_concurrent_processes_train_once_resuming_an_interrupted_run(trained, interrupted):
    _, uninterrupted = trained
    # Two processes now ask for the same model: one resumes the run at epoch 2, the other waits.
    workers = [_spawn(interrupted) for _ in range(2)]
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
        outputs.append(out.split(maxsplit=1))
    flags = sorted(flag for flag, _ in outputs)
    assert flags == ["False", "True"]                       # trained once, loaded once
    assert outputs[0][1] == outputs[1][1]
    assert outputs[0][1].strip().endswith(_digest(uninterrupted))


def _run_read_only(folder, code: str) -> subprocess.CompletedProcess:
    """Run ``python -c code`` with ``folder`` read-only: a read-only bind mount in a private
    mount namespace when we are root (root ignores permission bits), else permission bits."""
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("root without unshare(1): cannot make a folder read-only")
        remount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        probe = subprocess.run(["unshare", "-m", "sh", "-c", remount, str(folder), "true"],
                               capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"cannot mount read-only here: {probe.stderr.decode().strip()}")
        command = ["unshare", "-m", "sh", "-c", remount, str(folder), *command]
        return subprocess.run(command, capture_output=True, text=True, env=WORKER_ENV, timeout=300)
    modes = {path: path.stat().st_mode for path in [folder, *folder.rglob("*")]}
    for path in modes:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        return subprocess.run(command, capture_output=True, text=True, env=WORKER_ENV, timeout=300)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


READ_ONLY_WORKER = textwrap.dedent("""
    import sys
    from lsnotes import cli
    from lsnotes.train import TrainConfig, train_or_load
    result = train_or_load(TrainConfig.from_dict({config!r}), progress=False, cache_dir={root!r})
    print("served", result.from_cache)
    sys.exit(cli.main(["train", "--model", "linear", "--train-size", "100", "--test-size", "50",
                       "--epochs", "1", "--device", "cpu", "--quiet", "--cache-dir", {root!r}]))
""")


def test_a_read_only_cache_serves_what_it_holds_and_says_when_it_must_train(trained):
    root, _ = trained
    before = sorted(p.name for p in root.iterdir())
    done = _run_read_only(root, READ_ONLY_WORKER.format(config=CONFIG.to_dict(), root=str(root)))
    assert done.stdout.strip() == "served True", done.stderr
    assert done.returncode == 2                      # the second model is not there: one line
    error = done.stderr.strip()
    assert error.startswith("lsnotes train: error: ") and "\n" not in error, error
    assert "cannot be written" in error and "LSNOTES_CACHE" in error
    assert sorted(p.name for p in root.iterdir()) == before
