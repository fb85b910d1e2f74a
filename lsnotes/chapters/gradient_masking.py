"""What the chapter "Is it real robustness?" (``book/gradient_masking.md``) computes besides the
attacks themselves: its parameters and attack plan, Fu et al.'s tables beside ours, each of their
findings tested on their numbers and on ours, and the chapter's own claims.

The attacks run in the chapter's visible cells; everything here turns their accuracies (fractions,
``{model name: {attack: accuracy}}``) into tables, claim lists and the numbers the prose quotes.
Carlini–Wagner, the tanh attack, transfer, the α sweep, the figures and the saved results are in
:mod:`lsnotes.chapters.gradient_masking_beyond_pgd`.
"""

from __future__ import annotations

import inspect
import math
import re
import time
from fractions import Fraction
from types import SimpleNamespace as Namespace
from typing import Callable, Mapping

from lsnotes import attacks, papers
from lsnotes import claims as C
from lsnotes.checks import chapter_params, choice, positive_int
from lsnotes.present import ClaimFailed, Claims, Table, Text, beside, fixed, percent, share
from lsnotes.zoo import book

CHAPTER = "gradient_masking"
FU = "Fu et al."
#: Examples per attack and for AutoAttack in the quick profile (we chose them to fit a 2-core CPU).
QUICK_N_ATTACK, QUICK_N_AUTOATTACK = 100, 50
#: The attacks of the robustness report, beside those the diagnostics run (Fu et al.'s "recent"
#: attacks: MultiTargeted, ODI and APGD-CE, which they run under the name AA).
REPORT_ATTACKS = ("multitargeted", "odi", "apgd_ce")
#: The diagnostics' own budget per profile (we chose it; no paper sets it).
DIAGNOSTICS = {"quick": dict(sweep_points=3, restarts=3, black_box=False),
               "full": dict(sweep_points=5, restarts=5, black_box=True, square_queries=1000)}
#: Fu et al.'s Table 4 columns, in our attack names.
TABLE4_ATTACKS = ("fgsm", "pgd10", "pgd20", "pgd40", "pgd_cw", "multitargeted", "odi", "apgd_ce")
CLASSIC = ("fgsm", "pgd10", "pgd20", "pgd40", "pgd_cw")
STRONG = ("multitargeted", "odi", "apgd_ce")
ATTACK_LABELS = {
    "clean": "clean", "fgsm": "FGSM", "pgd10": "PGD-10", "pgd20": "PGD-20", "pgd40": "PGD-40",
    "pgd_cw": "PGD-CW", "multitargeted": "MT", "odi": "ODI", "apgd_ce": "APGD-CE",
    "autoattack": "AutoAttack"}
COLUMNS = ("clean", *TABLE4_ATTACKS, "autoattack")
AT = ("PGD-AT", "TRADES")


def setup(profile: str = "quick", seed: int = 0, device: str = "auto", *, ls_alpha: float = 0.9,
          n_attack: int = 0, n_autoattack: int = 0, n_widget: int = 64,
          widget_restarts: int = 3) -> Namespace:
    """The chapter's parameters, checked, with its zoo setting, attack plan and the texts its
    prose quotes (``run.text``; ``run.text.profile``, "quick profile", is the scale of the
    chapter's "Our run" blocks). ``0`` for a size means the profile's default."""
    params = chapter_params(profile, seed, device)
    setting = book.chapter_setting(CHAPTER, params.profile)
    ls_alpha = choice("ls_alpha", ls_alpha, setting.alpha_grid)
    n_attack = positive_int("n_attack", n_attack, minimum=0) or (
        QUICK_N_ATTACK if params.quick else setting.eval_size)
    n_autoattack = min(positive_int("n_autoattack", n_autoattack, minimum=0) or (
        QUICK_N_AUTOATTACK if params.quick else n_attack), n_attack)
    n_widget = min(positive_int("n_widget", n_widget, minimum=8), n_attack)
    widget_restarts = positive_int("widget_restarts", widget_restarts, minimum=2)
    fu = fu_settings()
    text = Namespace(
        eps=Text(f"{setting.eps:g}"), n_attack=Text(str(n_attack)),
        n_autoattack=Text(str(n_autoattack)), ls_alpha=Text(f"{ls_alpha:g}"),
        n_widget=Text(str(n_widget)), restarts=Text(str(widget_restarts)),
        profile=Text(f"{params.profile} profile"),
        fu_scale=Text(f"{fu['dataset']}, {fu['architecture']}, L∞ ε = {fu['linf_eps']}"),
        ours_scale=Text(f"{setting.dataset} ({setting.train_size or 'all'} training images, "
                        f"{setting.epochs} epochs), {setting.model}, L∞ ε = {setting.eps:g}"))
    return Namespace(profile=params.profile, seed=params.seed, device=params.device,
                     quick=params.quick, setting=setting, eps=setting.eps, ls_alpha=ls_alpha,
                     ls_name=f"LS α={ls_alpha:g}", n_attack=n_attack, n_autoattack=n_autoattack,
                     n_widget=n_widget, widget_restarts=widget_restarts,
                     plan=attack_plan(params.profile), text=text, label=f"ours, {params.profile}",
                     started=time.perf_counter())


def attack_plan(profile: str = "quick") -> Namespace:
    """What the chapter runs beyond the diagnostics, read from the zoo (one home for the attack
    settings, :func:`lsnotes.zoo.book.attack_settings`): the report's attacks and overrides,
    AutoAttack's settings, the attacks run on AutoAttack's prefix of the examples (``prefix``:
    PGD-20 and AutoAttack, so the two compare on the same examples), the diagnostics' budget,
    and how the profile departs from Fu et al."""
    choice("profile", profile, DIAGNOSTICS)
    settings = book.attack_settings(profile, "fu")
    return Namespace(report=REPORT_ATTACKS,
                     overrides={a: settings[a] for a in REPORT_ATTACKS if a in settings},
                     autoattack=dict(settings["autoattack"]),
                     prefix={"pgd20": {}, "autoattack": dict(settings["autoattack"])},
                     diagnostics=dict(DIAGNOSTICS[profile]),
                     notes=book.attack_setting_notes(profile, "fu"))


def fu_settings() -> dict[str, str]:
    """Fu et al.'s settings as printed (``book/papers/fu2020.json``)."""
    return {k: v["value"] for k, v in papers.paper("fu2020")["settings"].items()}


def display_name(label: str) -> str:
    """A paper's label as the book prints it: ``"PGD^20"`` -> ``"PGD-20"``."""
    return re.sub(r"PGD\^(\d+)", r"PGD-\1", str(label))


def points(fraction: float) -> Text:
    """Our accuracy in the papers' unit (percent, no sign): ``0.4213`` -> ``"42.1"``."""
    return fixed(100 * fraction, 1)


def count_text(count: int, noun: str) -> Text:
    """``"1 symptom"``, ``"0 symptoms"``, ``"2 symptoms"``."""
    count = positive_int("count", count, minimum=0)
    return Text(f"{count} {noun}" + ("" if count == 1 else "s"))


def paper_findings(findings: Mapping[str, Callable], theirs, ours, *, asserted=(),
                   title: str = "") -> Claims:
    """Fu et al.'s findings as claims on our numbers; each is first tested on the paper's own
    numbers, and a finding that fails there is a misreading of the paper (:class:`ClaimFailed`).
    Each test is built from :mod:`lsnotes.claims` predicates, so a number missing from either
    side (NaN, ``None``) stops the chapter (:class:`lsnotes.claims.MissingMeasurement`)."""
    if not findings:
        raise ValueError("findings must hold at least one statement")
    misread = [s for s, holds in judged(findings, theirs, whose="the paper's").items()
               if not holds]
    if misread:
        raise ClaimFailed(f"not what the paper's numbers say: {misread}")
    return Claims(judged(findings, ours), asserted=asserted, title=title)


def judged(findings: Mapping[str, Callable], *values, whose: str = "our") -> dict:
    """Each finding's test applied to ``values``; a test that meets an unmeasured number raises
    :class:`lsnotes.claims.MissingMeasurement` naming the finding."""
    outcomes = {}
    for statement, test in findings.items():
        try:
            outcomes[statement] = test(*values)
        except C.MissingMeasurement as missing:
            raise C.MissingMeasurement(f"{statement!r} on {whose} numbers: {missing}") from None
    return outcomes


def not_reproduced(claims: Claims) -> Text:
    """How many of a findings list do not hold in this run: ``"5 of 10"``."""
    return share(sum(not holds for holds in claims.claims.values()), len(claims.claims))


# ------------------------------------------------------------------------------ Table 3

def setting_used(plan: Namespace, attack: str, key: str):
    """One setting of a registered attack as this chapter runs it (override, registered default,
    or the attack function's own default)."""
    spec = attacks.ATTACKS[choice("attack", attack, attacks.ATTACKS)]
    settings = {**spec.defaults, **plan.overrides.get(attack, {})}
    if key in settings:
        return settings[key]
    return inspect.signature(spec.accepts).parameters[key].default


def steps_text(steps: int) -> str:
    """PGD-k takes k steps of 2ε/k, written as Fu et al. write it: ``20`` -> ``"20, ε/10"``."""
    size = Fraction(2, positive_int("steps", steps))
    top = "ε" if size.numerator == 1 else f"{size.numerator}ε"
    return f"{steps}, {top}" + ("" if size.denominator == 1 else f"/{size.denominator}")


def table3_text(plan: Namespace, n_classes: int) -> Namespace:
    """The settings the prose beside Table 3 quotes, ours and Fu et al.'s."""
    t3 = papers.table("fu2020", "table3")
    aa_parts = plan.autoattack.get("attacks_to_run", ("APGD-CE", "APGD-T", "FAB-T", "Square"))
    return Namespace(
        mt=Text(str(setting_used(plan, "multitargeted", "restarts") or n_classes - 1)),
        odi=Text(str(setting_used(plan, "odi", "restarts"))),
        apgd=Text(str(setting_used(plan, "apgd_ce", "steps"))),
        fu_mt=Text(t3.printed("MT", "Restarts")), fu_odi=Text(t3.printed("ODI", "Restarts")),
        fu_aa_steps=Text(t3.printed("AA", "Steps & Step size").split(",")[0].strip()),
        fu_aa_restarts=Text(t3.printed("AA", "Restarts")),
        autoattack=Text(", ".join(aa_parts).upper()))


def table3(plan: Namespace, n_classes: int, ours: str = "ours") -> Table:
    """Fu et al.'s Table 3 (attack settings), each row beside the attack we run under it."""
    t3 = papers.table("fu2020", "table3")
    used = table3_text(plan, n_classes)
    mine = {
        "FGSM": ["w/o", "original", "1, 2ε", "cross-entropy"],
        **{f"PGD^{k}": ["w/o", "random", steps_text(setting_used(plan, f"pgd{k}", "steps")),
                        "cross-entropy"] for k in (10, 20, 40)},
        "PGD-CW": ["w/o", "random", steps_text(setting_used(plan, "pgd_cw", "steps")), "margin"],
        "MT": [used.mt, "random", steps_text(setting_used(plan, "multitargeted", "steps")),
               "margin towards one target class per restart"],
        "ODI": [used.odi, "2 diversified steps of ε", steps_text(setting_used(plan, "odi", "steps")),
                "margin"],
        "AA": ["1", "random", f"{used.apgd}, auto", "cross-entropy (APGD-CE)"],
    }
    return beside(t3.columns, [(display_name(a), t3.row(a).values, display_name(a), cells)
                               for a, cells in mine.items()],
                  paper=FU, ours=ours, first_column="attack",
                  title="Fu et al.'s Table 3 (attack settings) beside ours")


# ------------------------------------------------------------------------------ Table 4

def with_summaries(robust_acc: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """A copy of ``{model: {attack: accuracy}}`` with ``lowest`` (the smallest accuracy of the
    row over Table 4's attacks and AutoAttack), ``strong`` (the smallest of MT, ODI, APGD-CE) and,
    for CE, ``transfer`` (PGD-20 crafted on CE and scored on CE is its own white-box PGD-20)."""
    summarised = {}
    for name, row in robust_acc.items():
        missing = [a for a in (*COLUMNS[1:], "pgd20") if a not in row]
        if missing:
            raise ValueError(f"robust_acc[{name!r}] lacks {missing}")
        unmeasured = [a for a in COLUMNS[1:] if row[a] is None or math.isnan(row[a])]
        if unmeasured:
            raise C.MissingMeasurement(f"robust_acc[{name!r}] has no accuracy for {unmeasured}")
        acc = dict(row)
        acc["lowest"] = min(acc[a] for a in COLUMNS[1:])
        acc["strong"] = min(acc[a] for a in STRONG)
        acc.setdefault("transfer", acc["pgd20"] if name == "CE" else math.nan)
        summarised[name] = acc
    return summarised


def attack_table(robust_acc: Mapping[str, Mapping[str, float]]) -> Table:
    """Every model under every attack (percent), with the lowest of each row."""
    return Table(["model", *(ATTACK_LABELS[c] for c in COLUMNS), "lowest"],
                 [[name, *(percent(acc[c]) for c in COLUMNS), percent(acc["lowest"])]
                  for name, acc in robust_acc.items()])


def _fu_table4() -> tuple:
    t4 = papers.table("fu2020", "table4")
    keys = dict(zip(t4.columns, ("clean", *TABLE4_ATTACKS)))
    rows = {"Madry": "PGD-AT", "Zhang": "TRADES", "LS": "LS"}
    return t4, keys, rows


def fu_table4_accuracies() -> dict[str, dict[str, float]]:
    """Fu et al.'s Table 4 in our keys and unit (fractions), with ``strong`` as ours has it."""
    t4, keys, rows = _fu_table4()
    acc = {ours: {key: t4.value(theirs, column) / 100 for column, key in keys.items()}
           for theirs, ours in rows.items()}
    for row in acc.values():
        row["strong"] = min(row[a] for a in STRONG)
    return acc


def table4(robust_acc, ls_name: str, ours: str = "ours") -> Table:
    """Fu et al.'s Table 4 beside our PGD-AT, TRADES and LS rows (percent; APGD-CE under AA)."""
    t4, keys, rows = _fu_table4()
    names = {"PGD-AT": "PGD-AT", "TRADES": "TRADES", "LS": ls_name}
    return beside([display_name(c) for c in t4.columns],
                  [(theirs, t4.row(theirs).values, names[mine],
                    [points(robust_acc[names[mine]][k]) for k in keys.values()])
                   for theirs, mine in rows.items()],
                  paper=FU, ours=ours, first_column="defence",
                  title="Fu et al.'s Table 4 beside ours (accuracy, %)")


def _as_roles(robust_acc, ls_name: str) -> dict:
    """Our accuracies keyed as Fu et al.'s rows: ``LS``, ``PGD-AT``, ``TRADES``."""
    return {"LS": robust_acc[ls_name], "PGD-AT": robust_acc["PGD-AT"],
            "TRADES": robust_acc["TRADES"]}


FINDINGS_T4 = {
    "LS has the highest clean accuracy of the three":
        lambda a: C.every(C.exceeds(a["LS"]["clean"], a[m]["clean"]) for m in AT),
    "under every classic attack (FGSM, PGD-10/20/40, PGD-CW) LS is above PGD-AT and TRADES":
        lambda a: C.every(C.exceeds(a["LS"][k], a[m][k]) for k in CLASSIC for m in AT),
    "FGSM is stronger than PGD-20 on LS (lower accuracy after one step than after 20)":
        lambda a: C.below(a["LS"]["fgsm"], a["LS"]["pgd20"]),
    "LS accuracy rises from PGD-10 to PGD-20 (more, smaller steps find less)":
        lambda a: C.exceeds(a["LS"]["pgd20"], a["LS"]["pgd10"]),
    "PGD-AT and TRADES move by at most 3 points from PGD-10 to PGD-40":
        lambda a: C.every(C.within(a[m]["pgd10"], a[m]["pgd40"], 0.03) for m in AT),
    "PGD-CW is within 3 points of PGD-20 on LS (the loss matters little)":
        lambda a: C.within(a["LS"]["pgd_cw"], a["LS"]["pgd20"], 0.03),
    "MT, ODI and APGD-CE each take LS below PGD-20 by more than 10 points":
        lambda a: C.every(C.below(a["LS"][k], a["LS"]["pgd20"], by=0.10) for k in STRONG),
    "the strongest of MT, ODI and APGD-CE takes LS below PGD-AT and TRADES":
        lambda a: C.every(C.below(a["LS"]["strong"], a[m]["strong"]) for m in AT),
    "on LS, ODI is the strongest of the three and MT the weakest":
        lambda a: C.strictly_increasing(a["LS"][k] for k in ("odi", "apgd_ce", "multitargeted")),
    "PGD-AT and TRADES lose at most 5 points from PGD-20 to the strongest of MT, ODI, APGD-CE":
        lambda a: C.every(C.at_most(a[m]["pgd20"] - a[m]["strong"], 0.05) for m in AT),
}
ASSERTED_T4 = (
    "the strongest of MT, ODI and APGD-CE takes LS below PGD-AT and TRADES",
    "PGD-AT and TRADES lose at most 5 points from PGD-20 to the strongest of MT, ODI, APGD-CE")


def table4_findings(robust_acc, ls_name: str) -> Claims:
    """Each finding of Fu et al.'s Table 4, tested on their numbers and on ours."""
    return paper_findings(FINDINGS_T4, fu_table4_accuracies(), _as_roles(robust_acc, ls_name),
                          asserted=ASSERTED_T4, title="Fu et al.'s Table 4, at this scale")


OWN_T4 = {
    "LS beats CE under PGD-20 (the apparent robustness)":
        lambda ls, ce, at, tr: C.exceeds(ls["pgd20"], ce["pgd20"]),
    "LS raises FGSM accuracy over CE": lambda ls, ce, at, tr: C.exceeds(ls["fgsm"], ce["fgsm"]),
    "MultiTargeted and ODI each lower LS below its PGD-20 accuracy":
        lambda ls, ce, at, tr: C.every(C.below(ls[k], ls["pgd20"])
                                       for k in ("multitargeted", "odi")),
    "AutoAttack lowers LS below PGD-20 on the same subset":
        lambda ls, ce, at, tr: C.below(ls["autoattack"], ls["pgd20_on_aa_subset"]),
    "the LS model's gain over CE shrinks from PGD-20 to the lowest":
        lambda ls, ce, at, tr: C.below(ls["lowest"] - ce["lowest"], ls["pgd20"] - ce["pgd20"]),
    "PGD-AT beats the LS model under AutoAttack":
        lambda ls, ce, at, tr: C.exceeds(at["autoattack"], ls["autoattack"]),
    "TRADES beats the LS model under AutoAttack":
        lambda ls, ce, at, tr: C.exceeds(tr["autoattack"], ls["autoattack"]),
}
ASSERTED_OWN_T4 = tuple(list(OWN_T4)[i] for i in (0, 1, 2, 4, 5))


def own_comparisons(robust_acc, ls_name: str) -> Claims:
    """The book's own comparisons of the four models (CE included, which Fu et al. lack)."""
    rows = [robust_acc[m] for m in (ls_name, "CE", "PGD-AT", "TRADES")]
    return Claims(judged(OWN_T4, *rows),
                  asserted=ASSERTED_OWN_T4, title="The book's own comparisons")


def shown_accuracies(robust_acc, ls_name: str) -> Namespace:
    """Every accuracy the prose quotes, as ``ls_pgd20``, ``ce_lowest``, … (percent), with the
    points PGD-AT and TRADES lose from PGD-20 to the strongest attack, and one standard error
    of an accuracy near one half on these examples."""
    tags = {"ls": ls_name, "ce": "CE", "at": "PGD-AT", "trades": "TRADES"}
    shown = Namespace(**{f"{tag}_{key}": percent(value)
                         for tag, name in tags.items()
                         for key, value in robust_acc[name].items()})
    shown.at_loss, shown.trades_loss = (
        fixed(100 * (robust_acc[m]["pgd20"] - robust_acc[m]["strong"]), 1) for m in AT)
    return shown


def standard_error(n: int, accuracy: float = 0.5) -> Text:
    """One standard error of an accuracy measured on ``n`` examples, in points."""
    n = positive_int("n", n)
    return fixed(100 * math.sqrt(accuracy * (1 - accuracy) / n), 1)


def fu_numbers() -> Namespace:
    """Fu et al.'s numbers the prose quotes, as printed in their tables."""
    t1, t4 = papers.table("fu2020", "table1"), papers.table("fu2020", "table4")
    t5, t6 = papers.table("fu2020", "table5"), papers.table("fu2020", "table6")
    fu = fu_settings()
    without = [r["Accuracy(without LS)"] for r in t1.to_records(parsed=True)
               if r["Circumstance"] != "natural"]
    return Namespace(
        **{f"t4_ls_{key}": Text(t4.printed("LS", column))
           for column, key in zip(t4.columns, ("clean", *TABLE4_ATTACKS))},
        t1_without_max=Text(f"{max(without):g}"),
        t5_ls_zero=Text(t5.printed("x0 = 0", "LabelSmoothing")),
        t5_ls_x=Text(t5.printed("x0 = x_orig", "LabelSmoothing")),
        t6_ls_pgd=Text(t6.printed("PGD", "LabelSmoothing")),
        **{k: Text(v) for k, v in fu.items()})


# ------------------------------------------------------------------------------ Table 1

#: Fu et al.'s Table 1 rows we set our CE/LS pair beside: (their row, our label, our attack).
T1_ROWS = {("MNIST", "4-layer CNN", "natural"): ("natural", "clean"),
           ("MNIST", "4-layer CNN", "FGSM"): ("FGSM", "fgsm"),
           ("CIFAR-10", "WideResNet-34-10", "natural"): ("natural", "clean"),
           ("CIFAR-10", "WideResNet-34-10", "PGD"): ("PGD-20", "pgd20")}
T1_KEYS = {"natural": "clean", "FGSM": "fgsm", "PGD": "pgd20"}


def table1(robust_acc, ls_name: str, setting, ours: str = "ours") -> Table:
    """Fu et al.'s Table 1 (MNIST and CIFAR-10 rows), with and without LS, beside our LS and CE."""
    t1 = papers.table("fu2020", "table1")
    return beside(t1.columns,
                  [(" ".join(key), t1.row(key).values,
                    f"{setting.dataset} {setting.model} {label}",
                    [points(robust_acc[ls_name][k]), points(robust_acc["CE"][k])])
                   for key, (label, k) in T1_ROWS.items()],
                  paper=FU, ours=ours, first_column="set-up, circumstance",
                  title="Fu et al.'s Table 1 (MNIST and CIFAR-10 rows) beside ours (accuracy, %)")


def _gains(acc, key):
    return [with_ls - without for with_ls, without in zip(acc["with"][key], acc["without"][key])]


FINDINGS_T1 = {
    "LS costs clean accuracy, but less than 2 points":
        lambda a: C.every(C.below(g, 0) and C.exceeds(g, -0.02) for g in _gains(a, "clean")),
    "LS raises accuracy under FGSM and PGD by more than 10 points":
        lambda a: C.every(C.exceeds(g, 0.10) for k in ("fgsm", "pgd20") for g in _gains(a, k)),
}


def table1_findings(robust_acc, ls_name: str) -> Claims:
    """Fu et al.'s Table 1 findings, tested on all three of their set-ups and on our pair."""
    t1 = papers.table("fu2020", "table1")
    theirs = {"with": {}, "without": {}}
    for r in t1.to_records(parsed=True):
        key = T1_KEYS[r["Circumstance"]]
        theirs["with"].setdefault(key, []).append(r["Accuracy(with LS)"] / 100)
        theirs["without"].setdefault(key, []).append(r["Accuracy(without LS)"] / 100)
    ours = {side: {k: [robust_acc[name][k]] for k in ("clean", "fgsm", "pgd20")}
            for side, name in (("with", ls_name), ("without", "CE"))}
    return paper_findings(FINDINGS_T1, theirs, ours,
                          asserted=["LS raises accuracy under FGSM and PGD by more than 10 points"],
                          title="Fu et al.'s Table 1, at this scale")


# ------------------------------------------------------------------------------ diagnostics

def symptom_table(diagnostics) -> Table:
    """Which masking symptom fires for which model ("—": not computed for that model)."""
    names = list(dict.fromkeys(s.name for d in diagnostics.values() for s in d.symptoms))

    def cell(d, symptom):
        fired = {s.name: s.triggered for s in d.symptoms}
        return "—" if symptom not in fired else "**yes**" if fired[symptom] else "no"

    return Table(["model", *names, "symptoms"],
                 [[model, *(cell(d, n) for n in names), len(d.triggered)]
                  for model, d in diagnostics.items()])


def symptom_claims(diagnostics, ls_name: str) -> tuple[Claims, Namespace]:
    """The LS model against the others by number of symptoms, and ``"1 symptom"``-style texts."""
    count = {m: len(d.triggered) for m, d in diagnostics.items()}
    claims = Claims({
        "the LS model shows at least one masking symptom": C.at_least(count[ls_name], 1),
        **{f"the LS model shows more symptoms than {other}":
           C.exceeds(count[ls_name], count[other])
           for other in ("PGD-AT", "TRADES", "CE")}})
    shown = Namespace(**{t: count_text(count[m], "symptom") for t, m in
                         (("ls", ls_name), ("ce", "CE"), ("at", "PGD-AT"), ("trades", "TRADES"))})
    return claims, shown
