"""The book's own models through the audit: what the evaluation-checklist chapter runs.

:func:`inventory` lists every model the chapters ask the zoo for (and any cached variant of the
same setting); :func:`accuracy_table` scores each cached one under FGSM and PGD-20;
:func:`audit_representatives` runs :func:`lsnotes.robustness.audit` on the models the book's story
turns on. Nothing here trains: a model the cache does not hold yet is reported as missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lsnotes import attacks, cache, metrics, train
from lsnotes.robustness.checklist import audit
from lsnotes.zoo import book
from lsnotes.checks import choice

TRAINING_NAMES = {"none": "standard", **book.AT_LABELS}


@dataclass(frozen=True)
class ZooModel:
    config: train.TrainConfig
    training: str        # standard, FGSM-AT, PGD-AT, …
    variant: str         # how it differs from the zoo's default for that method ("" if not)
    requested: bool      # a chapter asks the zoo for it (rather than found in the cache)

    @property
    def label(self) -> str:
        c = self.config
        alpha = f" α = {c.alpha:g}" if c.method != "ce" else ""
        return f"{c.method}{alpha}, {self.training}" + (f" ({self.variant})" if self.variant else "")

    def load(self):
        """The verified cached model, or None; never trains."""
        stored = train.load_trained(self.config)
        return None if stored is None else stored.model


def _requests(profile, seed, device):
    zoo = book.setting(profile)
    requests = [book.config(profile, "ce", 0.0, seed=seed, device=device)]
    for method in ("szegedy", "sls", "als", "bls", "sbls"):
        requests += [book.config(profile, method, alpha, seed=seed, device=device)
                     for alpha in zoo.alpha_grid]
    requests += [book.config(profile, "ce", 0.0, adversarial=mode, seed=seed, device=device)
                 for mode in ("fgsm", "pgd", "trades")]
    return requests


def _cached(profile, seed):
    """Complete cache entries of this profile's dataset and network and this seed."""
    zoo = book.setting(profile)
    found = []
    for record_path in sorted(cache.cache_root().glob(f"*/{cache.RECORD}")):
        if not (record_path.parent / cache.MANIFEST).exists():
            continue  # an unfinished run
        try:
            config = train.TrainConfig.from_dict(json.loads(record_path.read_text())["config"])
        except (ValueError, KeyError, TypeError):
            continue
        if (config.key() == record_path.parent.name and config.dataset == zoo.dataset
                and config.model == zoo.model and config.seed == seed):
            found.append(config)
    return found


def _variant(config, zoo) -> str:
    adversarial = config.adversarial != "none"
    defaults = {"train_size": zoo.train_size, "test_size": zoo.test_size,
                "attack_steps": zoo.at_steps if adversarial else None,
                "epochs": zoo.at_epochs if adversarial else zoo.epochs}
    parts = [f"T = {config.temperature:g}"] if config.method == "bls" else []
    parts += [f"{name} = {getattr(config, name)}" for name, default in defaults.items()
              if default is not None and getattr(config, name) != default]
    return ", ".join(parts)


def inventory(profile: str = "quick", seed: int = 0, device: str = "auto") -> list:
    """The zoo's requests in reading order, then other cached variants of the same setting."""
    zoo = book.setting(profile)
    requested = _requests(profile, seed, device)
    keys = {c.key() for c in requested}
    extra = [c for c in _cached(profile, seed) if c.key() not in keys]
    return [ZooModel(c, TRAINING_NAMES[c.adversarial], _variant(c, zoo), c.key() in keys)
            for c in requested + extra]


def representatives(models: list, profile: str) -> dict:
    """The models the book's story turns on: plain cross-entropy ("CE"), Szegedy LS at the
    largest α ("LS"), FGSM-AT and PGD-AT."""
    top = max(book.setting(profile).alpha_grid)
    wanted = {"CE": ("ce", 0.0, "none"), "LS": ("szegedy", top, "none"),
              "FGSM-AT": ("ce", 0.0, "fgsm"), "PGD-AT": ("ce", 0.0, "pgd")}
    found = {}
    for name, (method, alpha, adversarial) in wanted.items():
        found[name] = next(m for m in models if m.requested and m.config.method == method
                           and m.config.alpha == alpha and m.config.adversarial == adversarial)
    return found


def accuracy_table(models: list, x, y, eps: float, seed: int = 0):
    """Clean, FGSM and PGD-20 accuracy of every cached model: ``(rows, missing labels)``."""
    rows, missing = [], []
    for entry in models:
        model = entry.load()
        if model is None:
            missing.append(entry.label)
            continue
        row = {"label": entry.label, "method": entry.config.method, "alpha": entry.config.alpha,
               "training": entry.training, "variant": entry.variant, "key": entry.config.key(),
               "clean": metrics.accuracy(model, x, y)}
        for name in ("fgsm", "pgd20"):
            x_adv = attacks.run_attack(name, model, x, y, eps,
                                       generator=attacks.seeded_generator(seed, name))
            row[name] = metrics.accuracy(model, x_adv, y)
        rows.append(row)
    return rows, missing


def audit_representatives(profile: str, seed: int, device: str, x, y, eps: float,
                          names=None, progress: bool = False):
    """:func:`lsnotes.robustness.audit` on the representative models ``names`` (default: all four)
    that are in the cache, with transfer from the plain cross-entropy model: ``(reports by name,
    names not in the cache)``."""
    models = representatives(inventory(profile, seed, device), profile)
    names = list(models) if names is None else [choice("names entry", n, models) for n in names]
    source_entry = models["CE"]
    source = source_entry.load()
    reports, missing = {}, []
    for name in names:
        model = models[name].load()
        if model is None:
            missing.append(name)
            continue
        transfer = {} if name == "CE" or source is None else {
            "source_model": source, "source_name": "the plain cross-entropy model"}
        skipped = ("it is the transfer source itself" if name == "CE" else
                   "the plain cross-entropy model is not in the cache yet")
        label = f"LS α = {models[name].config.alpha:g}" if name == "LS" else name
        reports[name] = audit(model, x, y, eps, quick=profile == "quick", seed=seed,
                                    model_name=label, architecture=models[name].config.model,
                                    dataset=models[name].config.dataset, progress=progress,
                                    transfer_skipped=skipped, **transfer)
    return reports, missing


def summary_rows(reports: dict) -> list:
    """One row per audited model: the numbers and the indicators that fired."""
    rows = []
    for r in reports.values():
        pgd = r.accuracy(r.main_attack)
        rows.append({"model": r.model_name, "clean": r.clean_acc, "fgsm": r.accuracy(r.single_step), "pgd": pgd,
                     "worst": r.robust_acc, "gap": pgd - r.robust_acc,
                     "serious": [i.title for i in r.serious],
                     "warnings": [i.title for i in r.indicators + r.autoattack_checks
                                  if i.fired and not i.serious]})
    return rows


def summary_table(reports: dict):
    """The audits side by side: accuracies, the worst case, and the indicators each one found."""
    from lsnotes.present import Table, fixed

    rows = [[r["model"], fixed(r["clean"], 2), fixed(r["fgsm"], 2), fixed(r["pgd"], 2),
             fixed(r["worst"], 2), fixed(r["gap"], 2), "; ".join(r["serious"]) or "—",
             "; ".join(r["warnings"]) or "—"] for r in summary_rows(reports)]
    return Table(["model", "clean", "FGSM", "PGD-20", "worst case", "PGD-20 − worst", "serious",
                  "warnings"], rows, align={"serious": "left", "warnings": "left"})


def model_table(rows: list, title: str = ""):
    """One row per model: clean, FGSM and PGD-20 accuracy (fractions)."""
    from lsnotes.present import Table, fixed

    return Table(["model", "clean", "FGSM", "PGD-20"],
                 [[r["label"], fixed(r["clean"], 2), fixed(r["fgsm"], 2), fixed(r["pgd20"], 2)]
                  for r in rows], title=title)


def recorded_view(recorded: dict | None):
    """What a full-profile run of the chapter saved: its model table (a ``present.Table`` whose
    title carries the audits' verdicts), or None when nothing was recorded."""
    if recorded is None:
        return None
    verdicts = "; ".join(f"{name}: {info['extra']['audit']['verdict']}"
                         for name, info in recorded["results"].get("audits", {}).items())
    title = "Full profile (GPU)" + (f" — audits (full battery): {verdicts}" if verdicts else "")
    return model_table(recorded["results"]["models"], title=title)


#: How the story names the battery's rows (PGD-k's variants by their suffix).
ATTACK_NAMES = {"fgsm": "FGSM", "_margin": "the margin loss",
                "_restarts": "restarts with a larger step", "multitargeted": "MultiTargeted",
                "odi": "ODI", "apgd_ce": "APGD-CE", "autoattack": "AutoAttack",
                "square": "the Square attack", "transfer": "transfer from cross-entropy"}


def _attack_name(row: str) -> str:
    suffix = next((s for s in ("_margin", "_restarts") if row.endswith(s)), row)
    return ATTACK_NAMES.get(suffix, row)


def _listing(found: dict) -> str:
    parts = [f"{_attack_name(name)} ({count})" for name, count in found.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _serious_text(report) -> str:
    serious = [i.title.lower() for i in report.serious]
    return ("no serious indicator of attack failure" if not serious
            else "serious indicators: " + ", ".join(serious))


def story(reports: dict, profile: str, not_cached=()) -> dict:
    """The sentences the chapter says about its audits, from the reports (with the numbers); what
    it says instead when a model is not in the cache; nothing about a model it did not audit."""
    top = max(book.setting(profile).alpha_grid)
    out = {}
    ls = reports.get("LS")
    if ls is None and "LS" not in not_cached:
        out["ls_sentence"] = ""
    elif ls is None:
        out["ls_sentence"] = (f"Label smoothing at α = {top:g} is not in the model cache yet, so "
                              f"this run cannot audit it.")
    else:
        pgd, gap = ls.accuracy(ls.main_attack), ls.indicator("stronger_attacks_beat_pgd")
        found, k = gap.numbers["found_by"], ls.battery.pgd_steps
        out["ls_sentence"] = (
            f"Label smoothing at α = {top:g} keeps {pgd:.2f} accuracy under PGD-{k} but "
            f"{ls.robust_acc:.2f} in the worst case over the battery: PGD-{k} overestimates its "
            f"robustness by {100 * gap.numbers['gap']:.0f} points"
            + (f", and the examples it missed fell to {_listing(found)}." if found else ".")
            + f" The audit finds {_serious_text(ls)}.")
    for name, title in (("PGD-AT", "PGD adversarial training"), ("FGSM-AT", "FGSM adversarial "
                                                                  "training")):
        key = "at_sentence" if name == "PGD-AT" else "fgsm_at_sentence"
        report = reports.get(name)
        if report is None:
            out[key] = (f"{title} is not in the model cache yet, so this run cannot audit it."
                        if name in not_cached else "")
            continue
        pgd = report.accuracy(report.main_attack)
        out[key] = (f"{title} keeps {pgd:.2f} under PGD-{report.battery.pgd_steps} and "
                    f"{report.robust_acc:.2f} in the "
                    f"worst case ({100 * (pgd - report.robust_acc):.0f} points lower), with "
                    f"{_serious_text(report)}.")
    some = next(iter(reports.values()), None)
    out["one_example"] = f"{100 / some.n_examples:.0f}" if some is not None else "—"
    return out


def transfer_source(dataset: str, device: str, progress: bool):
    """``(model, name, None)``: our normally trained model for ``dataset``, or
    ``(None, None, reason)`` when we have none (the quick profile's is trained if missing)."""
    for profile, setting in book.SETTINGS.items():
        if setting.dataset != dataset:
            continue
        name = f"lsnotes' cross-entropy {setting.model} ({profile} profile)"
        if profile == "quick":
            return book.trained("quick", "ce", 0.0, device=device,
                                       progress=progress).model, name, None
        stored = train.load_trained(book.config(profile, "ce", 0.0, device=device))
        if stored is not None:
            return stored.model, name, None
        return None, None, (f"{name} is not in the model cache (it trains on a GPU: "
                            f"lsnotes train with the {profile} profile's settings)")
    ours = sorted({s.dataset for s in book.SETTINGS.values()})
    return None, None, (f"lsnotes trains no {dataset} model to transfer from (its zoo covers "
                        f"{', '.join(ours)})")
