"""Robustness reports, gradient-masking diagnostics and the ``lsnotes attack`` command."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lsnotes import attacks, robustness
from lsnotes.robustness import diagnostics
from audit_models import Quantised
from tiny_models import blobs, trained_linear



@pytest.fixture(scope="module")
def data():
    return blobs(32, seed=2)


def test_report_accuracies_match_the_attacks_run_directly(linear, data):
    x, y = data
    eps = 0.15
    report = robustness.robustness_report(linear, x, y, eps, ("fgsm", "pgd10"), seed=3,
                                        batch_size=12, model_name="linear", architecture="Linear")
    assert report.n_examples == len(x)
    assert report.clean_acc == (linear(x).argmax(1) == y).float().mean().item()
    # the report batches by 12 but each attack is per-example, so the numbers agree for fgsm
    direct = attacks.run_attack("fgsm", linear, x, y, eps)
    assert report.robust_correct["fgsm"] == (linear(direct).argmax(1) == y).tolist()
    accs = report.accuracies()
    assert accs["worst case"] <= min(accs["fgsm"], accs["pgd10"], accs["clean"])
    assert accs["pgd10"] < accs["clean"]
    expected_worst = [c and f and p for c, f, p in zip(report.clean_correct,
                                                       report.robust_correct["fgsm"],
                                                       report.robust_correct["pgd10"])]
    assert report.worst_case_correct == expected_worst


def test_report_is_reproducible(linear, data):
    x, y = data
    runs = [robustness.robustness_report(linear, x, y, 0.15, ("pgd10",), seed=s).robust_correct
            for s in (0, 0)]
    assert runs[0] == runs[1]


def test_report_serialises_in_robustbench_shape(linear, data, tmp_path):
    x, y = data
    source = trained_linear(seed=5)
    report = robustness.robustness_report(linear, x, y, 0.15, ("fgsm",), source_model=source,
                                        model_name="linear", architecture="Linear",
                                        dataset="blobs")
    info = json.loads(report.save_json(tmp_path / "sub" / "report.json").read_text())
    for key in ("name", "architecture", "eps", "clean_acc", "autoattack_acc", "threat_model",
                "dataset", "additional_data", "number_forward_passes"):
        assert key in info
    assert info["autoattack_acc"] is None            # not run, so not claimed
    assert info["clean_acc"] == f"{100 * report.clean_acc:.2f}"
    extra = info["extra"]
    assert set(extra["attacks"]) == {"fgsm", "transfer:pgd20"}
    assert extra["n_examples"] == len(x) and extra["seed"] == 0
    assert {"torch", "lsnotes", "autoattack"} <= set(extra["versions"])
    assert len(extra["per_example"]["fgsm"]) == len(x)
    table = report.table()
    assert "transfer:pgd20" in table and "worst case" in table and table.count("\n") >= 5
    assert "fgsm" in report.table(fmt="text")


@pytest.mark.parametrize("kwargs, message", [
    (dict(attacks=("pgd7",)), "attack"),
    (dict(eps=-1.0), "eps"),
    (dict(attacks=("fgsm",), overrides={"pgd20": {"steps": 3}}), "overrides"),
    (dict(attacks=("pgd10",), overrides={"pgd10": {"stepz": 3}}), "stepz"),
    (dict(attacks=()), "at least one"),
])
def test_report_rejects_bad_arguments(kwargs, message, linear, data):
    x, y = data
    args = dict(eps=0.1, attacks=("fgsm",))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        robustness.robustness_report(linear, x, y, args.pop("eps"), args.pop("attacks"), **args)


def test_diagnostics_find_nothing_on_a_plain_linear_model(linear, data):
    x, y = data
    diagnostics = robustness.gradient_masking_diagnostics(linear, x, y, 0.1, square_queries=200,
                                                        restarts=2, sweep_points=3)
    assert diagnostics.verdict == "no masking symptoms found", diagnostics.table()
    assert diagnostics.eps_sweep[0.5] <= 0.05
    assert len(diagnostics.symptoms) == 4


def test_diagnostics_name_the_symptoms_of_a_quantised_model(linear, data):
    x, y = data
    masked = Quantised(linear)
    diagnostics = robustness.gradient_masking_diagnostics(masked, x, y, 0.15, square_queries=200,
                                                        restarts=2, sweep_points=3)
    fired = {s.name for s in diagnostics.triggered}
    assert "black-box or transfer stronger than white-box" in fired, diagnostics.table()
    assert diagnostics.verdict.startswith("gradient-masking symptoms")
    square_symptom = next(s for s in diagnostics.symptoms if s.name.startswith("black-box"))
    assert square_symptom.numbers["square"] < square_symptom.numbers["white_box"]
    stored = diagnostics.to_dict()
    assert json.loads(json.dumps(stored)) == stored    # plain JSON: nothing lost on the way
    assert stored["verdict"] == diagnostics.verdict
    assert [s["triggered"] for s in stored["symptoms"]] == [s.triggered for s in diagnostics.symptoms]


@pytest.mark.parametrize("kwargs, name", [
    (dict(square_queries=0), "square_queries"), (dict(seed=-1), "seed"), (dict(batch_size=0), "batch_size"),
    (dict(black_box="yes"), "black_box"), (dict(eps=1.5), "eps"), (dict(large_eps=2.0), "large_eps"),
])
def test_diagnostics_refuse_bad_settings_before_any_attack_runs(kwargs, name, linear, data, monkeypatch):
    x, y = data
    ran = []
    monkeypatch.setattr(diagnostics, "_attack_batched", lambda name, *a, **k: ran.append(name))
    args = {"eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=f"^{name} "):
        robustness.gradient_masking_diagnostics(linear, x, y, args.pop("eps"), **args)
    assert ran == []


def test_report_refuses_labels_and_images_the_model_cannot_take(linear, data):
    x, y = data
    with pytest.raises(ValueError, match="^y holds class 10"):
        robustness.robustness_report(linear, x, torch.full_like(y, 10), 0.1, ("fgsm",))
    with pytest.raises(ValueError, match="^x must have the model's dtype"):
        robustness.robustness_report(linear, x.double(), y, 0.1, ("fgsm",))
    int32 = robustness.robustness_report(linear, x, y.int(), 0.1, ("fgsm",))
    assert int32.robust_correct == robustness.robustness_report(linear, x, y, 0.1, ("fgsm",)).robust_correct


def fake_training(monkeypatch, model, x, y):
    """Make ``lsnotes attack`` load ``model`` and evaluate on (x, y) without training anything.

    Every command module is imported first: a module first imported while the fakes are in place
    would bind them by ``from lsnotes.train import train_or_load`` and keep them after the test
    (lsnotes.zoo did, and later tests got this tiny model as the zoo's cross-entropy model).
    """
    from lsnotes import cli
    from lsnotes import data as data_lib
    from lsnotes import train as train_lib

    cli.build_parser()

    class Result:
        pass

    result = Result()
    result.model = model
    seen = {}

    def train_or_load(config, progress=True, **kwargs):
        seen["config"] = config
        return result

    monkeypatch.setattr(train_lib, "train_or_load", train_or_load)
    monkeypatch.setattr(data_lib, "load_dataset", lambda name, split="train", **kw: (x, y))
    return seen


def test_cli_attack_writes_a_report(linear, data, tmp_path, monkeypatch, capsys):
    from lsnotes import cli
    from lsnotes.train import TrainConfig

    x, y = data
    seen = fake_training(monkeypatch, linear, x, y)
    out = tmp_path / "report.json"
    config = TrainConfig(epochs=1).to_dict()
    code = cli.main(["attack", "--config", json.dumps(config), "--attacks", "fgsm,pgd10",
                     "--eps", "0.15", "--n", "20", "--out", str(out)])
    assert code == 0
    info = json.loads(out.read_text())
    assert info["extra"]["n_examples"] == 20 and set(info["extra"]["attacks"]) == {"fgsm", "pgd10"}
    assert seen["config"].epochs == 1
    assert "pgd10" in capsys.readouterr().out


def test_cli_attack_finds_a_model_by_cache_key(linear, data, tmp_path, monkeypatch):
    from lsnotes import cli
    from lsnotes.train import TrainConfig

    x, y = data
    seen = fake_training(monkeypatch, linear, x, y)
    monkeypatch.setenv("LSNOTES_CACHE", str(tmp_path))
    config = TrainConfig(epochs=2)
    (tmp_path / config.key()).mkdir()
    (tmp_path / config.key() / "record.json").write_text(json.dumps({"config": config.to_dict()}))
    assert cli.main(["attack", "--config-key", config.key(), "--attacks", "fgsm", "--n", "8"]) == 0
    assert seen["config"] == config
    assert cli.main(["attack", "--config-key", "no-such-key", "--attacks", "fgsm"]) == 2


def test_cli_attack_rejects_unknown_attack(linear, data, monkeypatch, capsys):
    from lsnotes import cli

    fake_training(monkeypatch, linear, *data)
    assert cli.main(["attack", "--config", "{}", "--attacks", "pgd7"]) == 2
    assert "pgd7" in capsys.readouterr().err


def test_the_fake_trainer_leaves_nothing_behind(linear, data, monkeypatch):
    """After a test that fakes training, no lsnotes module still holds the fake."""
    import sys

    from lsnotes import data as data_lib
    from lsnotes import train as train_lib

    with monkeypatch.context() as patch:
        fake_training(patch, linear, *data)
    real = {"train_or_load": train_lib.train_or_load, "load_dataset": data_lib.load_dataset}
    leaked = [f"{name}.{attr}" for name, module in list(sys.modules.items())
              if name.startswith("lsnotes") for attr, function in real.items()
              if getattr(module, attr, function) is not function]
    assert leaked == []


TINY_CONFIG = {"model": "linear", "train_size": 100, "test_size": 50, "epochs": 1, "device": "cpu"}


@pytest.mark.parametrize("option, message", [
    (["--eps", "-1"], "--eps"), (["--eps", "5"], "--eps must be a finite number in [0, 1]"),
    (["--eps", "nan"], "--eps"), (["--seed", "-1"], "--seed"), (["--batch-size", "0"], "--batch-size"),
    (["--n", "0"], "--n"), (["--attacks", ","], "--attacks"), (["--attacks", "pgd7"], "pgd7"),
])
def test_cli_attack_refuses_bad_options_before_training_anything(option, message, tmp_path,
                                                                  monkeypatch, capsys):
    from lsnotes import cli

    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    monkeypatch.setenv("LSNOTES_CACHE", str(cache_dir))
    code = cli.main(["attack", "--config", json.dumps(TINY_CONFIG), *option])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("lsnotes attack: error: ") and error.count("\n") == 1
    assert message in error
    assert list(cache_dir.iterdir()) == []              # nothing trained, nothing cached


def test_cli_attack_names_a_missing_dataset_in_one_line(tmp_path, monkeypatch, capsys):
    from lsnotes import cli

    monkeypatch.setenv("LSNOTES_DATA", str(tmp_path))
    monkeypatch.setenv("LSNOTES_CACHE", str(tmp_path / "cache"))
    code = cli.main(["attack", "--config", json.dumps({**TINY_CONFIG, "dataset": "mnist"})])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert error.startswith("lsnotes attack: error: dataset 'mnist' (train) is not under")
