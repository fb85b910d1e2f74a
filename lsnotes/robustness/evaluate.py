"""Robustness reports: clean and per-attack accuracy on the same examples, as RobustBench's
``model_info`` JSON, and the ``lsnotes attack`` command.

Every accuracy here is measured on the same stated examples; the *worst case* counts an example
as robust only if no attack in the report broke it.
"""

from __future__ import annotations

import json
import os
import platform
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lsnotes import __version__ as lsnotes_version
from lsnotes import attacks as attack_lib
from lsnotes import result_cache
from lsnotes.checks import choice, flag, non_negative_int, number_in, positive_int

DEFAULT_ATTACKS = ("fgsm", "pgd20", "pgd_cw", "odi", "apgd_ce")


def _generator_for(name: str, seed: int, start: int = 0) -> torch.Generator:
    """The generator of the batch that begins at example ``start``, for attack ``name``.

    One per (seed, attack, batch start): adding or reordering attacks does not change the others,
    and any run of whole batches (a shard, :func:`lsnotes.robustness.sharded_report`) draws exactly what
    the same batches draw inside one unsharded run.
    """
    if not start:
        return attack_lib.seeded_generator(seed, name)
    base = seed * 1_000_003 + zlib.crc32(name.encode())
    base = (base + start * 0x9E3779B97F4A7C15) % 2**63  # a golden-ratio stride: no collisions
    return torch.Generator().manual_seed(base)


def _correct(model, x, y, batch_size: int, clean: torch.Tensor | None = None) -> torch.Tensor:
    """Per example: the model's prediction on ``x`` is ``y`` (and, given ``clean``, it was right
    on the clean input too: an attack cannot make a wrong example robust)."""
    right = attack_lib.predict(model, x, batch_size) == y
    return right if clean is None else right & clean


def _attack_batched(name, model, x, y, eps, *, seed, batch_size, overrides, progress,
                    first_index: int = 0):
    """Run a registered attack batch by batch; returns the adversarial examples.

    ``x[0]`` is example ``first_index`` of the full evaluation set (a multiple of ``batch_size``
    for a shard), so each batch keeps the boundaries and the generator it has in an unsharded run.
    """
    if first_index % batch_size:
        raise ValueError(f"first_index must be a multiple of batch_size {batch_size}; got {first_index}")

    def attack_every_batch():
        pieces = []
        for start in tqdm(range(0, len(x), batch_size), desc=name, disable=not progress,
                          leave=False):
            sl = slice(start, start + batch_size)
            pieces.append(attack_lib.run_attack(
                name, model, x[sl], y[sl], eps,
                generator=_generator_for(name, seed, first_index + start), **overrides))
        return torch.cat(pieces)

    # Each batch's generator comes from (seed, name, batch start), so a stored result is exactly
    # what computing it again would give; the key holds the settings the attack runs with (its
    # registered ones under the overrides), so "odi" and "odi" with its defaults spelt out share; lsnotes.result_cache.result_key says what the key holds.
    key = result_cache.result_key(
        model=result_cache.model_digest(model), attack=name, x=x, y=y, eps=eps, seed=seed,
        settings={"attack": attack_lib.ATTACKS[name].settings(overrides), "batch_size": batch_size,
                  "first_index": first_index})
    return result_cache.cached_result(key, attack_every_batch).to(x.device)


def _check_run(model, source_model, x, y, seed, batch_size, progress):
    """The checks a report and the diagnostics share; returns y (int64), seed and batch_size."""
    seed = non_negative_int("seed", seed)
    batch_size = positive_int("batch_size", batch_size)
    flag("progress", progress)
    y = attack_lib.check_batch(x, y)
    attack_lib.check_fits(model, x, y)
    if source_model is not None:
        attack_lib.check_fits(source_model, x, y)
    return y, seed, batch_size


def library_versions() -> dict:
    """The versions a result depends on, recorded with every report."""
    versions = {"torch": torch.__version__, "lsnotes": lsnotes_version,
                "python": platform.python_version()}
    try:
        from importlib.metadata import version

        versions["autoattack"] = version("pyautoattack")
    except Exception:  # noqa: BLE001 - the package may be absent or installed from git
        versions["autoattack"] = "not installed"
    return versions


def percent_string(accuracy: float | None) -> str | None:
    """RobustBench writes accuracies as percent strings with two decimals."""
    return None if accuracy is None else f"{100 * accuracy:.2f}"


def model_info(*, name: str, architecture: str, dataset: str, norm: str, eps: float,
               clean_acc: float, autoattack_acc: float | None, extra: dict) -> dict:
    """RobustBench's ``model_info`` fields (accuracies as percent strings; AutoAttack's None when
    it did not run), with everything of ours under ``extra``."""
    return {"name": name, "architecture": architecture, "dataset": dataset,
            "threat_model": "Linf" if norm == "linf" else "L2", "eps": f"{eps:g}",
            "clean_acc": percent_string(clean_acc), "autoattack_acc": percent_string(autoattack_acc),
            "additional_data": False, "number_forward_passes": 1, "extra": extra}


def save_json(data: dict, path) -> Path:
    """Write ``data`` as JSON, atomically (a reader never sees half a report), readable by all."""
    from lsnotes.cache import atomic_write

    path = Path(path)
    atomic_write(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
    path.chmod(0o644)  # the temporary file was private
    return path


@dataclass
class RobustnessReport:
    """Clean and robust accuracy of one model on one set of examples, attack by attack."""

    model_name: str
    architecture: str
    eps: float
    norm: str
    n_examples: int
    seed: int
    device: str
    clean_correct: list[bool]
    robust_correct: dict[str, list[bool]]
    seconds: dict[str, float] = field(default_factory=dict)
    dataset: str = "unknown"

    @property
    def clean_acc(self) -> float:
        return sum(self.clean_correct) / self.n_examples

    def robust_acc(self, attack: str) -> float:
        """Correct on the clean input and under ``attack``."""
        both = zip(self.clean_correct, self.robust_correct[attack])
        return sum(c and r for c, r in both) / self.n_examples

    @property
    def worst_case_correct(self) -> list[bool]:
        """Correct on the clean input and under every attack in the report."""
        columns = [self.clean_correct, *self.robust_correct.values()]
        return [all(flags) for flags in zip(*columns)]

    @property
    def worst_case_acc(self) -> float:
        return sum(self.worst_case_correct) / self.n_examples

    def accuracies(self) -> dict[str, float]:
        """Clean, each attack, and the worst case, as fractions in [0, 1]."""
        table = {"clean": self.clean_acc}
        table.update({name: self.robust_acc(name) for name in self.robust_correct})
        table["worst case"] = self.worst_case_acc
        return table

    def table(self, fmt: str = "markdown") -> str:
        """The accuracies as a markdown (or plain text) table, in percent."""
        choice("fmt", fmt, ("markdown", "text"))
        rows = [(name, f"{100 * acc:.1f}", f"{self.seconds.get(name, 0.0):.1f}")
                for name, acc in self.accuracies().items()]
        header = ("attack", "accuracy (%)", "time (s)")
        title = (f"{self.model_name}, {self.norm} ε = {self.eps:g}, "
                 f"{self.n_examples} examples, seed {self.seed}")
        if fmt == "text":
            width = max(len(r[0]) for r in rows + [header])
            lines = [title, f"{header[0]:<{width}}  {header[1]:>12}  {header[2]:>8}"]
            lines += [f"{a:<{width}}  {b:>12}  {c:>8}" for a, b, c in rows]
            return "\n".join(lines)
        lines = [f"| {' | '.join(header)} |", "|---|---:|---:|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        return title + "\n\n" + "\n".join(lines)

    def to_dict(self) -> dict:
        """RobustBench's ``model_info`` fields (accuracies as percent strings) plus our extras."""
        return model_info(
            name=self.model_name, architecture=self.architecture, dataset=self.dataset,
            norm=self.norm, eps=self.eps, clean_acc=self.clean_acc,
            autoattack_acc=(self.robust_acc("autoattack") if "autoattack" in self.robust_correct
                            else None),
            extra={"attacks": {name: percent_string(self.robust_acc(name))
                               for name in self.robust_correct},
                   "worst_case_acc": percent_string(self.worst_case_acc),
                   "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                   "n_examples": self.n_examples, "seed": self.seed, "device": self.device,
                   "versions": library_versions(),
                   "per_example": {"clean": self.clean_correct, **self.robust_correct}})

    def save_json(self, path) -> Path:
        return save_json(self.to_dict(), path)


def robustness_report(model, x, y, eps, attacks=DEFAULT_ATTACKS, *, source_model=None,
                      transfer_attack: str = "pgd20", seed: int = 0, batch_size: int = 256,
                      progress: bool = False, model_name: str = "model",
                      architecture: str = "unknown", dataset: str = "unknown",
                      overrides: dict | None = None) -> RobustnessReport:
    """Clean accuracy and robust accuracy under each named attack, on the same examples (L∞).

    ``attacks`` are names from :data:`lsnotes.attacks.ATTACKS`; ``overrides`` maps an attack name
    to settings it should use instead of the registered ones. With ``source_model`` the report
    also has a ``transfer:<transfer_attack>`` row (examples made on the source, scored here).
    Each attack draws from its own generator seeded from ``seed`` and its name.
    """
    if isinstance(attacks, str):
        raise ValueError(f"attacks must be a sequence of attack names, not the string {attacks!r}")
    attacks = tuple(attacks)
    if not attacks and source_model is None:
        raise ValueError("attacks must name at least one attack from lsnotes.attacks.ATTACKS")
    for name in attacks:
        choice("attack", name, attack_lib.ATTACKS)
    if source_model is not None:
        choice("transfer_attack", transfer_attack, attack_lib.ATTACKS)
    overrides = dict(overrides or {})
    for name in overrides:
        choice("overrides key", name, attacks + ((transfer_attack,) if source_model is not None else ()))
    eps = number_in("eps", eps, 0, 1)
    y, seed, batch_size = _check_run(model, source_model, x, y, seed, batch_size, progress)

    clean = _correct(model, x, y, batch_size)
    report = RobustnessReport(model_name=model_name, architecture=architecture, eps=eps,
                              norm="linf", n_examples=len(x), seed=seed, device=str(x.device),
                              clean_correct=clean.tolist(),
                              robust_correct={}, dataset=dataset)
    for name in attacks:
        start = time.perf_counter()
        x_adv = _attack_batched(name, model, x, y, eps, seed=seed, batch_size=batch_size,
                                overrides=overrides.get(name, {}), progress=progress)
        report.robust_correct[name] = _correct(model, x_adv, y, batch_size, clean).tolist()
        report.seconds[name] = time.perf_counter() - start
    if source_model is not None:
        row = f"transfer:{transfer_attack}"
        start = time.perf_counter()
        x_adv = _attack_batched(transfer_attack, source_model, x, y, eps, seed=seed,
                                batch_size=batch_size, overrides=overrides.get(transfer_attack, {}),
                                progress=progress)
        report.robust_correct[row] = _correct(model, x_adv, y, batch_size, clean).tolist()
        report.seconds[row] = time.perf_counter() - start
    return report


# ----------------------------------------------------------------------------- command line

def _load_model_and_data(args):
    """Model from the training cache and the test split it was trained for."""
    from lsnotes import data as data_lib
    from lsnotes import train as train_lib

    if args.config is not None:
        try:
            config_dict = json.loads(args.config)
        except json.JSONDecodeError as err:
            raise ValueError(f"--config must be a JSON object: {err}") from None
        if not isinstance(config_dict, dict):
            raise ValueError(f"--config must be a JSON object of TrainConfig fields; got {args.config!r}")
        config = train_lib.TrainConfig.from_dict(config_dict)
    else:  # the cache keeps each entry's config in <key>/record.json
        from lsnotes import cache as cache_lib

        record_path = cache_lib.entry_dir(args.config_key) / cache_lib.RECORD
        if not record_path.is_file():
            raise ValueError(f"--config-key {args.config_key!r}: no cached model at {record_path}")
        try:
            config = train_lib.TrainConfig.from_dict(json.loads(record_path.read_text())["config"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"--config-key {args.config_key!r}: {record_path} holds no config "
                             f"({type(err).__name__}: {err})") from None
    result = train_lib.train_or_load(config, progress=True)
    x, y = data_lib.load_dataset(config.dataset, "test")
    return config, result.model, x, y


def _run_cli(args) -> int:
    # every option is checked before a model is loaded (or trained, for a config not yet cached)
    attacks = tuple(a.strip() for a in args.attacks.split(",") if a.strip())
    if not attacks:
        raise ValueError(f"--attacks must name at least one of: {', '.join(attack_lib.ATTACKS)}")
    for name in attacks:
        choice("--attacks entry", name, attack_lib.ATTACKS)
    n = positive_int("--n", args.n)
    eps = number_in("--eps", args.eps, 0, 1)
    seed = non_negative_int("--seed", args.seed)
    batch_size = positive_int("--batch-size", args.batch_size)
    if args.out is not None:
        out = Path(args.out).expanduser()
        if out.is_dir():
            raise ValueError(f"--out must name a file; {args.out} is a folder")
        parent = out.resolve().parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"--out {args.out!r}: the folder {str(parent)!r} does not exist or "
                             f"is not writable")
    config, model, x, y = _load_model_and_data(args)
    device = next(model.parameters()).device
    x, y = x[:n].to(device), y[:n].to(device)
    report = robustness_report(model, x, y, eps, attacks, seed=seed, batch_size=batch_size,
                               progress=True, model_name=config.key(), architecture=config.model,
                               dataset=config.dataset)
    print(report.table(fmt="text"))
    if args.out:
        print(f"wrote {report.save_json(args.out)}")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser("attack", help="robust accuracy of a cached model under attacks")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--config-key", help="cache key of a trained model")
    which.add_argument("--config", help="training config as a JSON object")
    parser.add_argument("--attacks", default=",".join(DEFAULT_ATTACKS),
                        help=f"comma-separated names from: {', '.join(attack_lib.ATTACKS)}")
    parser.add_argument("--eps", type=float, default=0.1, help="L∞ radius in [0, 1] pixel units")
    parser.add_argument("--n", type=int, default=500, help="first N test examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", help="write the report as JSON here")
    parser.set_defaults(func=_run_cli)
