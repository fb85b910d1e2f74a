"""lsnotes.zoo: the plan, sequential and Ray training into one cache, the per-key lock, resuming a
killed worker, sharded attack batteries; and the paper datasets' on-disk formats (synthetic)."""

from __future__ import annotations

import dataclasses
import os
import threading

import pytest
import torch

from lsnotes import attacks, cache, cli, data, zoo
import lsnotes.zoo.cluster  # noqa: F401  (zoo.cluster below)
from lsnotes import robustness
from lsnotes.robustness import evaluate

TINY = dict(train_size=200, test_size=40, epochs=2, device="cpu")


def tiny_entries(labels=("CE", "SZEGEDY α=0.5", "PGD-AT"), **changes) -> list[zoo.PlanEntry]:
    """Three quick-profile models shrunk by overrides (a few hundred images, two epochs)."""
    picked = {r.label: r for r in zoo.requests("evaluation_checklist", "quick")}
    entries = []
    for label in labels:
        r = picked[label]
        r = dataclasses.replace(r, config=dataclasses.replace(r.config, **{**TINY, **changes}))
        entries.append(zoo.PlanEntry(r, (r.chapter,), ("fu",), False, 0.0, "assumed"))
    return entries


def stored(entry, cache_dir):
    key = entry.config.key()
    return cache.load_result(cache.entry_dir(key, cache_dir), key, entry.config.identity())


def assert_same_weights(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    """A Fashion-MNIST stand-in in its IDX format; LSNOTES_DATA points at it (Ray workers too)."""
    root = tmp_path_factory.mktemp("data")
    data.write_synthetic("fashion-mnist", root, n_train=400, n_test=100, seed=0)
    before = os.environ.get("LSNOTES_DATA")
    os.environ["LSNOTES_DATA"] = str(root)
    yield root
    if before is None:
        os.environ.pop("LSNOTES_DATA")
    else:
        os.environ["LSNOTES_DATA"] = before


# ------------------------------------------------------------------------------ the plan

def test_the_quick_plan_is_what_the_chapters_request_and_marks_the_cached(tmp_path):
    entries = zoo.plan("quick", cache_dir=tmp_path)
    keys = [e.config.key() for e in entries]
    requested = {r.config.key() for chapter in zoo.CHAPTERS
                 for r in zoo.requests(chapter, "quick")}
    assert len(keys) == len(set(keys)) == len(requested) == 22 and set(keys) == requested
    assert not any(e.cached for e in entries)
    ce = next(e for e in entries if e.request.label == "CE")
    assert set(ce.chapters) >= {"training_with_ls", "classic_attacks", "gradient_masking"}
    model = train_lib_model(ce.config)
    directory = cache.entry_dir(ce.config.key(), tmp_path)
    cache.store_result(directory, ce.config.key(), ce.config.identity(), model.state_dict(),
                       [{"epoch": 1}])
    again = {e.config.key(): e.cached for e in zoo.plan("quick", cache_dir=tmp_path)}
    assert again[ce.config.key()] and sum(again.values()) == 1
    # an adversarial entry stored without its per-epoch robust accuracy is not what the chapter loads
    pgd = next(e for e in entries if e.request.label == "PGD-AT")
    cache.store_result(cache.entry_dir(pgd.config.key(), tmp_path), pgd.config.key(),
                       pgd.config.identity(), train_lib_model(pgd.config).state_dict(), [{"epoch": 1}])
    assert not zoo.is_cached(pgd.request, tmp_path)


def train_lib_model(config):
    from lsnotes import train

    return train._empty_model(config)


def test_the_full_plan_lists_each_papers_models_with_gpu_hours(tmp_path, capsys):
    entries = zoo.plan("full", cache_dir=tmp_path)
    per_paper = {p: [e for e in entries if p in e.papers] for p in zoo.PAPERS}
    assert {p: len(v) for p, v in per_paper.items()} == {"goibert": 80, "fu": 12, "yu": 4}
    assert {(e.config.dataset, e.config.model) for e in per_paper["goibert"]} == {
        ("mnist", "linear"), ("mnist", "lenet"), ("cifar10", "lenet"), ("cifar10", "resnet18"),
        ("svhn", "lenet")}
    assert {e.config.adversarial for e in per_paper["yu"]} == {"pgd", "sglr", "trades", "trades_sglr"}
    # cost follows the FLOPs: WRN-34-10 PGD-AT dwarfs a LeNet, adversarial > natural
    cost = {(e.request.setting.name, e.request.label): e.seconds for e in entries}
    assert cost["fu-cifar10-wrn34-10", "PGD-AT"] > 10 * cost["fu-cifar10-wrn34-10", "CE"] > \
        100 * cost["goibert-cifar10-lenet", "CE"] > 0
    assert cli.main(["zoo", "plan", "--profile", "full", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Fu et al. (2020): 12 models, 12 missing" in out and "all papers: 96 models" in out
    assert "assumed 40 TFLOP/s" in out and "wrn34_10" in out


def test_measured_throughput_replaces_the_assumption(tmp_path):
    report = tmp_path / "gpu_check.json"
    report.write_text('{"training_epoch": [{"dataset": "cifar10", "model": "wrn34_10", '
                      '"adversarial": "none", "images_per_s": 5000}]}')
    fu = zoo.plan("full", paper="fu", cache_dir=tmp_path, throughput_file=report)
    ce = next(e for e in fu if e.request.label == "CE")
    assert ce.basis == "measured"
    # 100 epochs of 50k images at 5000 images/s, plus the held-out scoring of each epoch
    assert 100 * 50_000 / 5000 <= ce.seconds <= 1.01 * 100 * 50_000 / 5000 * (1 + 1000 / 50_000)
    with pytest.raises(ValueError, match="--throughput"):
        zoo.schedule.load_throughput(tmp_path / "absent.json")


@pytest.mark.parametrize("argv, match", [
    (["zoo", "plan", "--profile", "fast"], "profile must be one of"),
    (["zoo", "plan", "--paper", "smith"], "paper must be one of"),
    (["zoo", "train", "--limit", "-1"], "--limit"),
])
def test_bad_zoo_arguments_are_one_line(argv, match, capsys, tmp_path):
    assert cli.main([*argv, "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1


def test_offline_without_the_dataset_says_what_to_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LSNOTES_DATA", str(tmp_path / "nothing"))
    monkeypatch.setattr(data, "_download", lambda *a: (_ for _ in ()).throw(OSError("no network")))
    code = cli.main(["zoo", "train", "--profile", "full", "--paper", "yu", "--limit", "1",
                     "--cache-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cifar-10-python.tar.gz" in err and "LSNOTES_DATA" in err and "no network" in err


# ------------------------------------------------------------------------------ datasets

@pytest.mark.parametrize("name", sorted(data.DATASETS))
def test_synthetic_stand_ins_have_each_datasets_format_shape_and_classes(name, tmp_path):
    info = data.DATASETS[name]
    data.write_synthetic(name, tmp_path, n_train=info.num_classes * 3, n_test=info.num_classes)
    x, y = data.load_dataset(name, "train", root=tmp_path)
    assert x.shape == (info.num_classes * 3, *info.shape) and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert torch.bincount(y, minlength=info.num_classes).tolist() == [3] * info.num_classes
    assert data.ensure_dataset(name, root=tmp_path, download=False) == tmp_path.resolve()


# ------------------------------------------------------------------------------ sequential

def test_sequential_training_fills_the_cache_once(synthetic_data, tmp_path, one_thread):
    entries = tiny_entries(("CE",))
    zoo.train_sequential(entries, cache_dir=tmp_path, progress=False)
    first = stored(entries[0], tmp_path)
    zoo.train_sequential(entries, cache_dir=tmp_path, progress=False)  # loads, trains nothing
    assert first is not None and zoo.is_cached(entries[0].request, tmp_path)
    assert_same_weights(first[0], stored(entries[0], tmp_path)[0])


# ------------------------------------------------------------------------------ Ray

@pytest.fixture(scope="module")
def ray_cluster(synthetic_data):
    ray = pytest.importorskip("ray")
    for attempt in range(2):  # a loaded machine can miss Ray's 30 s start-up window once
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:  # noqa: BLE001 - Ray raises a bare Exception on a start-up timeout
            ray.shutdown()
            if attempt:
                raise
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_sequential_keys_and_bit_identical_weights(ray_cluster, tmp_path, one_thread):
    entries = tiny_entries()
    here, there = tmp_path / "sequential", tmp_path / "ray"
    zoo.train_sequential(entries, cache_dir=here, progress=False)
    keys = zoo.train_ray(entries, cache_dir=there, progress=False)
    assert sorted(keys) == sorted(e.config.key() for e in entries)
    assert sorted(p.name for p in there.iterdir() if p.is_dir()) == \
        sorted(p.name for p in here.iterdir() if p.is_dir())
    for entry in entries:
        (weights, history), (ray_weights, ray_history) = stored(entry, here), stored(entry, there)
        assert_same_weights(weights, ray_weights)
        strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
        assert strip(history) == strip(ray_history)
        assert not (cache.entry_dir(entry.config.key(), there) / cache.PROGRESS).exists()
    pgd = entries[2]
    assert "robust_acc" in stored(pgd, there)[1][0]     # the chapters' monitor came along
    assert zoo.train_ray(entries, cache_dir=there, progress=False) == []  # all cached now


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_resumes_from_its_epoch_checkpoint(ray_cluster, tmp_path,
                                                                        one_thread):
    entry, = tiny_entries(("SZEGEDY α=0.5",), epochs=3)
    marker, log = tmp_path / "killed", tmp_path / "epochs.log"

    def die_once_after_epoch_one(epoch, history):
        with open(log, "a") as f:
            f.write(f"{epoch}\n")
        if epoch == 1 and not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies; Ray retries the task

    zoo.train_ray([entry], cache_dir=tmp_path / "ray", progress=False, max_retries=2,
                  on_epoch_end=die_once_after_epoch_one)
    assert marker.exists()
    assert log.read_text().split() == ["1", "2", "3"]   # resumed at epoch 2, not from scratch
    zoo.train_sequential([entry], cache_dir=tmp_path / "plain", progress=False)
    assert_same_weights(stored(entry, tmp_path / "ray")[0], stored(entry, tmp_path / "plain")[0])


@pytest.mark.slow
def test_two_drivers_never_train_the_same_key_twice(ray_cluster, tmp_path, one_thread):
    entry, = tiny_entries(("CE",), epochs=3)
    log = tmp_path / "epochs.log"

    def count(epoch, history):
        with open(log, "a") as f:
            f.write(f"{epoch}\n")

    errors = []

    def run(train):
        try:
            train()
        except Exception as err:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(lambda: zoo.train_ray(
                   [entry], cache_dir=tmp_path, progress=False, on_epoch_end=count),)),
               threading.Thread(target=run, args=(lambda: zoo.train_sequential(
                   [entry], cache_dir=tmp_path, progress=False, on_epoch_end=count),))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    assert sorted(log.read_text().split()) == ["1", "2", "3"]  # one training run, not two
    assert zoo.is_cached(entry.request, tmp_path)


# ------------------------------------------------------------------------------ sharded attacks

@pytest.mark.parametrize("use_ray", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_sharded_battery_equals_the_unsharded_report(use_ray, request, linear, one_thread):
    from tiny_models import blobs

    if use_ray:
        request.getfixturevalue("ray_cluster")
    x, y = blobs(100, seed=7)
    attacks = ("fgsm", "pgd20", "odi")
    whole = evaluate.robustness_report(linear, x, y, 0.15, attacks, seed=3, batch_size=16,
                                       overrides={"odi": dict(restarts=2)})
    parts = robustness.sharded_report(linear, x, y, 0.15, attacks, shards=3, seed=3, batch_size=16,
                                      overrides={"odi": dict(restarts=2)}, use_ray=use_ray)
    assert parts.clean_correct == whole.clean_correct
    assert parts.robust_correct == whole.robust_correct
    assert 0 < whole.robust_acc("pgd20") < whole.clean_acc  # the attacks did something
    assert robustness.sharded.shard_bounds(100, 16, 3) == [(0, 48), (48, 80), (80, 100)]


def test_a_shard_counts_no_example_the_model_got_wrong_before_the_attack(linear, monkeypatch):
    # An "attack" that hands back, for every example, an input the model classifies correctly:
    # an example wrong on its clean input must still count as not robust, sharded or not.
    from tiny_models import blobs

    x, y = blobs(60, seed=5)
    y[::4] = (y[::4] + 1) % 10  # mislabelled: the model is wrong on these before any attack
    pool_x, pool_y = blobs(512, seed=9)
    right = attacks.predict(linear, pool_x, 64) == pool_y
    fixer = lambda name, model, x, y, eps, **kw: torch.stack(  # noqa: E731
        [pool_x[right & (pool_y == label)][0] for label in y])
    monkeypatch.setattr(evaluate, "_attack_batched", fixer)
    whole = evaluate.robustness_report(linear, x, y, 0.1, ("fgsm",), batch_size=16)
    parts = robustness.sharded_report(linear, x, y, 0.1, ("fgsm",), shards=2, batch_size=16)
    assert not all(whole.clean_correct)  # some examples start wrong
    assert parts.robust_correct == whole.robust_correct
    assert all(c or not r for c, r in zip(parts.clean_correct, parts.robust_correct["fgsm"]))


def test_shards_must_start_on_batch_boundaries(linear):
    from tiny_models import blobs

    x, y = blobs(8, seed=1)
    with pytest.raises(ValueError, match="first_index"):
        evaluate._attack_batched("fgsm", linear, x, y, 0.1, seed=0, batch_size=4, overrides={},
                                 progress=False, first_index=2)


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", "no Ray cluster answers"), ("ray://127.0.0.1:1", "no Ray cluster answers"),
    ("headnode", "host:port"), ("127.0.0.1:99999", "port 1-65535"), (":6379", "host:port"),
])
@pytest.mark.timeout(120)  # ray.init alone retries an unreachable head for minutes
def test_an_unreachable_or_malformed_ray_address_is_refused_at_once(address, message, capsys):
    with pytest.raises(ValueError, match=message):
        zoo.cluster.check_ray_address(address, timeout=2.0)
    assert cli.main(["zoo", "train", "--ray", address, "--limit", "1"]) == 2
    assert message in capsys.readouterr().err
