"""lsnotes.experiments: the model zoo every chapter shares, its profiles, and results as data."""

from __future__ import annotations

import json

import pytest
import torch

from lsnotes import data, experiments, train
from lsnotes.data import DATASETS
from lsnotes.models import MODELS

FASHION_MNIST = data.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz"


@pytest.mark.parametrize("profile", sorted(experiments.SETTINGS))
def test_every_profile_names_a_model_that_fits_its_dataset(profile):
    s = experiments.setting(profile)
    assert s.dataset in DATASETS and s.model in MODELS
    assert s.eps in s.eps_grid and s.eps_grid == tuple(sorted(s.eps_grid)) and s.eps_grid[0] == 0
    assert all(0 < a <= 1 for a in s.alpha_grid)
    assert s.eval_size >= 1 and s.at_steps >= 1 and s.epochs >= 1 and s.at_epochs >= 1
    # The same constructor the trainer uses, on a batch of the dataset's shape: one logit a class.
    model = train._empty_model(experiments.config(profile)).eval()
    info = DATASETS[s.dataset]
    with torch.no_grad():
        logits = model(torch.rand(2, *info.shape))
    assert logits.shape == (2, info.num_classes)


def test_the_same_request_names_the_same_cache_entry_on_any_device():
    first = experiments.config("quick", "szegedy", 0.5, device="cpu")
    again = experiments.config("quick", "szegedy", 0.5, device="auto")
    assert first.key() == again.key()
    assert experiments.config("quick", "szegedy", 0.9).key() != first.key()
    assert experiments.config("quick", "szegedy", 0.5, seed=1).seed == 1  # (a seed is in the key)


def test_adversarial_training_takes_the_profile_budget_steps_and_epochs():
    for profile in experiments.SETTINGS:
        s = experiments.setting(profile)
        cfg = experiments.config(profile, adversarial="pgd")
        assert (cfg.eps, cfg.attack_steps, cfg.epochs) == (s.eps, s.at_steps, s.at_epochs)
        assert experiments.config(profile).epochs == s.epochs


def test_overrides_change_only_what_they_name():
    base = experiments.config("quick", "als", 0.1)
    small = experiments.config("quick", "als", 0.1, train_size=64, epochs=1)
    assert (small.train_size, small.epochs) == (64, 1)
    assert {k: v for k, v in small.to_dict().items() if k not in ("train_size", "epochs")} == \
        {k: v for k, v in base.to_dict().items() if k not in ("train_size", "epochs")}
    assert experiments.with_overrides("quick", eps=0.05).eps == 0.05
    assert experiments.setting("quick").eps != 0.05  # the shared setting is untouched


@pytest.mark.parametrize("call", [
    lambda: experiments.setting("fast"),
    lambda: experiments.config("fast"),
    lambda: experiments.save_results("ch", "fast", {}, seed=0, device="cpu"),
    lambda: experiments.load_results("ch", "fast"),
])
def test_an_unknown_profile_is_refused_by_name(call):
    with pytest.raises(ValueError, match="profile must be one of 'quick', 'full'; got 'fast'"):
        call()


def test_results_are_saved_as_data_with_versions_seed_and_device(tmp_path):
    assert experiments.load_results("gradient_masking", "full", results_dir=tmp_path) is None
    path = experiments.save_results("gradient_masking", "full", {"pgd20": {"CE": 0.21}},
                                    seed=3, device="cpu", results_dir=tmp_path)
    assert path == tmp_path / "full" / "gradient_masking.json"
    stored = json.loads(path.read_text())
    assert stored == experiments.load_results("gradient_masking", "full", results_dir=tmp_path)
    assert stored["results"] == {"pgd20": {"CE": 0.21}}
    assert (stored["seed"], stored["device"], stored["profile"]) == (3, "cpu", "full")
    assert {"torch", "lsnotes", "python"} <= set(stored["versions"])
    assert stored["setting"]["dataset"] == experiments.setting("full").dataset
    assert not list(path.parent.glob("*.tmp*"))  # the atomic write left nothing behind


def test_full_results_live_in_the_repository_and_quick_ones_in_the_build():
    full = experiments._results_path("ch", "full")
    quick = experiments._results_path("ch", "quick")
    assert full.parts[-4:] == ("book", "results", "full", "ch.json")
    assert quick.parts[-4:] == ("_build", "results", "quick", "ch.json")


@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="Debian dataset-fashion-mnist not installed")
def test_every_chapter_scores_the_same_class_balanced_examples():
    x, y = experiments.eval_examples("quick", n=50, device="cpu")
    again, y_again = experiments.eval_examples("quick", n=50, device="cpu")
    assert torch.equal(x, again) and torch.equal(y, y_again)
    assert x.shape == (50, *DATASETS["fashion-mnist"].shape) and 0 <= x.min() and x.max() <= 1
    assert torch.bincount(y, minlength=10).tolist() == [5] * 10
    other, _ = experiments.eval_examples("quick", n=50, seed=1, device="cpu")
    assert not torch.equal(x, other)


@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="Debian dataset-fashion-mnist not installed")
def test_a_zoo_model_is_trained_once_then_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNOTES_CACHE", str(tmp_path))
    tiny = dict(train_size=64, test_size=32, epochs=1, device="cpu")
    first = experiments.trained("quick", "szegedy", 0.5, **tiny)
    second = experiments.trained("quick", "szegedy", 0.5, **tiny)
    assert not first.from_cache and second.from_cache
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    robust = experiments.trained("quick", adversarial="pgd", **tiny)
    assert all("robust_acc" in epoch for epoch in robust.history)
