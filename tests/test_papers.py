"""The papers' tables as data (``book/papers/*.json``) and their loader, :mod:`lsnotes.papers`.

Shape, completeness, reading checks and the loader need only the files. The fidelity tests compare
every number with the papers' texts in ``<repo>/../shared/papers`` (or ``$LSNOTES_PAPERS_DIR``) and
skip, saying why, where that folder is absent.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
from pathlib import Path

import pytest

from lsnotes import papers

REPO = Path(__file__).resolve().parents[1]
TEXTS_DIR = Path(os.environ.get("LSNOTES_PAPERS_DIR", REPO.parent / "shared" / "papers"))
TEXT_FILE = {"fu2020": "fu2020_full_text.txt", "goibert2019": "goibert2019_full_text.txt",
             "yu2024": "README.md"}  # Yu's numbers come from the README's section on their code
YU_SECTION = "## Yu et al. (2024): the authors' own code"

# A printed number: not glued to a word or another number ("CIFAR-10" gives 10, "x0" nothing,
# "-50." gives -50). ASCII classes so that "2ε" still gives 2.
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w|\.\d)", re.ASCII)

LS_METHODS = ("ALS", "SLS", "BLS", "SBLS")
REFERENCES = ("Normal classifier", "Adv. training")
SETUPS = ("MNIST Linear", "MNIST LeNet", "CIFAR LeNet", "CIFAR ResNet", "SVHN LeNet")
ALPHAS = ("α₁", "α₂", "α₃")
GOIBERT_COLUMNS = {"fgsm": ("ε₁", "ε₂", "ε₃"), "bim": ("ε₁", "ε₂", "ε₃"),
                   "deepfool": ("accuracy",), "cw": ("accuracy",), "clean": ("accuracy",)}


def raw(name: str) -> dict:
    return json.loads((REPO / "lsnotes" / "paper_tables" / f"{name}.json").read_text(encoding="utf-8"))


def all_tables():
    return [papers.table(p, t) for p in papers.PAPERS for t in papers.tables(p)]


def row_numbers(row: papers.PaperRow) -> list[str]:
    """The numbers a row prints, in order: a numeric key (Fu's α), then every value's numbers."""
    keys = [k for k in row.key if NUMBER.fullmatch(k)]
    return keys + [n for v in row.values if v is not None for n in NUMBER.findall(v)]


def location_lines(table: papers.PaperTable) -> range:
    m = re.search(r"lines? (\d+)(?:-(\d+))?$", table.location)
    assert m, table.location
    return range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1)


# --- shape -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", papers.PAPERS)
def test_every_file_has_the_metadata_and_a_known_citation_key(name):
    doc = raw(name)
    assert set(doc) - {"repository"} == {"paper", "citation_key", "title", "authors", "year",
                                         "source", "settings", "tables"}
    assert doc["paper"] == name and isinstance(doc["year"], int)
    bib_keys = re.findall(r"@\w+\{([^,]+),", (REPO / "book" / "references.bib").read_text())
    assert doc["citation_key"] in bib_keys
    if "repository" in doc:  # facts read from the authors' code, cited as the code
        repository = doc["repository"]
        assert set(repository) == {"name", "citation_key", "facts"}
        assert repository["citation_key"] in bib_keys
        for fact_name, fact in repository["facts"].items():
            assert set(fact) == {"value", "source", "about"}, fact_name
            assert re.search(r", commit [0-9a-f]{40}$", fact["source"]), fact_name
    for fact_name, fact in doc["settings"].items():
        assert set(fact) == {"value", "line", "about"}, fact_name
        assert isinstance(fact["value"], str) and type(fact["line"]) is int, fact_name


@pytest.mark.parametrize("name", papers.PAPERS)
def test_every_table_has_its_fields_and_rectangular_rows(name):
    for table_id, t in raw(name)["tables"].items():
        assert list(t) == ["caption", "location", "unit", "index", "columns", "rows", "notes"]
        assert all(isinstance(t[k], str) and t[k] for k in ("caption", "location", "unit", "notes"))
        assert t["location"].startswith(TEXT_FILE[name]), table_id
        assert t["rows"], table_id
        keys = [tuple(r["key"]) for r in t["rows"]]
        assert len(set(keys)) == len(keys), f"{table_id}: duplicate keys"
        for r in t["rows"]:
            assert set(r) == {"key", "values", "line"}
            assert len(r["key"]) == len(t["index"]) and all(isinstance(k, str) for k in r["key"])
            assert len(r["values"]) == len(t["columns"]), (table_id, r["key"])
            assert all(v is None or isinstance(v, str) for v in r["values"]), (table_id, r["key"])
            assert type(r["line"]) is int, (table_id, r["key"])


def test_every_row_line_lies_inside_its_table_location():
    for t in all_tables():
        where = location_lines(t)
        assert all(r.line in where for r in t.rows), (t.paper, t.table_id)


# --- completeness ------------------------------------------------------------------------------

def test_fu_has_tables_1_to_6_at_the_printed_sizes():
    assert papers.tables("fu2020") == [f"table{i}" for i in range(1, 7)]
    sizes = {t: (len(papers.table("fu2020", t).rows), len(papers.table("fu2020", t).columns))
             for t in papers.tables("fu2020")}
    assert sizes == {"table1": (6, 2), "table2": (10, 2), "table3": (8, 4), "table4": (3, 9),
                     "table5": (2, 3), "table6": (3, 3)}
    t2 = papers.table("fu2020", "table2")
    assert [r.key[0] for r in t2.rows] == ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7",
                                           "0.8", "0.9"]
    assert t2.columns == ("lower", "upper")
    t4 = papers.table("fu2020", "table4")
    assert t4.columns == ("clean", "FGSM", "PGD^10", "PGD^20", "PGD^40", "PGD-CW", "MT", "ODI", "AA")
    assert [r.key for r in t4.rows] == [("Madry",), ("Zhang",), ("LS",)]
    t5 = papers.table("fu2020", "table5")
    assert [r.key for r in t5.rows] == [("x0 = 0",), ("x0 = x_orig",)]
    assert t5.columns == ("LabelSmoothing", "Madry", "Zhang")
    t6 = papers.table("fu2020", "table6")
    assert [r.key for r in t6.rows] == [("FGSM",), ("PGD",), ("CW",)]
    assert t6.columns == ("Madry", "Zhang", "LabelSmoothing")
    t1 = papers.table("fu2020", "table1")
    assert all(all(r.key) for r in t1.rows), "blank Data set/Architecture cells must be filled down"


def test_fu_settings_hold_the_facts_the_chapters_cite():
    s = papers.paper("fu2020")["settings"]
    assert s["architecture"]["value"] == "WideResNet-34-10" and s["dataset"]["value"] == "CIFAR-10"
    assert (s["table5_bound"]["value"], s["table5_c"]["value"], s["table5_confidence"]["value"]) \
        == ("140/255", "0.1", "-50")
    assert s["table6_target_ls_alpha"]["value"] == "0.9"


@pytest.mark.parametrize("table_id", list(GOIBERT_COLUMNS))
def test_goibert_tables_have_every_method_setup_and_alpha(table_id):
    t = papers.table("goibert2019", table_id)
    assert t.index == ("method", "set-up", "α") and t.columns == GOIBERT_COLUMNS[table_id]
    expected = (set(itertools.product(LS_METHODS, SETUPS, ALPHAS))
                | set(itertools.product(REFERENCES, SETUPS, ("—",))))
    assert {r.key for r in t.rows} == expected and len(t.rows) == 4 * 5 * 3 + 2 * 5


def test_goibert_has_the_five_appendix_tables_by_attack():
    assert papers.tables("goibert2019") == list(GOIBERT_COLUMNS)


def test_yu_has_four_methods_by_three_columns_and_the_recipe():
    t = papers.table("yu2024", "resnet18_cifar10")
    assert [r.key[0] for r in t.rows] == ["AT", "AT+SGLS", "TRADES", "TRADES+SGLS"]
    assert t.columns == ("clean", "PGD", "AutoAttack")
    s = papers.paper("yu2024")["settings"]
    assert {k: s[k]["value"] for k in ("epochs", "lr", "lr_drop_epochs", "batch_size", "es",
                                       "train_eps", "train_step", "label_momentum",
                                       "clean_weight", "adversarial_weight")} == {
        "epochs": "200", "lr": "0.1", "lr_drop_epochs": "100, 150", "batch_size": "128",
        "es": "90", "train_eps": "8/255", "train_step": "2/255", "label_momentum": "0.9",
        "clean_weight": "0.2", "adversarial_weight": "0.8"}


# --- fidelity against the texts ----------------------------------------------------------------

@pytest.fixture(scope="module")
def texts():
    """Each paper's text as a list of lines (1-based: entry 0 is empty); Yu's is the README."""
    missing = [f for f in TEXT_FILE.values() if not (TEXTS_DIR / f).is_file()]
    if missing:
        pytest.skip(f"the papers' texts are not at {TEXTS_DIR} (missing {', '.join(missing)}); "
                    "set LSNOTES_PAPERS_DIR to the folder that holds them")
    return {name: [""] + (TEXTS_DIR / f).read_text(encoding="utf-8").split("\n")
            for name, f in TEXT_FILE.items()}


def searchable_lines(name, lines):
    """The line numbers a paper's numbers may come from: all of it, or Yu's README section."""
    if name != "yu2024":
        return range(1, len(lines))
    start = next(i for i, line in enumerate(lines) if line.startswith(YU_SECTION))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return range(start, end)


@pytest.mark.parametrize("name", papers.PAPERS)
def test_every_number_occurs_in_the_papers_text(name, texts):
    lines = texts[name]
    printed = {n for i in searchable_lines(name, lines) for n in NUMBER.findall(lines[i])}
    for t in (papers.table(name, tid) for tid in papers.tables(name)):
        for r in t.rows:
            absent = [n for n in row_numbers(r) if n not in printed]
            assert not absent, (t.table_id, r.key, absent)


@pytest.mark.parametrize("name", ["fu2020", "yu2024"])
def test_each_rows_numbers_stand_together_in_order_on_its_line(name, texts):
    lines = texts[name]
    for t in (papers.table(name, tid) for tid in papers.tables(name)):
        for r in t.rows:
            assert r.line in searchable_lines(name, lines), (t.table_id, r.key)
            on_line, wanted = NUMBER.findall(lines[r.line]), row_numbers(r)
            assert wanted, (t.table_id, r.key)
            assert any(on_line[i:i + len(wanted)] == wanted for i in range(len(on_line))), \
                (t.table_id, r.key, wanted, lines[r.line])


def test_yu_rows_read_as_the_readme_prints_them(texts):
    t = papers.table("yu2024", "resnet18_cifar10")
    for r in t.rows:
        assert re.search(rf"(^|; |\s){re.escape(r.key[0])} {' / '.join(r.values)}(;|\.$)",
                         texts["yu2024"][r.line]), r.key


@pytest.mark.parametrize("name", papers.PAPERS)
def test_settings_numbers_occur_on_their_lines(name, texts):
    lines = texts[name]
    for fact_name, fact in papers.paper(name)["settings"].items():
        assert fact["line"] in searchable_lines(name, lines), fact_name
        on_line = NUMBER.findall(lines[fact["line"]])
        assert all(n in on_line for n in NUMBER.findall(fact["value"])), (fact_name, fact)


def goibert_printed_line(text: str) -> tuple[str | None, str, list[str]]:
    """(method label if the line starts one, set-up, cells) of one printed appendix line."""
    method = next((m for m in LS_METHODS + REFERENCES if text.startswith(m + " ")), None)
    rest = text[len(method) + 1:] if method else text
    setup = next(s for s in SETUPS if rest.startswith(s + " "))
    return method, setup, rest[len(setup) + 1:].split()


@pytest.mark.parametrize("table_id", list(GOIBERT_COLUMNS))
def test_goibert_rows_hold_the_printed_cells_at_their_positions(table_id, texts):
    """α_i of an LS row is printed at positions i, i+3, i+6 (FGSM/BIM) or i; references in order;
    every cell of every line in the block is transcribed once; method labels carry down."""
    t, lines = papers.table("goibert2019", table_id), texts["goibert2019"]
    method_on = {}
    current = None
    for n in location_lines(t):
        label, _, _ = goibert_printed_line(lines[n])
        current = label or current
        method_on[n] = current
    per_eps = len(t.columns)
    cells_used = {}
    for r in t.rows:
        method, setup, alpha = r.key
        label, printed_setup, cells = goibert_printed_line(lines[r.line])
        assert (method_on[r.line], printed_setup) == (method, setup), (r.key, r.line)
        if method in LS_METHODS:
            i = ALPHAS.index(alpha)
            positions = [i + 3 * k for k in range(per_eps)] if per_eps == 3 else [i]
            assert len(cells) == 3 * per_eps if per_eps == 3 else len(cells) == 3, r.line
        else:
            positions = list(range(len(cells)))
            assert len(cells) == per_eps, r.line
        assert [cells[p] for p in positions] == [papers.NOT_RUN if v is None else v
                                                 for v in r.values], (r.key, lines[r.line])
        cells_used[r.line] = cells_used.get(r.line, 0) + len(positions)
    assert cells_used == {n: len(goibert_printed_line(lines[n])[2]) for n in location_lines(t)}


# --- reading checks: would catch a misread block ---------------------------------------------------

def goibert(table_id, method, setup, alpha="—"):
    t = papers.table("goibert2019", table_id)
    return [t.value((method, setup, alpha), c) for c in t.columns]


@pytest.mark.parametrize("setup", SETUPS)
def test_bim_never_leaves_the_normal_classifier_more_accurate_than_fgsm(setup):
    """BIM iterates FGSM's step, so it is at least as strong: the BIM block is the lower one."""
    pairs = [(b, f) for b, f in zip(goibert("bim", "Normal classifier", setup),
                                    goibert("fgsm", "Normal classifier", setup))
             if b is not None and f is not None]
    assert len(pairs) >= 2
    assert all(b <= f for b, f in pairs), pairs


@pytest.mark.parametrize("setup", SETUPS)
def test_fgsm_adversarial_training_beats_the_normal_classifier_under_fgsm(setup):
    """Checked at ε₂ and ε₃; at ε₁ the FGSM-trained models of CIFAR and SVHN are slightly *below*
    the normal classifier as printed (e.g. CIFAR LeNet 0.011 vs 0.049)."""
    pairs = [(a, n) for a, n in zip(goibert("fgsm", "Adv. training", setup)[1:],
                                    goibert("fgsm", "Normal classifier", setup)[1:])
             if a is not None and n is not None]
    assert pairs
    assert all(a > n for a, n in pairs), pairs


def best_ls(table_id, setup):
    best = {m: max(v for a in ALPHAS for v in goibert(table_id, m, setup, a)) for m in LS_METHODS}
    top = max(best.values())
    return [m for m, v in best.items() if v == top]


def test_sbls_is_the_best_ls_method_on_mnist_lenet_under_cw_not_deepfool():
    """The text: SBLS leads only against C&W, on MNIST LeNet; under DeepFool ALS leads there."""
    assert best_ls("cw", "MNIST LeNet") == ["SBLS"]
    assert "SBLS" not in best_ls("deepfool", "MNIST LeNet")


def test_the_texts_example_a_tie_of_als_and_bls_is_the_best_under_fgsm_on_cifar_lenet():
    """Line 300: the best FGSM accuracy on CIFAR LeNet at one strength is reached by ALS and BLS
    alike. With α and ε swapped (α outer) the tie would sit under adversarial training's 0.542."""
    t = papers.table("goibert2019", "fgsm").select({"set-up": "CIFAR LeNet"})
    found = False
    for c in t.columns:
        cells = [(t.value(r.key, c), r.key[0]) for r in t.rows if t.printed(r.key, c) is not None]
        top = max(v for v, _ in cells)
        found |= sorted({m for v, m in cells if v == top}) == ["ALS", "BLS"]
    assert found


def test_clean_accuracy_bounds_every_attacked_accuracy_of_the_same_model():
    clean = papers.table("goibert2019", "clean")
    for table_id in ("fgsm", "bim", "deepfool", "cw"):
        for r in papers.table("goibert2019", table_id).rows:
            acc = clean.value(r.key, "accuracy")
            assert all(v is None or float(v) <= acc for v in r.values), (table_id, r.key)


def test_fu_logit_ranges_narrow_as_alpha_grows():
    t = papers.table("fu2020", "table2")
    lower, upper = t.column("lower", parsed=True), t.column("upper", parsed=True)
    assert all(lo < 0 < up for lo, up in zip(lower, upper))
    assert lower == sorted(lower) and upper == sorted(upper, reverse=True)


# --- the loader ----------------------------------------------------------------------------------

def test_value_and_printed_round_trip():
    t1 = papers.table("fu2020", "table1")
    key = ("CIFAR-10", "WideResNet-34-10", "PGD")
    assert t1.printed(key, "Accuracy(with LS)") == "75.10"
    assert t1.value(list(key), "Accuracy(with LS)") == 75.1
    t4 = papers.table("fu2020", "table4")
    assert t4.printed("LS", "AA") == t4.printed(("LS",), "AA") == "6.86"
    assert papers.table("fu2020", "table2").printed("0", "lower") == "-5.00"
    fgsm = papers.table("goibert2019", "fgsm")
    assert fgsm.printed(("ALS", "CIFAR ResNet", "α₁"), "ε₃") is None
    assert fgsm.value(("ALS", "CIFAR ResNet", "α₁"), "ε₃") is None
    with pytest.raises(ValueError, match="not a number"):
        papers.table("fu2020", "table3").value("MT", "Loss function")


def test_select_column_and_records():
    fgsm = papers.table("goibert2019", "fgsm")
    chosen = fgsm.select(method="ALS", **{"set-up": "MNIST LeNet"})
    assert [r.key for r in chosen.rows] == [("ALS", "MNIST LeNet", a) for a in ALPHAS]
    assert chosen == fgsm.select({"set-up": "MNIST LeNet", "method": "ALS"})
    assert chosen.column("ε₁") == ["0.957", "0.959", "0.954"]
    assert len(fgsm.select(method=["SLS", "SBLS"], α="α₂").rows) == 2 * len(SETUPS)
    assert papers.table("fu2020", "table4").column("AA", parsed=True) == [49.35, 53.15, 6.86]
    records = papers.table("fu2020", "table6").to_records(parsed=True)
    assert records[1] == {"Attack Methods": "PGD", "Madry": 85.15, "Zhang": 88.63,
                          "LabelSmoothing": 8.15, "line": 307}
    assert papers.table("fu2020", "table3").to_records()[0]["Steps & Step size"] == "1, 2ε"


def test_markdown_table_lines_alignment_and_not_run():
    t4 = papers.table("fu2020", "table4")
    md = t4.markdown()
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 3
    assert rows[0] == "| Defense | clean | FGSM | PGD^10 | PGD^20 | PGD^40 | PGD-CW | MT | ODI | AA |"
    assert rows[1] == "| :-- | " + " | ".join(["--:"] * 9) + " |"
    assert rows[4].startswith("| LS | 94.74 |") and t4.caption in md
    assert md.rstrip().endswith(f"Source: {t4.location}")
    short = t4.markdown(columns=["clean", "AA"], caption=False)
    assert t4.caption not in short and "| Madry | 86.83 | 49.35 |" in short
    fgsm = papers.table("goibert2019", "fgsm").select(method="Normal classifier")
    md = fgsm.markdown()
    assert "| Normal classifier | CIFAR ResNet | — | 0.090 | 0.052 | / |" in md
    assert '("/": not run)' in md
    text_columns = papers.table("fu2020", "table3").markdown(columns=["Restarts", "Loss function"])
    assert "\n| :-- | :-- | :-- |\n" in text_columns and "| MT | 18 | different margin |" in text_columns


def test_unknown_names_raise_naming_the_parameter():
    with pytest.raises(ValueError, match="paper must be one of 'fu2020'"):
        papers.table("fu2021", "table4")
    with pytest.raises(ValueError, match="paper must be one of"):
        papers.paper("yu2023")
    with pytest.raises(ValueError, match="paper must be one of"):
        papers.tables("goibert")
    with pytest.raises(ValueError, match="table_id must be one of 'table1'"):
        papers.table("fu2020", "table7")
    t4 = papers.table("fu2020", "table4")
    with pytest.raises(ValueError, match="column of fu2020 table4 must be one of .*'PGD\\^20'"):
        t4.printed("LS", "PGD20")
    with pytest.raises(ValueError, match="key of fu2020 table4 must be one of 'Madry', 'Zhang', 'LS'"):
        t4.row("TRADES")
    with pytest.raises(ValueError, match="key of goibert2019 cw"):
        papers.table("goibert2019", "cw").row("ALS")
    fgsm = papers.table("goibert2019", "fgsm")
    with pytest.raises(ValueError, match="index level of goibert2019 fgsm must be one of"):
        fgsm.select(setup="MNIST LeNet")
    with pytest.raises(ValueError, match="set-up must be one of 'MNIST Linear'"):
        fgsm.select({"set-up": "MNIST Lenet"})
    with pytest.raises(ValueError, match="columns? of fu2020 table4"):
        t4.markdown(columns=["clean", "AutoAttack"])


def test_loaded_data_cannot_be_changed_by_a_caller():
    meta = papers.paper("fu2020")
    meta["settings"]["ls_alpha"]["value"] = "0.1"
    assert papers.paper("fu2020")["settings"]["ls_alpha"]["value"] == "0.9"
    t = papers.table("fu2020", "table4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.caption = "changed"
    assert papers.PAPERS_DIR == REPO / "lsnotes" / "paper_tables"
    assert (REPO / "book" / "papers").resolve() == papers.PAPERS_DIR  # the book links to them
    assert "tables" not in meta


def test_goibert_fgsm_finding_states_the_cells_where_ls_is_ahead():
    """The FGSM finding: adversarial training is better overall, and the count of set-up/ε cells
    where the best LS model is ahead of it (both run) is the one the JSON states."""
    t = papers.table("goibert2019", "fgsm")
    records = t.to_records(parsed=True)
    ahead, cells = [], 0
    for setup in SETUPS:
        for eps in t.columns:
            ls = [r[eps] for r in records
                  if r["set-up"] == setup and r["method"] in LS_METHODS and r[eps] is not None]
            at = [r[eps] for r in records
                  if r["set-up"] == setup and r["method"] == "Adv. training" and r[eps] is not None]
            if ls and at:
                cells += 1
                if max(ls) > at[0]:
                    ahead.append(f"{setup} {eps}")
    fact = papers.paper("goibert2019")["settings"]["finding_fgsm"]
    assert 0 < len(ahead) < cells / 2  # "better overall, not in every cell"
    assert f"in {len(ahead)} of the {cells} set-up/ε cells" in fact["about"]
    assert all(cell in fact["about"] for cell in ahead), ahead
