"""lsnotes.result_cache: verified, atomic, keyed by everything a result depends on."""

from __future__ import annotations

import threading

import pytest
import torch

from lsnotes import cache, result_cache

PACKAGE = {"version": "0.1.0", "python": "3.11", "files": "f" * 64}


def _examples():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(6, 1, 4, 4, generator=generator), torch.tensor([0, 1, 2, 0, 1, 2])


def _key(**changes):
    x, y = _examples()
    parts = {"model": "model-a", "attack": "pgd20", "settings": {"steps": 20, "batch_size": 3},
             "x": x, "y": y, "eps": 0.1, "seed": 0, "package": PACKAGE}
    return result_cache.result_key(**(parts | changes))


class Counter:
    def __init__(self, value):
        self.value, self.calls = value, 0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.calls += 1
        return self.value


def test_a_stored_result_is_served_without_computing_again(tmp_path):
    compute = Counter({"x_adv": torch.arange(6.0), "accuracy": 0.5})
    first = result_cache.cached_result(_key(), compute, cache_dir=tmp_path)
    second = result_cache.cached_result(_key(), compute, cache_dir=tmp_path)
    assert compute.calls == 1
    assert torch.equal(second["x_adv"], first["x_adv"]) and second["accuracy"] == 0.5
    assert (tmp_path / "results" / _key() / result_cache.RESULT_MANIFEST).is_file()


def test_every_part_of_the_key_invalidates():
    x, y = _examples()
    changed = {
        "model": _key(model="model-b"),
        "attack": _key(attack="pgd40"),
        "settings": _key(settings={"steps": 21, "batch_size": 3}),
        "batching": _key(settings={"steps": 20, "batch_size": 4}),
        "x": _key(x=x + 1e-6),
        "y": _key(y=y.flip(0)),
        "x dtype": _key(x=x.double()),
        "eps": _key(eps=0.1000001),
        "seed": _key(seed=1),
        "package version": _key(package={**PACKAGE, "version": "0.2.0"}),
        "package code": _key(package={**PACKAGE, "files": "e" * 64}),
    }
    assert _key() == _key() and _key() not in changed.values()
    assert len(set(changed.values())) == len(changed)


def test_model_digest_follows_weights_and_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    before = result_cache.model_digest(model)
    assert result_cache.model_digest(model) == before
    with torch.no_grad():
        model[0].weight[0, 0] += 1e-6
    after_weight = result_cache.model_digest(model)
    model[1].running_mean += 1
    assert len({before, after_weight, result_cache.model_digest(model)}) == 3


def test_a_corrupted_entry_is_discarded_and_computed_again(tmp_path):
    compute = Counter(torch.ones(4))
    result_cache.cached_result(_key(), compute, cache_dir=tmp_path)
    stored = tmp_path / "results" / _key() / result_cache.RESULT
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.warns(cache.CacheWarning, match="discarding cached result"):
        value = result_cache.cached_result(_key(), compute, cache_dir=tmp_path)
    assert compute.calls == 2 and torch.equal(value, torch.ones(4))
    assert result_cache.load_cached_result(_key(), cache_dir=tmp_path) is not None  # stored anew


def test_an_entry_under_another_key_is_not_served(tmp_path):
    result_cache.cached_result(_key(), Counter(torch.ones(2)), cache_dir=tmp_path)
    results = tmp_path / "results"
    (results / _key()).rename(results / _key(seed=9))  # a folder renamed by hand
    with pytest.warns(cache.CacheWarning, match="not the result stored for this key"):
        assert result_cache.load_cached_result(_key(seed=9), cache_dir=tmp_path) is None


def test_concurrent_writers_compute_once_and_agree(tmp_path):
    start = threading.Barrier(6)
    compute = Counter(torch.arange(10.0))
    values = []

    def worker():
        start.wait()
        values.append(result_cache.cached_result(_key(), compute, cache_dir=tmp_path))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert compute.calls == 1 and len(values) == 6
    assert all(torch.equal(v, torch.arange(10.0)) for v in values)


def test_racing_stores_of_one_key_leave_one_verified_entry(tmp_path):
    start = threading.Barrier(5)

    def store():
        start.wait()
        result_cache.store_cached_result(_key(), torch.arange(3.0), cache_dir=tmp_path)

    threads = [threading.Thread(target=store) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert torch.equal(result_cache.load_cached_result(_key(), cache_dir=tmp_path), torch.arange(3.0))
    assert [p.name for p in (tmp_path / "results").iterdir() if not p.name.endswith(".lock")] == [
        _key()]  # no staging folders left behind


def test_switched_off_or_read_only_it_computes_and_keeps_nothing(tmp_path, monkeypatch):
    compute = Counter(torch.zeros(1))
    monkeypatch.setenv(result_cache.RESULTS_SWITCH, "0")
    result_cache.cached_result(_key(), compute, cache_dir=tmp_path)
    result_cache.cached_result(_key(), compute, cache_dir=tmp_path)
    assert compute.calls == 2 and not (tmp_path / "results").exists()
    monkeypatch.delenv(result_cache.RESULTS_SWITCH)
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        value = result_cache.cached_result(_key(), compute, cache_dir=read_only)
    finally:
        read_only.chmod(0o700)
    assert compute.calls == 3 and torch.equal(value, torch.zeros(1))


def test_results_folder_follows_its_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNOTES_RESULTS", str(tmp_path / "elsewhere"))
    assert result_cache.results_root() == tmp_path / "elsewhere"
    assert result_cache.results_root(tmp_path) == tmp_path / "results"


@pytest.mark.parametrize("changes, message", [
    ({"attack": ""}, "attack must be a non-empty name"),
    ({"settings": [1]}, "settings must be a dict"),
    ({"x": [1.0]}, "tensor_digest takes tensors"),
])
def test_bad_key_parts_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        _key(**changes)


def test_package_fingerprint_is_stable_and_loaded_once():
    assert result_cache.package_fingerprint() == result_cache.package_fingerprint()
    assert result_cache.loaded_package_fingerprint() is result_cache.loaded_package_fingerprint()


def test_least_recently_used_results_go_when_the_folder_outgrows_its_limit(tmp_path):
    import os

    keys = [_key(seed=seed) for seed in range(4)]
    for age, key in enumerate(keys):
        result_cache.store_cached_result(key, torch.zeros(1000), cache_dir=tmp_path)
        os.utime(tmp_path / "results" / key, (1000 + age, 1000 + age))
    result_cache.load_cached_result(keys[0], cache_dir=tmp_path)  # used now: the newest
    one = (tmp_path / "results" / keys[0] / result_cache.RESULT).stat().st_size
    result_cache.prune_results(tmp_path / "results", max_bytes=2 * one)
    left = {p.name for p in (tmp_path / "results").iterdir() if not p.name.endswith(".lock")}
    assert left == {keys[0], keys[3]}


def test_bad_result_size_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNOTES_RESULTS_MAX_MB", "lots")
    compute = Counter(1)
    with pytest.raises(ValueError, match="LSNOTES_RESULTS_MAX_MB must be a whole number"):
        result_cache.cached_result(_key(), compute, cache_dir=tmp_path)
    assert compute.calls == 0


# ------------------------------------------------------------------------------ the evaluation engine

def _engine_attack(model, x, y, *, seed=0, eps=0.1, name="pgd10", batch_size=8):
    from lsnotes.robustness import evaluate

    return evaluate._attack_batched(name, model, x, y, eps, seed=seed, batch_size=batch_size,
                                    overrides={}, progress=False)


def test_the_engine_serves_a_stored_attack_identical_to_a_fresh_one(linear, tmp_path,
                                                                    monkeypatch):
    from lsnotes import attacks
    from tiny_models import blobs

    x, y = blobs(20, seed=7)
    monkeypatch.setenv("LSNOTES_RESULTS", str(tmp_path))
    calls = []
    real = attacks.run_attack

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(attacks, "run_attack", counted)
    first = _engine_attack(linear, x, y)
    assert len(calls) == 3  # three batches of at most 8
    stored = _engine_attack(linear, x, y)
    assert len(calls) == 3, "the second run must come from the cache"
    monkeypatch.setenv(result_cache.RESULTS_SWITCH, "0")
    fresh = _engine_attack(linear, x, y)
    assert len(calls) == 6
    # PGD's random start comes from (seed, attack, batch start): stored == recomputed, exactly.
    assert torch.equal(stored, first) and torch.equal(stored, fresh)
    assert not torch.equal(_engine_attack(linear, x, y, seed=1), fresh)  # another seed: new key
    monkeypatch.delenv(result_cache.RESULTS_SWITCH)
    # Other batching is another generator stream, so another key, computed afresh.
    assert len(calls) == 9
    _engine_attack(linear, x, y, batch_size=5)
    assert len(calls) == 13


def test_a_transfer_source_is_attacked_once_for_every_model_it_is_tried_on(linear, tmp_path,
                                                                           monkeypatch):
    """The gradient-masking chapter tries PGD-20 examples crafted on CE against each model: with
    the result cache, CE is attacked once, not once per target."""
    from lsnotes import attacks
    from lsnotes.robustness import diagnostics
    from tiny_models import blobs, trained_linear

    x, y = blobs(16, seed=3)
    targets = [trained_linear(steps=60, seed=1), trained_linear(steps=60, seed=2)]
    monkeypatch.setenv("LSNOTES_RESULTS", str(tmp_path))
    on_source = []
    real = attacks.run_attack

    def counted(name, model, *args, **kwargs):
        if model is linear:
            on_source.append(name)
        return real(name, model, *args, **kwargs)

    monkeypatch.setattr(attacks, "run_attack", counted)
    for target in targets:
        diagnostics.gradient_masking_diagnostics(target, x, y, 0.1, source_model=linear,
                                                 sweep_points=2, restarts=2, batch_size=16,
                                                 black_box=False)
    assert on_source == ["pgd20"]


def test_an_attack_with_its_defaults_spelt_out_shares_the_stored_result(linear, tmp_path,
                                                                        monkeypatch):
    """The gradient-masking chapter runs ODI in the diagnostics (registered settings) and in the
    report (the zoo's settings, equal to them in the quick profile): one run, not two."""
    from lsnotes import attacks
    from lsnotes.robustness import evaluate
    from tiny_models import blobs

    x, y = blobs(16, seed=5)
    monkeypatch.setenv("LSNOTES_RESULTS", str(tmp_path))
    ran = []
    real = attacks.run_attack
    monkeypatch.setattr(attacks, "run_attack",
                        lambda name, *a, **k: ran.append(name) or real(name, *a, **k))
    defaults = attacks.ATTACKS["odi"].defaults
    run = lambda overrides: evaluate._attack_batched("odi", linear, x, y, 0.1, seed=0,  # noqa: E731
                                                     batch_size=16, overrides=overrides,
                                                     progress=False)
    first = run({})
    assert torch.equal(run(dict(defaults)), first) and ran == ["odi"]
    run({**defaults, "restarts": defaults["restarts"] + 1})  # another setting: computed
    assert ran == ["odi", "odi"]
