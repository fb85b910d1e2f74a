"""Attack throughput, side by side in one run (interleaved repeats, median wall time).

1. PGD-20 (L∞, CE) on one model and batch: lsnotes.attacks.pgd (best iterate kept, and last
   iterate), torchattacks.PGD, and a plain textbook loop. ART and foolbox are not installed.
2. DeepFool: lsnotes.attacks.deepfool (vectorised over batch and classes) against a per-image
   loop with one backward per class (the original algorithm's structure) and torchattacks.DeepFool.
   Target: vectorised ≥ 10× the per-image loop.

    python benchmarks/bench_attacks.py [--quick] [--device auto|cpu|cuda] [--batch 128] [--threads N]
"""

from __future__ import annotations

import argparse
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


def time_interleaved(contenders: dict, repeats: int, sync) -> dict[str, float]:
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            sync()
            start = time.perf_counter()
            run()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and images")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import torchattacks

    device = resolve_device(args.device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.manual_seed(0)
    model = lenet().to(device).eval()
    x = torch.rand(args.batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    eps, steps = 0.1, 20
    repeats = 3 if args.quick else 7
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"LeNet, batch {args.batch}, PGD-{steps}, median of {repeats} interleaved repeats")

    ta_pgd = torchattacks.PGD(model, eps=eps, alpha=2 * eps / steps, steps=steps, random_start=True)
    pgd_runs = {
        "lsnotes pgd (best iterate)": lambda: attacks.pgd(model, x, y, eps, steps=steps),
        "lsnotes pgd (last iterate)": lambda: attacks.pgd(model, x, y, eps, steps=steps,
                                                          keep_best=False),
        "torchattacks PGD": lambda: ta_pgd(x, y),
        "textbook loop": lambda: textbook_pgd(model, x, y, eps, steps, 2 * eps / steps,
                                              torch.Generator().manual_seed(0)),
    }
    pgd_runs["lsnotes pgd (best iterate)"]()  # warm-up
    medians = time_interleaved(pgd_runs, repeats, sync)
    reference = medians["torchattacks PGD"]
    print("\nPGD-20 throughput")
    for name, seconds in medians.items():
        print(f"  {name:<28} {args.batch / seconds:10.0f} images/s   "
              f"{reference / seconds:5.2f}× torchattacks")

    n_df = 16 if args.quick else 64
    xd = x[:n_df]
    ta_df = torchattacks.DeepFool(model, steps=50, overshoot=0.02)
    df_runs = {
        "lsnotes deepfool (vectorised)": lambda: attacks.deepfool(model, xd),
        "per-image loop": lambda: per_image_deepfool(model, xd),
        "torchattacks DeepFool": lambda: ta_df(xd, model(xd).argmax(1).detach()),
    }
    medians = time_interleaved(df_runs, max(1, repeats // 2), sync)
    loop = medians["per-image loop"]
    print(f"\nDeepFool on {n_df} images (10 classes)")
    for name, seconds in medians.items():
        print(f"  {name:<30} {n_df / seconds:10.1f} images/s   {loop / seconds:6.1f}× per-image loop")
    speedup = loop / medians["lsnotes deepfool (vectorised)"]
    print(f"  vectorised speed-up {speedup:.1f}× (target ≥ 10×): {'met' if speedup >= 10 else 'NOT met'}")

    ours, norms, success = attacks.deepfool(model, xd)
    theirs = per_image_deepfool(model, xd)
    agree = torch.isclose((ours - xd).flatten(1).norm(dim=1), (theirs - xd).flatten(1).norm(dim=1),
                          rtol=1e-3, atol=1e-5).float().mean().item()
    print(f"  same perturbation norm as the per-image loop on {100 * agree:.0f}% of images; "
          f"success {100 * success.float().mean().item():.0f}%")


if __name__ == "__main__":
    main()
