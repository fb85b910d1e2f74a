"""``make gpu-check``: one prepared script that measures what the full profile needs from a GPU.

    python -m benchmarks.gpu_check            # on a CUDA machine (≤ 8 minutes on one GPU)
    python -m benchmarks.gpu_check --tiny     # the same plumbing on the CPU with tiny sizes

It writes ``$OUT/gpu_check.json`` (default ``artifacts/gpu``) holding

1. ``cuda_tests``: the CUDA-only tests (every test file that mentions CUDA, ``-k cuda``), run by
   pytest (``--tiny``: only collected), with their outcome;
2. ``training_epoch``: one training epoch of every full-profile architecture on synthetic data of
   its dataset's exact shape and format, through the trainer itself (``lsnotes.train``: bf16
   autocast and channels_last on CUDA), clean and PGD-10 adversarial: images/s, seconds for a full
   epoch of the real dataset, peak memory;
3. ``loss_step``: the step time of every label-smoothing method against cross-entropy's
   (interleaved repeats, medians, ratios);
4. ``pgd20``: PGD-20 on one batch of the WRN-34-10 (seconds, images/s, peak memory).

``lsnotes zoo plan --throughput $OUT/gpu_check.json`` turns (2) into the zoo's GPU-hour estimates.
Every size is a parameter. Without CUDA it exits 2 with one line unless ``--tiny`` or ``--cpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


class _NoBar:
    def update(self, n=1):
        pass


def architectures() -> list[tuple[str, str]]:
    """Every (dataset, model) pair of the full profile, in plan order."""
    from lsnotes import zoo

    seen = []
    for s in zoo.settings("full"):
        if (s.dataset, s.model) not in seen:
            seen.append((s.dataset, s.model))
    return seen


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None


def cuda_tests(tiny: bool) -> dict:
    """Run (``tiny``: collect) the tests that need CUDA; returns the command, status and output tail."""
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                   if "cuda" in p.read_text())
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", *files]
    if tiny:
        command.append("--collect-only")
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    return {"command": " ".join(command[1:]), "files": files, "returncode": done.returncode,
            "ran": not tiny, "summary": lines[-1] if lines else "",
            "tail": "\n".join(lines[-15:])}


def training_epoch(dataset: str, model: str, adversarial: str, images: int, batch_size: int,
                   device: torch.device, data_root: Path) -> dict:
    """Time one epoch of the trainer on ``images`` synthetic images (after a one-epoch warm-up)."""
    from lsnotes import data
    from lsnotes.train import TrainConfig, _Trainer
    from lsnotes.zoo.schedule import TRAIN_IMAGES

    info = data.DATASETS[dataset]
    data.write_synthetic(dataset, data_root, n_train=images, n_test=info.num_classes * 2)
    extra = dict(eps=info.default_eps, attack_steps=10) if adversarial != "none" else {}
    config = TrainConfig(dataset=dataset, model=model, adversarial=adversarial, epochs=2,
                         train_size=images, test_size=info.num_classes, batch_size=batch_size,
                         device=device.type, **extra)
    previous = os.environ.get("LSNOTES_DATA")
    os.environ["LSNOTES_DATA"] = str(data_root)
    try:
        trainer = _Trainer(config, progress=False)
    finally:
        if previous is None:
            os.environ.pop("LSNOTES_DATA")
        else:
            os.environ["LSNOTES_DATA"] = previous
    trainer.run_epoch(1, _NoBar())  # warm-up: cuDNN autotuning, allocator, lazy init
    _sync(device)
    _reset_peak(device)
    _sync(device)
    started = time.perf_counter()
    trainer.run_epoch(2, _NoBar())
    _sync(device)
    seconds = time.perf_counter() - started
    per_s = images / seconds
    return {"dataset": dataset, "model": model, "adversarial": adversarial, "images": images,
            "batch_size": batch_size, "seconds": seconds, "images_per_s": per_s,
            "full_epoch_s": TRAIN_IMAGES[dataset] / per_s, "peak_memory_mib": _peak_mib(device)}


def loss_steps(model_name: str, batch_size: int, repeats: int, device: torch.device) -> dict:
    """Median step time of each LS method and its ratio to cross-entropy's, interleaved."""
    from lsnotes.losses import METHODS, loss_function
    from lsnotes.models import build_model

    steps = {}
    for method in METHODS:
        torch.manual_seed(0)
        model = build_model(model_name, 10, 3, 32).to(device).train()
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.rand(batch_size, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (batch_size,), device=device)
        loss = loss_function(method, 0.0 if method == "ce" else 0.1)

        def step(model=model, optimizer=optimizer, x=x, y=y, loss=loss):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x).float()
            value = loss(logits, y)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()

        steps[method] = step
    for step in steps.values():
        step()
    times = {m: [] for m in steps}
    for _ in range(repeats):
        for method, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times[method].append(time.perf_counter() - start)
    median = {m: statistics.median(t) for m, t in times.items()}
    return {"model": model_name, "batch_size": batch_size, "repeats": repeats,
            "median_s": median, "ratio_to_ce": {m: median[m] / median["ce"] for m in median}}


def pgd20(model_name: str, batch_size: int, device: torch.device) -> dict:
    """PGD-20 (lsnotes.attacks, fp32 as evaluations run it) on one batch; a warm-up run first."""
    from lsnotes import attacks
    from lsnotes.models import build_model

    torch.manual_seed(0)
    model = build_model(model_name, 10, 3, 32).to(device).eval()
    x = torch.rand(batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    generator = torch.Generator().manual_seed(0)
    attacks.run_attack("pgd20", model, x[:2], y[:2], 8 / 255, generator=generator)
    _sync(device)
    _reset_peak(device)
    start = time.perf_counter()
    attacks.run_attack("pgd20", model, x, y, 8 / 255, generator=generator)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"model": model_name, "batch_size": batch_size, "seconds": seconds,
            "images_per_s": batch_size / seconds, "peak_memory_mib": _peak_mib(device)}


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="CPU, tiny sizes, only small models: checks the plumbing (CI)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU with the given sizes")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "artifacts" / "gpu"),
                        help="folder for gpu_check.json (default: $OUT or artifacts/gpu)")
    parser.add_argument("--images", type=int, default=None, help="synthetic images per epoch (8192)")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch (128)")
    parser.add_argument("--models", default=None,
                        help="comma-separated dataset:model pairs (default: every full-profile one)")
    parser.add_argument("--adversarial-models", default=None,
                        help="pairs also timed with PGD-10 training (default: the CIFAR-10 ones)")
    parser.add_argument("--loss-model", default=None, help="network of the LS-vs-CE step (resnet18)")
    parser.add_argument("--loss-batch", type=int, default=None, help="batch of the LS step (128)")
    parser.add_argument("--loss-repeats", type=int, default=None, help="interleaved repeats (50)")
    parser.add_argument("--pgd-model", default=None, help="network PGD-20 attacks (wrn34_10)")
    parser.add_argument("--pgd-batch", type=int, default=None, help="PGD-20 batch (256)")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the CUDA tests")
    args = parser.parse_args(argv)
    tiny = args.tiny
    defaults = dict(images=64 if tiny else 8192, batch_size=32 if tiny else 128,
                    loss_model="lenet" if tiny else "resnet18", loss_batch=16 if tiny else 128,
                    loss_repeats=3 if tiny else 50, pgd_model="lenet" if tiny else "wrn34_10",
                    pgd_batch=8 if tiny else 256)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.models is None:
        pairs = architectures()
        if tiny:
            pairs = [p for p in pairs if p[1] in ("linear", "lenet")]
        args.models = pairs
    else:
        args.models = [tuple(p.split(":")) for p in args.models.split(",") if p]
    if args.adversarial_models is None:
        args.adversarial_models = [p for p in args.models if p[0] == "cifar10"][:1 if tiny else None]
    else:
        args.adversarial_models = [tuple(p.split(":")) for p in args.adversarial_models.split(",") if p]
    return args


def main(argv=None) -> int:
    args = parse(argv)
    from lsnotes.checks import choice, positive_int
    from lsnotes.data import DATASETS
    from lsnotes.models import MODELS

    for dataset, model in list(args.models) + list(args.adversarial_models):
        choice("--models dataset", dataset, DATASETS)
        choice("--models model", model, MODELS)
    for name in ("images", "batch_size", "loss_batch", "loss_repeats", "pgd_batch"):
        positive_int(f"--{name.replace('_', '-')}", getattr(args, name))
    if not torch.cuda.is_available() and not (args.tiny or args.cpu):
        print("gpu-check: error: CUDA is not available (torch.cuda.is_available() is False); "
              "run it on a GPU machine, or pass --tiny (CPU plumbing check) or --cpu",
              file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.tiny or args.cpu else "cuda")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else platform.machine(),
              "mode": "tiny" if args.tiny else device.type,
              "versions": {"torch": torch.__version__, "python": platform.python_version(),
                           "cuda": torch.version.cuda},
              "sizes": {k: getattr(args, k) for k in ("images", "batch_size", "loss_model",
                                                      "loss_batch", "loss_repeats", "pgd_model",
                                                      "pgd_batch")}}
    if not args.skip_tests:
        report["cuda_tests"] = cuda_tests(args.tiny or device.type != "cuda")
        print(f"cuda tests: {report['cuda_tests']['summary']}", flush=True)
    report["training_epoch"] = []
    with tempfile.TemporaryDirectory(prefix="lsnotes-gpucheck-") as root:
        jobs = [(d, m, "none") for d, m in args.models]
        jobs += [(d, m, "pgd") for d, m in args.adversarial_models]
        for dataset, model, adversarial in jobs:
            row = training_epoch(dataset, model, adversarial, args.images, args.batch_size, device,
                                 Path(root) / dataset)
            report["training_epoch"].append(row)
            print(f"epoch {dataset} {model} {adversarial}: {row['images_per_s']:.0f} images/s, "
                  f"{row['full_epoch_s']:.1f} s per full epoch", flush=True)
    report["loss_step"] = loss_steps(args.loss_model, args.loss_batch, args.loss_repeats, device)
    print("LS/CE step ratios: " + ", ".join(f"{m} {r:.3f}" for m, r in
                                          report["loss_step"]["ratio_to_ce"].items()), flush=True)
    report["pgd20"] = pgd20(args.pgd_model, args.pgd_batch, device)
    print(f"PGD-20 {args.pgd_model} batch {args.pgd_batch}: {report['pgd20']['seconds']:.2f} s", flush=True)
    report["seconds"] = time.perf_counter() - started
    path = out / "gpu_check.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path} in {report['seconds']:.0f} s")
    failed = not args.skip_tests and report["cuda_tests"]["returncode"] not in (0, 5)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
