"""Attack throughput, side by side in one run (interleaved repeats, median wall time).

1. PGD-20 (L∞, CE, random start) on one model and batch: lsnotes.attacks.pgd (last iterate: the
   same algorithm as the libraries; best iterate: one more forward pass, a stronger attack),
   torchattacks.PGD, foolbox LinfPGD, ART ProjectedGradientDescentPyTorch and a plain textbook
   loop, and the floor no PGD can go below (20 forward and backward passes and nothing else).
   Target: ours (last iterate) at least as fast as the fastest library.
2. DeepFool: lsnotes.attacks.deepfool (vectorised over batch and classes) against a per-image
   loop with one backward per class (the original algorithm's structure), torchattacks.DeepFool
   and foolbox's L2DeepFool. Target: vectorised ≥ 10× the per-image loop.

All contenders run in one process under the same memory allocator. By default the script first
tells glibc's malloc to keep freed memory (as jemalloc and TCMalloc do, which PyTorch's CPU
performance guide recommends): with glibc's defaults every large tensor is a fresh mmap and pays
its page faults again, which slowed batched attacks by up to 1.5x here. ``--glibc-defaults`` keeps
glibc as it is.

    python benchmarks/bench_attacks.py [--quick] [--device auto|cpu|cuda] [--batch 128]
                                       [--threads N] [--glibc-defaults]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time

import torch
from torch import nn

from lsnotes import attacks
from lsnotes.checks import resolve_device


def lenet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def textbook_pgd(model, x, y, eps, steps, step_size, generator):
    x_adv = (x + eps * (2 * torch.rand(x.shape, generator=generator) - 1).to(x.device)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x_adv), y)
        grad, = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + step_size * grad.sign(), x - eps), x + eps)
        x_adv = x_adv.clamp(0, 1)
    return x_adv


def gradient_floor(model, x, y, steps):
    """The cost no PGD can avoid: ``steps`` forward and backward passes, with no attack arithmetic."""
    for _ in range(steps):
        x_grad = x.detach().requires_grad_(True)
        torch.autograd.grad(nn.functional.cross_entropy(model(x_grad), y), x_grad)


def per_image_deepfool(model, x, overshoot=0.02, max_iter=50):
    """DeepFool one image at a time, one backward per class (the original code's structure)."""
    out = []
    for image in x:
        image = image[None]
        with torch.no_grad():
            label = model(image).argmax(1).item()
        r_total = torch.zeros_like(image)
        x_adv = image.clone()
        for _ in range(max_iter):
            x_adv.requires_grad_(True)
            logits = model(x_adv)[0]
            if logits.argmax().item() != label:
                break
            grads = [torch.autograd.grad(logits[k], x_adv, retain_graph=True)[0]
                     for k in range(len(logits))]
            best, best_r = float("inf"), None
            for k in range(len(logits)):
                if k == label:
                    continue
                w = grads[k] - grads[label]
                f = (logits[k] - logits[label]).item()
                dist = abs(f) / (w.norm().item() + 1e-12)
                if dist < best:
                    best, best_r = dist, (abs(f) + 1e-4) / (w.norm() ** 2 + 1e-12) * w
            r_total = r_total + best_r
            x_adv = (image + (1 + overshoot) * r_total).clamp(0, 1).detach()
        out.append(x_adv.detach())
    return torch.cat(out)


def keep_freed_memory() -> bool:
    """Ask glibc to serve big buffers from the heap and not trim it (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return False
    return bool(libc.mallopt(-3, 32 * 2**20)) and bool(libc.mallopt(-1, 2**30))


def time_interleaved(contenders: dict, repeats: int, sync) -> dict[str, list[float]]:
    """Wall times of each contender, one run of each per round, the order rotating by round."""
    for run in contenders.values():  # warm-up: first calls pay for allocation and dispatch caches
        run()
    times = {name: [] for name in contenders}
    names = list(contenders)
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            sync()
            start = time.perf_counter()
            contenders[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(times: dict, slower: str, faster: str) -> tuple[float, float, float]:
    """Median and range over rounds of time[slower] / time[faster] (same round, so same machine state)."""
    ratios = sorted(a / b for a, b in zip(times[slower], times[faster]))
    return statistics.median(ratios), ratios[0], ratios[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and images")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="leave glibc's malloc settings alone (see the module docstring)")
    args = parser.parse_args()
    allocator = "glibc defaults" if args.glibc_defaults else (
        "glibc keeping freed memory" if keep_freed_memory() else "default allocator")
    if args.threads:
        torch.set_num_threads(args.threads)
    import foolbox
    import numpy as np
    import torchattacks
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    device = resolve_device(args.device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.manual_seed(0)
    model = lenet().to(device).eval()
    x = torch.rand(args.batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    eps, steps = 0.1, 20
    repeats = 3 if args.quick else 11
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"LeNet, batch {args.batch}, PGD-{steps}, median of {repeats} interleaved repeats, "
          f"{allocator}")

    step_size = 2 * eps / steps
    ta_pgd = torchattacks.PGD(model, eps=eps, alpha=step_size, steps=steps, random_start=True)
    fb_model = foolbox.PyTorchModel(model, bounds=(0, 1), device=device)
    fb_pgd = foolbox.attacks.LinfPGD(abs_stepsize=step_size, steps=steps, random_start=True)
    art_model = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=x.shape[1:],
                                  nb_classes=10, clip_values=(0.0, 1.0),
                                  device_type="gpu" if device.startswith("cuda") else "cpu")
    art_pgd = ProjectedGradientDescentPyTorch(art_model, norm=np.inf, eps=eps, eps_step=step_size,
                                              max_iter=steps, num_random_init=1,
                                              batch_size=len(x), verbose=False)
    x_np, y_np = x.cpu().numpy(), y.cpu().numpy()  # ART works on NumPy arrays
    pgd_runs = {
        "lsnotes pgd (best iterate)": lambda: attacks.pgd(model, x, y, eps, steps=steps),
        "lsnotes pgd (last iterate)": lambda: attacks.pgd(model, x, y, eps, steps=steps,
                                                          keep_best=False),
        "torchattacks PGD": lambda: ta_pgd(x, y),
        "foolbox LinfPGD": lambda: fb_pgd(fb_model, x, y, epsilons=eps),
        "ART PGD": lambda: art_pgd.generate(x=x_np, y=y_np),
        "textbook loop": lambda: textbook_pgd(model, x, y, eps, steps, 2 * eps / steps,
                                              torch.Generator().manual_seed(0)),
        "floor: 20 forward+backward": lambda: gradient_floor(model, x, y, steps),
    }
    times = time_interleaved(pgd_runs, repeats, sync)
    medians = {name: statistics.median(t) for name, t in times.items()}
    libraries = ("torchattacks PGD", "foolbox LinfPGD", "ART PGD")
    fastest = min(libraries, key=medians.get)
    reference = medians[fastest]
    print(f"\nPGD-20 throughput (relative to the fastest library, {fastest})")
    for name, seconds in medians.items():
        print(f"  {name:<28} {args.batch / seconds:10.0f} images/s   {reference / seconds:5.2f}×")
    ratio, low, high = paired_ratio(times, fastest, "lsnotes pgd (last iterate)")
    verdict = "met" if ratio >= 1 else "tie within noise" if low <= 1 <= high else "NOT met"
    print(f"  ours (last iterate) {ratio:.2f}× the fastest library, paired by round "
          f"(range {low:.2f}–{high:.2f}; target ≥ 1): {verdict}")

    n_df = 16 if args.quick else args.batch
    xd = x[:n_df]
    ta_df = torchattacks.DeepFool(model, steps=50, overshoot=0.02)
    fb_df = foolbox.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02)
    df_runs = {
        "lsnotes deepfool (vectorised)": lambda: attacks.deepfool(model, xd),
        "per-image loop": lambda: per_image_deepfool(model, xd),
        "torchattacks DeepFool": lambda: ta_df(xd, model(xd).argmax(1).detach()),
        "foolbox L2DeepFool": lambda: fb_df(fb_model, xd, model(xd).argmax(1).detach(),
                                            epsilons=None),
    }
    times = time_interleaved(df_runs, max(1, repeats // 3), sync)
    medians = {name: statistics.median(t) for name, t in times.items()}
    loop = medians["per-image loop"]
    print(f"\nDeepFool on {n_df} images (10 classes)")
    for name, seconds in medians.items():
        print(f"  {name:<30} {n_df / seconds:10.1f} images/s   {loop / seconds:6.1f}× per-image loop")
    speedup, low, high = paired_ratio(times, "per-image loop", "lsnotes deepfool (vectorised)")
    print(f"  vectorised speed-up {speedup:.1f}×, paired by round (range {low:.1f}–{high:.1f}; "
          f"target ≥ 10×): {'met' if speedup >= 10 else 'NOT met'}")

    ours, norms, success = attacks.deepfool(model, xd)
    theirs = per_image_deepfool(model, xd)
    agree = torch.isclose((ours - xd).flatten(1).norm(dim=1), (theirs - xd).flatten(1).norm(dim=1),
                          rtol=1e-3, atol=1e-5).float().mean().item()
    print(f"  same perturbation norm as the per-image loop on {100 * agree:.0f}% of images; "
          f"success {100 * success.float().mean().item():.0f}%")


if __name__ == "__main__":
    main()
