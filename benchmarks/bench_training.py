"""Training-step cost of every label-smoothing method relative to plain cross-entropy, and
training throughput / peak memory per model.

    python benchmarks/bench_training.py --quick      # LeNet + ResNet-18 (small batch), a few models
    python benchmarks/bench_training.py              # more repeats, every model

Methods are timed side by side: each repeat runs one step of every method in turn (interleaved,
starting one method later each repeat, so that none always runs first), so machine load drifts hit
all of them alike; the median over repeats is reported. Two loss forms are timed: the trainer's
(lsnotes.losses.loss_function, soft-target cross-entropy, as the trainer runs it after its first
step: check_values=False, no host synchronisation) and Theorem 1's (penalty_loss:
CE + α Σ r_k (z_y − z_k)). On the CPU a step is timed in CPU seconds of this
process (time.process_time): on a shared, oversubscribed machine wall time mostly measures the wait
for a free core, which drowns a difference of a few per cent. On CUDA it is wall time between
synchronisations. Peak memory is measured in a fresh subprocess per model (CPU: peak resident set
size, VmHWM; CUDA: torch.cuda.max_memory_allocated).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from lsnotes.checks import resolve_device
from lsnotes.losses import METHODS, loss_function, penalty_loss
from lsnotes.models import build_model, parameter_count

TARGET_RATIO = 1.03
SHAPES = {"linear": (1, 28), "mlp": (1, 28), "lenet": (1, 28), "cnn4": (1, 28),
          "resnet18": (3, 32), "preact_resnet18": (3, 32), "wrn_small": (3, 32), "wrn34_10": (3, 32)}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _clock(device):
    return time.perf_counter if device.type == "cuda" else time.process_time


def make_step(model_name, batch_size, device, loss):
    torch.manual_seed(0)
    channels, side = SHAPES[model_name]
    model = build_model(model_name, 10, channels, side).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch_size, channels, side, side, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    use_amp = device.type == "cuda"

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x).float()
        value = loss(logits, y)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()

    return model, step


def method_ratios(model_name, batch_size, repeats, device):
    """Median step time per (form, method), interleaved; ratios to CE of the same form."""
    steps = {}
    for method in METHODS:
        alpha = 0.0 if method == "ce" else 0.1
        steps[("trainer", method)] = make_step(model_name, batch_size, device,
                                               loss_function(method, alpha, check_values=False))[1]
        steps[("theorem1", method)] = make_step(
            model_name, batch_size, device,
            lambda z, y, m=method, a=alpha: penalty_loss(z, y, m, a))[1]
    times = {k: [] for k in steps}
    clock = _clock(device)
    for step in steps.values():  # warm-up
        step()
    order = list(steps.items())
    for repeat in range(repeats):
        shift = repeat % len(order)
        for k, step in order[shift:] + order[:shift]:
            _sync(device)
            start = clock()
            step()
            _sync(device)
            times[k].append(clock() - start)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {k: (median[k], median[k] / median[(k[0], "ce")]) for k in median}


def _peak_rss_mib() -> float:
    """This process's peak resident set. VmHWM belongs to the address space, so unlike
    ru_maxrss it does not inherit the parent's peak across fork+exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def one_model_throughput(model_name, batch_size, steps, device) -> dict:
    device = torch.device(device)
    model, step = make_step(model_name, batch_size, device, loss_function("ce"))
    step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = _peak_rss_mib()
    return {"model": model_name, "params_M": parameter_count(model) / 1e6, "batch": batch_size,
            "images_per_s": steps * batch_size / seconds, "peak_MiB": peak_mib}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and models")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (on a shared, oversubscribed CPU 1 gives steadier timings)")
    parser.add_argument("--ratios-only", action="store_true", help="skip the throughput table")
    parser.add_argument("--one-model", help=argparse.SUPPRESS)  # internal: run in a subprocess
    parser.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = torch.device(resolve_device(args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one_model:
        print(json.dumps(one_model_throughput(args.one_model, args.batch, args.steps, device)))
        return 0

    cuda = device.type == "cuda"
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    cases = [("lenet", 256 if cuda else 64, 15 if args.quick else 100),
             ("resnet18", 256 if cuda else 8, 3 if args.quick else 25)]
    print("\n## Step time relative to plain cross-entropy (median of interleaved repeats)")
    print(f"{'model':10} {'batch':>5} {'method':8} {'trainer ms':>10} {'ratio':>6} "
          f"{'thm1 ms':>8} {'ratio':>6}  best ≤ {TARGET_RATIO}?")
    for model_name, batch, repeats in cases:
        result = method_ratios(model_name, batch, repeats, device)
        for method in METHODS:
            (t_ms, t_ratio), (p_ms, p_ratio) = result[("trainer", method)], result[("theorem1", method)]
            best = min(t_ratio, p_ratio)
            print(f"{model_name:10} {batch:5d} {method:8} {t_ms * 1e3:10.2f} {t_ratio:6.3f} "
                  f"{p_ms * 1e3:8.2f} {p_ratio:6.3f}  {'yes' if best <= TARGET_RATIO else 'NO'}")
    if args.ratios_only:
        return 0

    models = ["mlp", "lenet", "cnn4", "resnet18"] if args.quick else list(SHAPES)
    print("\n## Training throughput and peak memory (CE, one fresh process per model)")
    print(f"{'model':16} {'params':>8} {'batch':>5} {'images/s':>10} {'peak MiB':>9}")
    for model_name in models:
        small = SHAPES[model_name][0] == 1
        batch = (512 if small else 128) if cuda else (128 if small else 16)
        steps = 20 if cuda else (10 if small else 3)
        out = subprocess.run([sys.executable, __file__, "--one-model", model_name, "--batch", str(batch),
                              "--steps", str(steps), "--device", str(device),
                              "--threads", str(torch.get_num_threads())],
                             capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(f"{model_name:16} {row['params_M']:7.2f}M {batch:5d} {row['images_per_s']:10.1f} "
              f"{row['peak_MiB']:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
