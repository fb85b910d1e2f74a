"""TrainConfig validation, the inner attack, every adversarial mode, determinism, accuracy, CLI."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lsnotes import cache, cli
from lsnotes import train as train_lib
from lsnotes.attacks import maximise_in_ball, pgd
from lsnotes.metrics import accuracy, robust_accuracy
from lsnotes.train import TrainConfig, scheduled_lr, train, train_or_load
from lsnotes.train_config import ADVERSARIAL_MODES

TINY = dict(model="linear", train_size=200, test_size=100, epochs=2, batch_size=50, device="cpu")


@pytest.mark.parametrize("bad, match", [
    ({"dataset": "imagenet"}, "dataset"), ({"model": "vgg"}, "model"), ({"method": "xls"}, "method"),
    ({"alpha": 1.5}, "alpha"), ({"alpha": -0.1}, "alpha"), ({"eps": -0.1}, "eps"),
    ({"epochs": 0}, "epochs"), ({"adversarial": "pgd", "eps": 0.0}, "eps must be > 0"),
    ({"adversarial": "free"}, "adversarial"), ({"optimizer": "lbfgs"}, "optimizer"),
    ({"schedule": "step"}, "schedule"), ({"temperature": 0}, "temperature"),
    ({"adversarial": "sglr", "eps": 0.1, "method": "als"}, "sglr"), ({"device": "tpu"}, "device"),
    ({"train_size": 3}, "train_size"), ({"batch_size": 2.5}, "batch_size"),
    ({"sglr_momentum": 1.0}, "sglr_momentum"), ({"lr": math.inf}, "lr"), ({"lr": math.nan}, "lr"),
    ({"weight_decay": math.inf}, "weight_decay"), ({"device": "cpu:abc"}, "device"),
    ({"device": "auto:0"}, "device"), ({"trades_beta": math.inf}, "trades_beta"),
    ({"temperature": math.inf}, "temperature"), ({"seed": -1}, "seed"),
])
def test_bad_configs_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_config_round_trip_and_key():
    config = TrainConfig(method="als", alpha=0.1, adversarial="pgd", eps=0.1)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.key() == TrainConfig.from_dict(config.to_dict()).key()
    assert config.key() != dataclasses.replace(config, alpha=0.2).key()
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({**config.to_dict(), "colour": "red"})
    assert config.step_size == pytest.approx(2.5 * 0.1 / 10)


def test_schedules():
    assert scheduled_lr("constant", 0.1, 50, 100) == 0.1
    assert scheduled_lr("cosine", 0.1, 0, 100) == 0.1 and scheduled_lr("cosine", 0.1, 100, 100) < 1e-12
    onecycle = [scheduled_lr("onecycle", 0.1, s, 100) for s in range(100)]
    assert max(onecycle) == pytest.approx(0.1) and onecycle[0] == 0 and onecycle[-1] < 0.002
    assert [scheduled_lr("piecewise", 1.0, s, 100) for s in (0, 60, 90)] == [1.0, 0.1, 0.01]


def test_pgd_stays_in_the_ball_and_raises_the_loss():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, y = torch.rand(20, 1, 4, 4), torch.randint(0, 3, (20,))
    loss = lambda logits: torch.nn.functional.cross_entropy(logits, y)
    x_adv = maximise_in_ball(model, x, loss, 0.1, 5, 0.03, True, torch.Generator().manual_seed(0))
    assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6 and 0 <= float(x_adv.min()) <= float(x_adv.max()) <= 1
    with torch.no_grad():
        assert float(loss(model(x_adv))) > float(loss(model(x)))


def test_inner_maximiser_matches_the_evaluation_pgd_from_the_same_start():
    # The trainer's bookkeeping-free ascent and attacks.pgd's final iterate take the same steps.
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(),
                                torch.nn.Linear(8, 3)).eval()
    x, y = torch.rand(32, 1, 4, 4), torch.randint(0, 3, (32,))
    loss = lambda logits: torch.nn.functional.cross_entropy(logits, y)
    ours = maximise_in_ball(model, x, loss, 0.1, 7, 0.02, False, None)
    reference = pgd(model, x, y, 0.1, steps=7, step_size=0.02, random_start=False, keep_best=False)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ADVERSARIAL_MODES)
def test_every_adversarial_mode_trains(mode, tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 2}, adversarial=mode, eps=0.0 if mode == "none" else 0.1,
                         attack_steps=2, sglr_start_epoch=2,
                         method="ce" if mode in ("sglr", "trades_sglr") else "als", alpha=0.1)
    kept = {}
    result = train(config, progress=False, eval_robust=True, checkpoint_dir=tmp_path,
                   on_epoch_end=lambda epoch, history: kept.update(epoch=epoch))
    assert kept["epoch"] == 2 and [h["epoch"] for h in result.history] == [1, 2]
    assert all(math.isfinite(h["loss"]) and 0 <= h["robust_acc"] <= h["test_acc"] + 0.2
               for h in result.history)
    soft = cache.load_checkpoint(tmp_path, config.key())["soft_labels"]
    if mode in ("sglr", "trades_sglr"):  # refined labels: still distributions, no longer one-hot
        assert torch.allclose(soft.sum(1), torch.ones(len(soft)), atol=1e-5)
        assert float(soft.max(1).values.min()) < 1.0
    else:
        assert soft is None


def test_same_config_gives_bit_identical_weights():
    config = TrainConfig(**TINY, adversarial="fgsm_rs", eps=0.1)
    first = train(config, progress=False).model.state_dict()
    second = train(config, progress=False).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    third = train(dataclasses.replace(config, seed=1), progress=False).model.state_dict()
    assert not all(torch.equal(first[k], third[k]) for k in first)


@pytest.mark.slow
def test_short_run_is_well_above_chance():
    config = TrainConfig(model="mlp", method="sls", alpha=0.1, train_size=2000, test_size=1000,
                         epochs=2, batch_size=64, lr=0.05, device="cpu")
    history = train(config, progress=False).history
    assert history[-1]["test_acc"] > 0.6, history


def test_train_rejects_a_non_config():
    with pytest.raises(ValueError, match="TrainConfig"):
        train({"model": "mlp"})


def test_cli_trains_then_loads(tmp_path, capsys):
    argv = ["train", "--model", "linear", "--method", "bls", "--alpha", "0.1", "--epochs", "1",
            "--train-size", "100", "--test-size", "50", "--device", "cpu", "--quiet",
            "--cache-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("trained: ") and "test_acc=" in out and str(tmp_path) in out
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.startswith("loaded from cache: ")
    assert cli.main(argv[:-2] + ["--alpha", "2"]) == 2
    assert "alpha" in capsys.readouterr().err


def test_the_cache_key_ignores_the_device_but_not_what_is_trained():
    base = TrainConfig(**TINY)
    assert TrainConfig(**{**TINY, "device": "cpu"}).key() == base.key()
    assert TrainConfig(**{**TINY, "seed": base.seed + 1}).key() != base.key()


def test_train_or_load_adds_the_robust_monitor_when_asked(tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 1})
    plain = train_or_load(config, progress=False, cache_dir=tmp_path)
    assert "robust_acc" not in plain.history[0]
    monitored = train_or_load(config, progress=False, cache_dir=tmp_path, eval_robust=True)
    assert not monitored.from_cache and "robust_acc" in monitored.history[0]
    for name, tensor in plain.model.state_dict().items():
        assert torch.equal(tensor, monitored.model.state_dict()[name]), name
    again = train_or_load(config, progress=False, cache_dir=tmp_path, eval_robust=True)
    assert again.from_cache and "robust_acc" in again.history[0]


# What makes a CUDA stream wait for the host: every way a tensor's value reaches Python.
SYNCING = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")


@pytest.mark.parametrize("mode", ADVERSARIAL_MODES)
def test_the_training_step_checks_its_first_batch_then_never_waits_for_the_device(mode, monkeypatch):
    # two epochs, so that SGLR's refined labels (from epoch 2) are on the path too
    config = TrainConfig(**TINY, adversarial=mode, eps=0.0 if mode == "none" else 0.1,
                         attack_steps=2, sglr_start_epoch=2, method="ce" if "sglr" in mode else "als",
                         alpha=0.1)
    trainer = train_lib._Trainer(config, progress=False)
    syncs_per_step, inside = [], []

    def counting(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            if inside:
                syncs_per_step[-1] += 1
            return original(self, *args, **kwargs)
        return wrapper

    for name in SYNCING:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    step_loss = trainer.step_loss

    def counted_step_loss(*args):
        syncs_per_step.append(0)
        inside.append(True)
        try:
            return step_loss(*args)
        finally:
            inside.clear()

    monkeypatch.setattr(trainer, "step_loss", counted_step_loss)
    bar = type("Bar", (), {"update": lambda self, n: None})()
    for epoch in (1, 2):
        trainer.run_epoch(epoch, bar)
    assert len(syncs_per_step) == 2 * len(trainer.loader) == 8
    assert syncs_per_step[0] >= 1                  # the first batch is checked in full
    assert syncs_per_step[1:] == [0] * 7


def test_a_diverging_run_is_stopped_with_a_clear_error():
    with pytest.raises(ValueError, match="diverged"):
        train(TrainConfig(**{**TINY, "epochs": 1}, lr=1e30, schedule="constant"), progress=False)


class FailsInEvalMode(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 3)

    def forward(self, x):
        if not self.training:
            raise RuntimeError("boom")
        return self.layer(x)


@pytest.mark.parametrize("measure", [lambda m, x, y: accuracy(m, x, y),
                                     lambda m, x, y: robust_accuracy(m, x, y, 0.1, steps=1)])
def test_accuracy_restores_the_mode_when_the_model_fails(measure):
    model = FailsInEvalMode().train()
    with pytest.raises(RuntimeError, match="boom"):
        measure(model, torch.rand(5, 4), torch.zeros(5, dtype=torch.long))
    assert model.training


def test_accuracy_takes_int32_labels_and_refuses_bad_input():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    x, y = torch.rand(6, 4), torch.randint(0, 3, (6,))
    assert accuracy(model, x, y.int()) == accuracy(model, x, y)
    assert robust_accuracy(model, x, y.int(), 0.1, steps=2) == robust_accuracy(model, x, y, 0.1, steps=2)
    for call, name in [(lambda: accuracy(model, x, y.float()), "y"),
                       (lambda: accuracy(model, x[:0], y[:0]), "x"),
                       (lambda: accuracy(model, x, y, batch_size=0), "batch_size"),
                       (lambda: robust_accuracy(model, x, y, math.inf), "eps"),
                       (lambda: robust_accuracy(model, x, y, 0.1, seed=-1), "seed")]:
        with pytest.raises(ValueError, match=name):
            call()


def test_correct_is_per_example_and_matches_accuracy_across_batches():
    from lsnotes.metrics import correct

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).train()
    x = torch.rand(7, 4)
    y = model.eval()(x).argmax(1)
    y[[1, 4]] = (y[[1, 4]] + 1) % 3          # two examples made wrong on purpose
    model.train()
    right = correct(model, x, y, batch_size=3)
    assert right.tolist() == [True, False, True, True, False, True, True]
    assert model.training and accuracy(model, x, y, batch_size=2) == 5 / 7
    with pytest.raises(ValueError, match="batch_size"):
        correct(model, x, y, batch_size=0)


@pytest.mark.parametrize("argv, message", [
    (["--device", "cpu:abc"], "device"),
    (["--device", "cuda:99"], "device='cuda:99'"),       # a GPU this machine does not have
    (["--lr", "inf"], "lr"),
    (["--dataset", "mnist"], "dataset 'mnist'"),       # not on disk: FileNotFoundError, one line
])
def test_cli_train_refuses_bad_input_in_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LSNOTES_DATA", str(tmp_path))
    monkeypatch.setenv("LSNOTES_CACHE", str(tmp_path / "cache"))
    code = cli.main(["train", "--model", "linear", "--epochs", "1", "--quiet", *argv])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("lsnotes train: error: ") and error.count("\n") == 1
    assert message in error


def test_numbers_must_be_finite_and_devices_well_formed():
    from lsnotes import checks

    for value in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError, match="^lr must be a finite number"):
            checks.number_in("lr", value, 0, math.inf, low_open=True)
    assert checks.non_negative_int("seed", 0) == 0
    with pytest.raises(ValueError, match="^seed must be an integer >= 0"):
        checks.non_negative_int("seed", -1)
    assert checks.check_device("cuda:1") == "cuda:1" and checks.resolve_device("cpu:0") == "cpu:0"
    for bad in ("cpu:abc", "cuda:", "auto:0", "gpu", "cuda:-1"):
        with pytest.raises(ValueError, match="^device "):
            checks.resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch.cuda.is_available"):
            checks.resolve_device("cuda:0")
