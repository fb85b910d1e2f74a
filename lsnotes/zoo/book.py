"""The book's model zoo: every model a chapter trains, declared once per profile and paper.

API the chapters call
---------------------
:func:`chapter_trained` (or :func:`chapter_models` for the configurations): every model a chapter
uses, ``{setting name: {label: TrainResult}}``; :func:`attack_settings` and
:func:`attack_setting_notes`; :func:`eval_examples`; :func:`save_results` / :func:`load_results`.
The zoo plan (``lsnotes zoo plan``) is :func:`requests` over every chapter: the same declaration,
so what ``lsnotes zoo train`` fills is what the chapters then only load.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from lsnotes.checks import choice, chapter_params, positive_int
from lsnotes.data import load_subset
from lsnotes.train import TrainConfig, TrainResult, train_or_load
from lsnotes.zoo.settings import (FU, GOIBERT, PAPER_TITLES, PAPERS, QUICK,  # noqa: F401 (the zoo's API)
                                  SETTINGS, YU, Setting)


#: The experiment chapters and the paper each one follows in the full profile.
CHAPTERS: dict[str, tuple[str, ...]] = {
    "training_with_ls": ("goibert",), "classic_attacks": ("goibert",),
    "gradient_masking": ("fu",), "soft_labels_at": ("yu",),
    "evaluation_checklist": ("goibert", "fu", "yu"),
}

#: Yu et al.'s code trains plain PGD-AT for its first ``es`` = 90 of 200 epochs (refinement starts
#: just before the first learning-rate drop); every profile starts SGLR at the same fraction.
SGLR_START_FRACTION = 90 / 200


def sglr_start_epoch(epochs: int) -> int:
    """The first (1-based) epoch of label refinement: 91 of 200, as in Yu et al.'s script."""
    return round(SGLR_START_FRACTION * positive_int("epochs", epochs)) + 1


def settings(profile: str = "quick", paper: str | None = None) -> tuple[Setting, ...]:
    """The set-ups of ``paper`` in ``profile`` (quick: the one shared CPU setting, whatever the
    paper); with ``paper=None``, every set-up of the profile, papers in order."""
    choice("profile", profile, SETTINGS)
    if paper is not None:
        choice("paper", paper, PAPERS)
    if profile == "quick":
        return (QUICK,)
    papers = PAPERS if paper is None else {paper: PAPERS[paper]}
    return tuple(s for group in papers.values() for s in group)


def setting(profile: str = "quick", name: str | None = None) -> Setting:
    """The setting called ``name`` in ``profile`` (default: the profile's default setting)."""
    choice("profile", profile, SETTINGS)
    if name is None:
        return SETTINGS[profile]
    if isinstance(name, Setting):
        return name
    by_name = {s.name: s for s in settings(profile)}
    return by_name[choice("setting", name, by_name)]


def chapter_setting(chapter: str, profile: str = "quick", name: str | None = None) -> Setting:
    """The setting ``chapter`` runs on: in the quick profile the one CPU setting; in the full
    profile the set-up of the chapter's paper called ``name`` (default: the paper's first), so
    ``soft_labels_at`` gets Yu et al.'s ResNet-18 and ``gradient_masking`` Fu et al.'s WRN."""
    choice("chapter", chapter, CHAPTERS)
    options = {s.name: s for s in _chapter_settings(chapter, profile)}
    if name is None:
        return next(iter(options.values()))
    return options[choice("setup", name, options)]


def config(profile: str = "quick", method: str = "ce", alpha: float = 0.0, *,
           temperature: float = 1.0, adversarial: str = "none", seed: int = 0,
           device: str = "auto", setting: str | Setting | None = None,
           **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of the zoo's model trained with ``method``/``alpha``/``adversarial``.

    ``setting`` names one of the profile's settings (default: the profile's default). Adversarial
    training uses the setting's ε, ``at_steps`` inner steps (of ``at_step_size``), ``at_epochs``
    epochs and its ``adversarial_overrides`` for that mode; ``overrides`` change any field last.
    """
    s = _lookup(profile, setting)
    adversarial_kw: dict[str, Any] = {}
    epochs = s.epochs
    if adversarial != "none":
        adversarial_kw = dict(eps=s.eps, attack_steps=s.at_steps)
        if s.at_step_size is not None:
            adversarial_kw["attack_step_size"] = s.at_step_size
        epochs = s.at_epochs
        adversarial_kw.update(s.adversarial_overrides.get(adversarial, {}))
        epochs = adversarial_kw.pop("epochs", epochs)
        if adversarial in ("sglr", "trades_sglr"):
            adversarial_kw["sglr_start_epoch"] = sglr_start_epoch(epochs)
    fields = dict(dataset=s.dataset, model=s.model, method=method, alpha=alpha,
                  temperature=temperature, adversarial=adversarial, epochs=epochs,
                  batch_size=s.batch_size, optimizer=s.optimizer, lr=s.lr,
                  weight_decay=s.weight_decay, schedule=s.schedule, train_size=s.train_size,
                  test_size=s.test_size, seed=seed, device=device)
    fields.update(adversarial_kw)
    fields.update(overrides)
    return TrainConfig(**fields)


def _lookup(profile: str, name) -> Setting:
    return setting(profile, name)


def trained(profile: str = "quick", method: str = "ce", alpha: float = 0.0, *,
            progress: bool = False, **kwargs) -> TrainResult:
    """The zoo's model for these settings, from the cache or trained now (then cached).

    Adversarially trained models always record held-out robust accuracy after every epoch, so any
    chapter can show their robust-overfitting curve without training them again (and, where the
    setting says ``keep_best``, keep the best epoch's weights: :func:`best_checkpoint`).
    """
    cfg = config(profile, method, alpha, **kwargs)
    keep_best = _lookup(profile, kwargs.get("setting")).keep_best and cfg.adversarial != "none"
    return train_or_load(cfg, progress=progress, eval_robust=cfg.adversarial != "none",
                         keep_best=keep_best)


def best_checkpoint(config: TrainConfig, device: str | None = None) -> TrainResult | None:
    """The best-by-held-out-robust-accuracy weights kept beside a cached model, or None.

    ``history`` is the full run's; ``best_epoch`` (1-based) says which epoch the weights are from.
    """
    from lsnotes.train import load_best

    return load_best(config if device is None else replace(config, device=device))


# ------------------------------------------------------------------------------ chapter requests

@dataclass(frozen=True)
class Request:
    """One model a chapter asks for: its label there, its setting, and how it is trained."""

    chapter: str
    setting: Setting
    label: str
    config: TrainConfig

    @property
    def eval_robust(self) -> bool:
        return self.config.adversarial != "none"

    @property
    def keep_best(self) -> bool:
        return self.setting.keep_best and self.eval_robust


AT_LABELS = {"fgsm": "FGSM-AT", "fgsm_rs": "FGSM-RS-AT", "pgd": "PGD-AT", "trades": "TRADES",
             "sglr": "SGLR", "trades_sglr": "TRADES+SGLR"}


def ls_label(method: str, alpha: float, temperature: float | None = None) -> str:
    """``"CE"``, ``"ALS α=0.1"``, ``"BLS α=0.5 T=10"``: the labels the chapters print."""
    if method == "ce":
        return "CE"
    label = f"{method.upper()} α={alpha:g}"
    return label if temperature is None else f"{label} T={temperature:g}"


def _ls_zoo(s: Setting, profile, seed, device, temperatures: bool) -> list[tuple[str, TrainConfig]]:
    make = lambda *args, **kw: config(profile, *args, seed=seed, device=device,  # noqa: E731
                                      setting=s, **kw)
    models = [("CE", make("ce", 0.0))]
    models += [(ls_label(m, a), make(m, a)) for m in s.methods for a in s.alpha_grid]
    if temperatures and "bls" in s.methods:
        models += [(ls_label("bls", s.mid_alpha, t), make("bls", s.mid_alpha, temperature=t))
                   for t in s.bls_temperatures]
    return models


def _chapter_list(chapter: str, s: Setting, profile: str, seed: int, device: str):
    make = lambda *args, **kw: config(profile, *args, seed=seed, device=device,  # noqa: E731
                                      setting=s, **kw)
    if chapter == "training_with_ls":
        return _ls_zoo(s, profile, seed, device, temperatures=True) + [
            ("FGSM-AT", make("ce", 0.0, adversarial="fgsm"))]
    if chapter == "classic_attacks":
        return _ls_zoo(s, profile, seed, device, temperatures=False) + [
            ("FGSM-AT", make("ce", 0.0, adversarial="fgsm"))]
    if chapter == "gradient_masking":
        models = [("CE", make("ce", 0.0)), (f"LS α={s.ls_alpha:g}", make("szegedy", s.ls_alpha)),
                  ("PGD-AT", make("ce", 0.0, adversarial="pgd")),
                  ("TRADES", make("ce", 0.0, adversarial="trades"))]
        return models + [(f"LS α={a:g}", make("szegedy", a)) for a in s.alpha_grid
                         if a != s.ls_alpha]
    if chapter == "soft_labels_at":
        modes = ("pgd", "sglr") if profile == "quick" else ("pgd", "sglr", "trades", "trades_sglr")
        return [(AT_LABELS[m], make("ce", 0.0, adversarial=m)) for m in modes]
    raise AssertionError(chapter)


def requests(chapter: str | None = None, profile: str = "quick", seed: int = 0,
             device: str = "auto") -> tuple[Request, ...]:
    """Every model ``chapter`` asks for, as :class:`Request` records; with ``chapter=None`` every
    request of every chapter (a key asked for by two chapters appears twice).

    ``evaluation_checklist`` asks for every model the other chapters train (the union, first
    request of each cache key kept). The zoo plan (:func:`lsnotes.zoo.plan`) is built from this.
    """
    choice("profile", profile, SETTINGS)
    positive_int("seed", seed, minimum=0)
    chapters = tuple(c for c in CHAPTERS if c != "evaluation_checklist")
    if chapter is not None and choice("chapter", chapter, CHAPTERS) != "evaluation_checklist":
        chapters = (chapter,)
    found: list[Request] = []
    seen: set[str] = set()
    for name in chapters:
        for paper in CHAPTERS[name]:
            for s in settings(profile, paper):
                for label, cfg in _chapter_list(name, s, profile, seed, device):
                    if chapter == "evaluation_checklist":
                        if cfg.key() in seen:
                            continue
                        seen.add(cfg.key())
                    found.append(Request(name, s, label, cfg))
    return tuple(found)


def _chapter_requests(chapter, profile, seed, device, setting):
    found = requests(chapter, profile, seed, device)
    if setting is None:
        return found
    names = [r.setting.name for r in found]
    choice("setting", setting, dict.fromkeys(names))
    return tuple(r for r in found if r.setting.name == setting)


def chapter_models(chapter: str, profile: str = "quick", seed: int = 0, device: str = "auto",
                   setting: str | None = None) -> dict[str, dict[str, TrainConfig]]:
    """``{setting name: {label: TrainConfig}}``: every model ``chapter`` uses, in reading order
    (only ``setting``'s when given): the one declaration the chapters, ``lsnotes zoo plan/train``,
    the run-book's pre-training and the tests read.

    Quick: one setting (``"quick"``). Full: one entry per set-up of the chapter's paper
    (:data:`CHAPTERS`).
    """
    nested: dict[str, dict[str, TrainConfig]] = {}
    for r in _chapter_requests(chapter, profile, seed, device, setting):
        nested.setdefault(r.setting.name, {})[r.label] = r.config
    return nested


def chapter_trained(chapter: str, profile: str = "quick", seed: int = 0, device: str = "auto",
                    setting: str | None = None, progress: bool = False
                    ) -> dict[str, dict[str, TrainResult]]:
    """:func:`chapter_models` with each model from the cache (or trained now, then cached),
    with the per-epoch robust accuracy and best checkpoint the zoo records: how a chapter asks
    for its models (``zoo.chapter_trained("training_with_ls", profile)["quick"]["CE"].model``)."""
    nested: dict[str, dict[str, TrainResult]] = {}
    for r in _chapter_requests(chapter, profile, seed, device, setting):
        nested.setdefault(r.setting.name, {})[r.label] = train_or_load(
            r.config, progress=progress, eval_robust=r.eval_robust, keep_best=r.keep_best)
    return nested


# ------------------------------------------------------------------------------ attack settings

#: Fu et al.'s Table 3, as overrides of lsnotes.attacks.ATTACKS. Their "AA" column is one
#: Auto-PGD attack of AutoAttack, APGD-CE (their Section 3 and Table 3), not the ensemble; the
#: full profile runs standard AutoAttack, which is at least as strong: our choice.
FU_TABLE3 = {
    "fgsm": {},                                  # one step of 2ε from x
    "pgd10": dict(steps=10), "pgd20": dict(steps=20), "pgd40": dict(steps=40),  # step 2ε/k
    "pgd_cw": dict(steps=20),                    # margin loss
    "multitargeted": dict(steps=20, restarts=18),
    "odi": dict(steps=20, restarts=20),
    "autoattack": dict(version="standard"),
}

#: The quick profile's cheaper settings, each named in :data:`QUICK_ATTACK_NOTES`.
QUICK_ATTACKS = {
    "fgsm": {}, "pgd10": dict(steps=10), "pgd20": dict(steps=20), "pgd40": dict(steps=40),
    "pgd_cw": dict(steps=20),
    "multitargeted": dict(steps=20, restarts=3),
    "odi": dict(steps=20, restarts=5),
    "autoattack": dict(version="custom", attacks_to_run=("apgd-ce", "apgd-dlr")),
}
QUICK_ATTACK_NOTES = {
    "multitargeted": "3 restarts (Fu et al.: 18)",
    "odi": "5 restarts (Fu et al.: 20)",
    "autoattack": "APGD-CE and APGD-DLR (Fu et al.'s AA: APGD-CE alone)",
}

#: Yu et al.'s README reports "PGD" and "AutoAttack" without their steps or version: PGD-20 and
#: standard AutoAttack are our choice.
YU_ATTACKS = {"pgd20": dict(steps=20), "autoattack": dict(version="standard")}


def attack_settings(profile: str = "quick", paper: str = "fu") -> dict[str, dict]:
    """``{attack name: overrides for lsnotes.attacks.run_attack}`` the chapter of ``paper`` uses.

    Full: the paper's settings (Fu: Table 3, with standard AutoAttack for their APGD-CE; Yu:
    PGD-20 and standard AutoAttack, our choice where their README is silent; Goibert:
    the registered FGSM and BIM). Quick: the cheaper settings the chapters run on a CPU, with
    every difference named by :func:`attack_setting_notes`.
    """
    choice("profile", profile, SETTINGS)
    choice("paper", paper, PAPERS)
    if paper == "goibert":
        return {"fgsm": {}, "bim": dict(steps=10)}
    full = FU_TABLE3 if paper == "fu" else YU_ATTACKS
    if profile == "full":
        return {k: dict(v) for k, v in full.items()}
    return {k: dict(QUICK_ATTACKS[k]) for k in full}


def attack_setting_notes(profile: str = "quick", paper: str = "fu") -> dict[str, str]:
    """``{attack: how this profile's setting differs from the paper's}`` (empty in full)."""
    names = attack_settings(profile, paper)
    if profile == "full":
        return {}
    return {k: v for k, v in QUICK_ATTACK_NOTES.items() if k in names}


def eval_examples(profile: str = "quick", seed: int = 0, device: str = "auto",
                  n: int | None = None, setting: str | Setting | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed test examples every attack in the book is scored on (class-balanced), of the
    named ``setting`` (default: the profile's default setting)."""
    s = _lookup(profile, setting)
    n = s.eval_size if n is None else positive_int("n", n)
    x, y = load_subset(s.dataset, "test", n, seed)
    target = chapter_params(profile, seed, device).device
    return x.to(target), y.to(target)


def with_overrides(profile: str, setting: str | Setting | None = None, **changes) -> Setting:
    """A copy of a profile's setting with some fields changed (for exercises)."""
    return replace(_lookup(profile, setting), **changes)


# ------------------------------------------------------------------------------ results as data

def _results_path(chapter: str, profile: str, results_dir=None):
    """Full-profile results are data the repository keeps (``book/results/full``); quick-profile
    results are regenerated by every run and live under ``_build/results/quick``."""
    from pathlib import Path

    choice("profile", profile, SETTINGS)
    root = Path(__file__).resolve().parents[2]  # the checkout: lsnotes/zoo/book.py -> ../../..
    if results_dir is None:
        results_dir = root / ("book/results" if profile == "full" else "_build/results")
    return Path(results_dir) / profile / f"{chapter}.json"


def save_results(chapter: str, profile: str, results: dict, *, seed: int, device: str,
                 results_dir=None, setting: str | Setting | None = None):
    """Write a chapter's measured numbers as JSON with versions, seed and device (atomically).

    Full-profile runs on a GPU write ``book/results/full/<chapter>.json``, which is committed, so the
    quick-profile chapters can show the paper-scale numbers beside their own.
    """
    import json
    import platform

    import lsnotes
    from lsnotes.cache import atomic_write

    path = _results_path(chapter, profile, results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"chapter": chapter, "profile": profile, "seed": seed, "device": device,
               "device_name": (torch.cuda.get_device_name() if device.startswith("cuda") else
                               platform.processor() or platform.machine()),
               "versions": {"torch": torch.__version__, "lsnotes": lsnotes.__version__,
                            "python": platform.python_version()},
               "setting": _lookup(profile, setting).__dict__,
               "settings": {s.name: s.__dict__ for s in _chapter_settings(chapter, profile)},
               "results": results}
    atomic_write(path, json.dumps(payload, indent=1, sort_keys=True, default=float).encode())
    return path


def _chapter_settings(chapter: str, profile: str) -> tuple[Setting, ...]:
    if chapter not in CHAPTERS:
        return (setting(profile),)
    return tuple(s for paper in CHAPTERS[chapter] for s in settings(profile, paper))


def load_results(chapter: str, profile: str = "full", results_dir=None) -> dict | None:
    """The saved results of ``chapter`` for ``profile``, or None when none were produced yet."""
    import json

    path = _results_path(chapter, profile, results_dir)
    if not path.exists():
        return None
    return json.loads(path.read_text())
