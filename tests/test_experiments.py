"""lsnotes.zoo.book: the model zoo every chapter shares, its profiles, and results as data."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch

import lsnotes
from lsnotes import data, train
from lsnotes.losses import LS_METHODS
from lsnotes.zoo import book
from lsnotes.data import DATASETS
from lsnotes.models import MODELS

FASHION_MNIST = data.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz"


@pytest.mark.parametrize("profile", sorted(book.SETTINGS))
def test_every_profile_names_a_model_that_fits_its_dataset(profile):
    s = book.setting(profile)
    assert s.dataset in DATASETS and s.model in MODELS
    assert s.eps in s.eps_grid and s.eps_grid == tuple(sorted(s.eps_grid)) and s.eps_grid[0] == 0
    assert all(0 < a <= 1 for a in s.alpha_grid)
    assert s.eval_size >= 1 and s.at_steps >= 1 and s.epochs >= 1 and s.at_epochs >= 1
    # The same constructor the trainer uses, on a batch of the dataset's shape: one logit a class.
    model = train._empty_model(book.config(profile)).eval()
    info = DATASETS[s.dataset]
    with torch.no_grad():
        logits = model(torch.rand(2, *info.shape))
    assert logits.shape == (2, info.num_classes)


def test_the_same_request_names_the_same_cache_entry_on_any_device():
    first = book.config("quick", "szegedy", 0.5, device="cpu")
    again = book.config("quick", "szegedy", 0.5, device="auto")
    assert first.key() == again.key()
    assert book.config("quick", "szegedy", 0.9).key() != first.key()
    assert book.config("quick", "szegedy", 0.5, seed=1).seed == 1  # (a seed is in the key)


def test_adversarial_training_takes_the_profile_budget_steps_and_epochs():
    for profile in book.SETTINGS:
        s = book.setting(profile)
        cfg = book.config(profile, adversarial="pgd")
        assert (cfg.eps, cfg.attack_steps, cfg.epochs) == (s.eps, s.at_steps, s.at_epochs)
        assert book.config(profile).epochs == s.epochs


def test_overrides_change_only_what_they_name():
    base = book.config("quick", "als", 0.1)
    small = book.config("quick", "als", 0.1, train_size=64, epochs=1)
    assert (small.train_size, small.epochs) == (64, 1)
    assert {k: v for k, v in small.to_dict().items() if k not in ("train_size", "epochs")} == \
        {k: v for k, v in base.to_dict().items() if k not in ("train_size", "epochs")}
    assert book.with_overrides("quick", eps=0.05).eps == 0.05
    assert book.setting("quick").eps != 0.05  # the shared setting is untouched


@pytest.mark.parametrize("call", [
    lambda: book.setting("fast"),
    lambda: book.config("fast"),
    lambda: book.save_results("ch", "fast", {}, seed=0, device="cpu"),
    lambda: book.load_results("ch", "fast"),
])
def test_an_unknown_profile_is_refused_by_name(call):
    with pytest.raises(ValueError, match="profile must be one of 'quick', 'full'; got 'fast'"):
        call()


def test_results_are_saved_as_data_with_versions_seed_and_device(tmp_path):
    assert book.load_results("gradient_masking", "full", results_dir=tmp_path) is None
    path = book.save_results("gradient_masking", "full", {"pgd20": {"CE": 0.21}},
                                    seed=3, device="cpu", results_dir=tmp_path)
    assert path == tmp_path / "full" / "gradient_masking.json"
    stored = json.loads(path.read_text())
    assert stored == book.load_results("gradient_masking", "full", results_dir=tmp_path)
    assert stored["results"] == {"pgd20": {"CE": 0.21}}
    assert (stored["seed"], stored["device"], stored["profile"]) == (3, "cpu", "full")
    assert {"torch", "lsnotes", "python"} <= set(stored["versions"])
    assert stored["setting"]["dataset"] == book.setting("full").dataset
    assert not list(path.parent.glob("*.tmp*"))  # the atomic write left nothing behind


def test_full_results_live_in_the_repository_and_quick_ones_in_the_build():
    full = book._results_path("ch", "full")
    quick = book._results_path("ch", "quick")
    checkout = Path(lsnotes.__file__).resolve().parent.parent
    assert full == checkout / "book" / "results" / "full" / "ch.json"
    assert quick == checkout / "_build" / "results" / "quick" / "ch.json"


def test_saving_results_leaves_the_package_fingerprint_alone(tmp_path, monkeypatch):
    # results written inside lsnotes/ once changed the fingerprint, so every build re-executed
    from lsnotes import result_cache

    before = result_cache.package_fingerprint()
    path = book.save_results("ch", "quick", {"x": 1.0}, seed=0, device="cpu")
    try:
        assert Path(lsnotes.__file__).resolve().parent not in path.resolve().parents
        assert result_cache.package_fingerprint() == before
    finally:
        path.unlink()


@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="Debian dataset-fashion-mnist not installed")
def test_every_chapter_scores_the_same_class_balanced_examples():
    x, y = book.eval_examples("quick", n=50, device="cpu")
    again, y_again = book.eval_examples("quick", n=50, device="cpu")
    assert torch.equal(x, again) and torch.equal(y, y_again)
    assert x.shape == (50, *DATASETS["fashion-mnist"].shape) and 0 <= x.min() and x.max() <= 1
    assert torch.bincount(y, minlength=10).tolist() == [5] * 10
    other, _ = book.eval_examples("quick", n=50, seed=1, device="cpu")
    assert not torch.equal(x, other)


@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="Debian dataset-fashion-mnist not installed")
def test_a_zoo_model_is_trained_once_then_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNOTES_CACHE", str(tmp_path))
    tiny = dict(train_size=64, test_size=32, epochs=1, device="cpu")
    first = book.trained("quick", "szegedy", 0.5, **tiny)
    second = book.trained("quick", "szegedy", 0.5, **tiny)
    assert not first.from_cache and second.from_cache
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    robust = book.trained("quick", adversarial="pgd", **tiny)
    assert all("robust_acc" in epoch for epoch in robust.history)


# ------------------------------------------------------------------------------ papers' settings

QUICK_REQUESTS = {  # what the chapters asked the zoo for before chapter_models existed
    "training_with_ls": [("ce", 0.0, 1.0, "none")] + [
        (m, a, 1.0, "none") for m in LS_METHODS for a in (0.1, 0.5, 0.9)] + [
        ("bls", 0.5, t, "none") for t in (0.1, 10.0)] + [("ce", 0.0, 1.0, "fgsm")],
    "classic_attacks": [("ce", 0.0, 1.0, "none")] + [
        (m, a, 1.0, "none") for m in LS_METHODS for a in (0.1, 0.5, 0.9)] + [
        ("ce", 0.0, 1.0, "fgsm")],
    "gradient_masking": [("ce", 0.0, 1.0, "none"), ("szegedy", 0.9, 1.0, "none"),
                         ("ce", 0.0, 1.0, "pgd"), ("ce", 0.0, 1.0, "trades"),
                         ("szegedy", 0.1, 1.0, "none"), ("szegedy", 0.5, 1.0, "none")],
    "soft_labels_at": [("ce", 0.0, 1.0, "pgd"), ("ce", 0.0, 1.0, "sglr")],
}


@pytest.mark.parametrize("chapter", sorted(QUICK_REQUESTS))
def test_quick_chapter_models_keep_the_cache_keys_the_chapters_used(chapter):
    nested = book.chapter_models(chapter, "quick", seed=0, device="cpu")
    assert list(nested) == ["quick"]
    expected = [book.config("quick", m, a, temperature=t, adversarial=adv, device="cpu").key()
                for m, a, t, adv in QUICK_REQUESTS[chapter]]
    assert [c.key() for c in nested["quick"].values()] == expected
    # the keys are pinned: a change to the quick setting or to TrainConfig would retrain the zoo
    assert book.config("quick", "szegedy", 0.5).key() == \
        "fashion-mnist-cnn4-szegedy-none-f0c821c31afd7df94113"


def test_the_checklist_asks_for_every_model_the_other_chapters_train():
    union = {c.key() for ch in QUICK_REQUESTS for c in book.chapter_models(ch)["quick"].values()}
    checklist = book.chapter_models("evaluation_checklist")["quick"]
    assert [c.key() for c in checklist.values()] == list(dict.fromkeys(
        c.key() for ch in QUICK_REQUESTS for c in book.chapter_models(ch)["quick"].values()))
    assert len(union) == 22


def test_each_paper_has_its_own_full_settings():
    names = [s.name for s in book.settings("full")]
    assert len(names) == len(set(names)) == 7
    assert book.settings("quick", "fu") == (book.QUICK,)
    goibert = book.settings("full", "goibert")
    assert [(s.dataset, s.model) for s in goibert] == [
        ("mnist", "linear"), ("mnist", "lenet"), ("cifar10", "lenet"), ("cifar10", "resnet18"),
        ("svhn", "lenet")]
    assert all(s.methods == ("sls", "als", "bls", "sbls") and s.notes for s in goibert)
    fgsm_at = book.chapter_models("classic_attacks", "full")["goibert-mnist-lenet"]["FGSM-AT"]
    assert fgsm_at.adversarial == "fgsm" and fgsm_at.eps == 0.1 and fgsm_at.model == "lenet"
    fu, = book.settings("full", "fu")
    assert (fu.dataset, fu.model, fu.eps, fu.ls_alpha) == ("cifar10", "wrn34_10", 8 / 255, 0.9)
    assert fu.alpha_grid == tuple(a / 10 for a in range(1, 10))
    models = book.chapter_models("gradient_masking", "full")["fu-cifar10-wrn34-10"]
    assert {"CE", "LS α=0.9", "PGD-AT", "TRADES"} <= set(models) and len(models) == 12
    madry, trades = models["PGD-AT"], models["TRADES"]
    assert (madry.epochs, madry.attack_steps, madry.step_size, madry.weight_decay) == \
        (205, 10, 2 / 255, 2e-4)
    assert (trades.epochs, trades.step_size, trades.trades_beta) == (80, 0.007, 6.0)


def test_yu_et_al_setting_and_trades_sglr():
    models = book.chapter_models("soft_labels_at", "full")["yu-cifar10-resnet18"]
    assert list(models) == ["PGD-AT", "SGLR", "TRADES", "TRADES+SGLR"]
    for cfg in models.values():
        assert (cfg.dataset, cfg.model, cfg.epochs, cfg.batch_size, cfg.lr, cfg.schedule) == \
            ("cifar10", "resnet18", 200, 128, 0.1, "piecewise")
        assert (cfg.eps, cfg.attack_steps, cfg.step_size) == (8 / 255, 10, 2 / 255)
    assert models["SGLR"].sglr_start_epoch == models["TRADES+SGLR"].sglr_start_epoch == 91
    assert [train.scheduled_lr("piecewise", 0.1, e * 391, 200 * 391) for e in (99, 100, 149, 150)] \
        == [0.1, pytest.approx(0.01), pytest.approx(0.01), pytest.approx(0.001)]
    requests = book.requests("soft_labels_at", "full")
    assert all(r.keep_best and r.eval_robust for r in requests)
    assert not any(r.keep_best for r in book.requests("soft_labels_at", "quick"))


def test_fu_table3_attack_settings_exactly_and_quick_differences_named():
    from lsnotes import attacks

    full = book.attack_settings("full", "fu")
    assert full["multitargeted"] == dict(steps=20, restarts=18)
    assert full["odi"] == dict(steps=20, restarts=20)
    assert [full[f"pgd{k}"]["steps"] for k in (10, 20, 40)] == [10, 20, 40]
    assert full["autoattack"] == dict(version="standard") and full["fgsm"] == {}
    assert book.attack_setting_notes("full", "fu") == {}
    quick = book.attack_settings("quick", "fu")
    notes = book.attack_setting_notes("quick", "fu")
    differing = {name for name in full if quick[name] != full[name]}
    assert differing == set(notes) == {"multitargeted", "odi", "autoattack"}
    for profile in ("quick", "full"):
        for paper in book.PAPERS:
            for name, overrides in book.attack_settings(profile, paper).items():
                accepted = set(inspect.signature(attacks.ATTACKS[name].accepts).parameters)
                assert set(overrides) <= accepted, (name, overrides)
    assert book.attack_settings("full", "yu") == {"pgd20": dict(steps=20),
                                                         "autoattack": dict(version="standard")}


@pytest.mark.parametrize("chapter, paper, request_", [
    ("gradient_masking", "fu", dict(adversarial="trades")),
    ("soft_labels_at", "yu", dict(adversarial="trades_sglr")),
    ("classic_attacks", "goibert", dict(adversarial="fgsm")),
    ("training_with_ls", "goibert", dict(method="als", alpha=0.5)),
])
def test_each_chapter_runs_on_its_papers_setting_and_asks_for_what_the_zoo_trained(
        chapter, paper, request_):
    for setup in book.settings("full", paper):
        s = book.chapter_setting(chapter, "full", None if setup is book.settings(
            "full", paper)[0] else setup.name)
        assert s == setup
        # What the chapter asks for with setting=s is a model `lsnotes zoo train` trained.
        key = book.config("full", setting=s, **request_).key()
        planned = book.chapter_models(chapter, "full")[s.name].values()
        assert key in {c.key() for c in planned}, (chapter, s.name)
    assert book.chapter_setting(chapter, "quick") is book.QUICK
    with pytest.raises(ValueError, match="setup must be one of"):
        book.chapter_setting(chapter, "full", "cifar100")


@pytest.mark.parametrize("call, match", [
    (lambda: book.settings("full", "smith"), "paper must be one of"),
    (lambda: book.chapter_models("toy_problem"), "chapter must be one of"),
    (lambda: book.config("full", setting="nowhere"), "setting must be one of"),
    (lambda: book.attack_settings("fast"), "profile must be one of"),
])
def test_bad_names_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="Debian dataset-fashion-mnist not installed")
def test_best_and_last_checkpoints_are_both_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNOTES_CACHE", str(tmp_path))
    tiny = dict(train_size=64, test_size=32, epochs=3, device="cpu")
    cfg = book.config("quick", adversarial="trades_sglr", **tiny)
    assert cfg.sglr_start_epoch == book.sglr_start_epoch(4) == 3  # from the profile's epochs
    result = train.train_or_load(cfg, progress=False, eval_robust=True, keep_best=True)
    best = book.best_checkpoint(cfg)
    accs = [r["robust_acc"] for r in result.history]
    assert best.best["epoch"] == 1 + accs.index(max(accs)) and best.best["robust_acc"] == max(accs)
    assert best.history == result.history
    if best.best["epoch"] != 3:  # then the kept weights are an earlier epoch's, not the last
        assert any(not torch.equal(a, b) for a, b in zip(best.model.state_dict().values(),
                                                         result.model.state_dict().values()))
