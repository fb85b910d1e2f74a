"""make gpu-check's plumbing on the CPU with tiny sizes (the GPU numbers come from a GPU run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from lsnotes import losses

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ lives beside the package
from benchmarks import gpu_check as gpucheck  # noqa: E402

TINY_ARGS = ["--tiny", "--skip-tests", "--images", "32", "--batch-size", "16",
             "--models", "mnist:linear,cifar10:lenet", "--adversarial-models", "svhn:linear",
             "--loss-model", "linear", "--loss-repeats", "2", "--pgd-model", "linear",
             "--pgd-batch", "4"]


@pytest.mark.slow
def test_tiny_mode_writes_every_measurement_as_json(tmp_path, one_thread, capsys):
    assert gpucheck.main([*TINY_ARGS, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["mode"] == "tiny" and "cuda_tests" not in report
    rows = {(r["dataset"], r["model"], r["adversarial"]): r for r in report["training_epoch"]}
    assert set(rows) == {("mnist", "linear", "none"), ("cifar10", "lenet", "none"),
                         ("svhn", "linear", "pgd")}
    for row in rows.values():
        assert row["images"] == 32 and row["seconds"] > 0 and row["peak_memory_mib"] is None
        assert row["full_epoch_s"] == pytest.approx(
            {"mnist": 60_000, "cifar10": 50_000, "svhn": 73_257}[row["dataset"]] / row["images_per_s"])
    assert set(report["loss_step"]["ratio_to_ce"]) == set(losses.METHODS)
    assert report["loss_step"]["ratio_to_ce"]["ce"] == 1.0
    assert report["pgd20"]["batch_size"] == 4 and report["pgd20"]["seconds"] > 0
    assert "wrote" in capsys.readouterr().out


def test_the_default_architectures_are_the_full_profiles():
    pairs = gpucheck.architectures()
    assert ("cifar10", "wrn34_10") in pairs and ("cifar10", "resnet18") in pairs
    assert ("svhn", "lenet") in pairs and ("mnist", "linear") in pairs and len(pairs) == len(set(pairs))
    tiny = gpucheck.parse(["--tiny"])
    assert all(model in ("linear", "lenet") for _, model in tiny.models) and tiny.images == 64
    assert gpucheck.parse([]).pgd_model == "wrn34_10"


def test_without_cuda_it_stops_with_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpucheck.main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "--tiny" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "gpu_check.json").exists()


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="--images"):
        gpucheck.main(["--tiny", "--skip-tests", "--images", "0", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="model"):
        gpucheck.main(["--tiny", "--skip-tests", "--models", "mnist:vgg", "--out", str(tmp_path)])
