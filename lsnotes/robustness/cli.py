"""``lsnotes audit``: load the reader's model and weights, audit it on one of our datasets, and
write ``report.json`` and ``report.html``.

Every way the input can be wrong — a module that does not import, an attribute that is not
callable, weights that do not fit, outputs of the wrong shape or not finite, a dataset we do not
have, a bad ε/norm/n — is a ``ValueError`` naming the problem, which the ``lsnotes`` command
prints as one line (exit status 2).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path

import torch

from lsnotes.checks import choice, number_in, positive_int, resolve_device
from lsnotes.robustness.report_html import save_html


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def _import_module(where: str):
    """A module from a ``.py`` file path or a dotted name (the current directory importable)."""
    looks_like_file = where.endswith(".py") or "/" in where or os.sep in where
    if looks_like_file:
        path = Path(where).expanduser()
        if not path.is_file():
            raise ValueError(f"--model: no such file {where!r}")
        if path.suffix != ".py":
            raise ValueError(f"--model: {where!r} is not a Python source file (.py); give "
                             f"path/to/file.py:build or package.module:build")
        name = "lsnotes_audit_" + re.sub(r"\W", "_", str(path.resolve()))
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look their module up here
        search_path = [str(path.parent.resolve())]
    else:
        module, search_path = None, [os.getcwd()]
    sys.path[:0] = search_path  # sibling imports work as they would when run from there
    try:
        if module is not None:
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(where)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - the reader's code: one clear line
        if module is not None:
            sys.modules.pop(module.__name__, None)
        raise ValueError(f"--model: cannot import {where!r}: {type(err).__name__}: "
                         f"{_first_line(err)}") from None
    finally:
        del sys.path[:len(search_path)]


def load_weights(model: torch.nn.Module, path) -> None:
    """Load a state dict saved with ``torch.save`` into ``model`` (``weights_only=True``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"--weights: no such file {str(path)!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise ValueError(f"--weights: {str(path)!r} cannot be read with torch.load(weights_only="
                         f"True): {type(err).__name__}: {_first_line(err)}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # the usual checkpoint layout
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"--weights: {str(path)!r} holds a {type(state).__name__}, not a state "
                         f"dict (names mapped to tensors, as model.state_dict() gives)")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                   for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected),
                        ("wrong shape (file vs model)", wrong_shape)):
        if keys:
            problems.append(f"{label} {len(keys)}: {', '.join(keys[:3])}"
                            + (", …" if len(keys) > 3 else ""))
    if problems:
        hint = (" (the file's keys start with 'module.': it was saved from a DataParallel "
                "wrapper; save model.module.state_dict())"
                if unexpected and all(k.startswith("module.") for k in unexpected) else "")
        raise ValueError(f"--weights: the state dict does not fit the model: "
                         f"{'; '.join(problems)}{hint}")
    model.load_state_dict(state)


def load_model(spec: str, weights=None) -> torch.nn.Module:
    """Build the model named by ``spec`` — ``path/to/file.py:build`` or ``package.module:build``
    (a function or class called with no arguments) — and load ``weights`` into it if given."""
    where, _, attribute = str(spec).rpartition(":")
    if not where or not attribute:
        raise ValueError(f"--model must be MODULE:CALLABLE, a .py file or dotted module and the "
                         f"name of what builds the model (e.g. my_models.py:build); got {spec!r}")
    module = _import_module(where)
    builder = module
    for part in attribute.split("."):
        if not hasattr(builder, part):
            raise ValueError(f"--model: {where!r} has no attribute {attribute!r}")
        builder = getattr(builder, part)
    if not callable(builder):
        raise ValueError(f"--model: {where}:{attribute} is not callable (it is a "
                         f"{type(builder).__name__}); name a function or class that returns the model")
    try:
        model = builder()
    except (Exception, SystemExit) as err:  # noqa: BLE001 - the reader's code
        raise ValueError(f"--model: calling {attribute}() failed: {type(err).__name__}: "
                         f"{_first_line(err)}") from None
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"--model: {attribute}() returned a {type(model).__name__}, not a "
                         f"torch.nn.Module")
    if weights is not None:
        load_weights(model, weights)
    return model


def _parse(name: str, text: str, kind):
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}; "
                         f"got {text!r}") from None


def run_cli(args) -> int:
    from lsnotes.robustness import checklist as audit_lib
    from lsnotes.data import DATASETS, load_subset

    dataset = choice("--dataset", args.dataset, DATASETS)
    norm = choice("--norm", args.norm, audit_lib.NORMS)
    if args.eps is None and norm == "l2":
        raise ValueError("--eps is required with --norm l2 (the datasets' usual budgets are L∞)")
    eps = DATASETS[dataset].default_eps if args.eps is None else _parse("--eps", args.eps, float)
    eps = number_in("--eps", eps, 0, 1 if norm == "linf" else float("inf"), low_open=True)
    n = positive_int("--n", _parse("--n", args.n, int))
    seed = positive_int("--seed", _parse("--seed", args.seed, int), 0)
    batch_size = positive_int("--batch-size", _parse("--batch-size", args.batch_size, int))
    out = check_report_folder(args.out)
    device = resolve_device(args.device)
    model = load_model(args.model, args.weights).to(device)
    try:
        x, y = load_subset(dataset, "test", n, seed)
    except FileNotFoundError as err:
        raise ValueError(f"--dataset {dataset}: {_first_line(err)}") from None
    x, y = x.to(device), y.to(device)
    audit_lib.check_model(model, x, DATASETS[dataset].num_classes)
    if args.transfer:
        from lsnotes.robustness.book_models import transfer_source

        source, source_name, skipped = transfer_source(dataset, device, progress=True)
    else:
        source, source_name, skipped = None, None, "switched off with --no-transfer"
    report = audit_lib.audit(model, x, y, eps, norm=norm, quick=args.quick, source_model=source,
                             source_name=source_name or "source model", transfer_skipped=skipped,
                             seed=seed, batch_size=batch_size, progress=True,
                             model_name=args.name or args.model, dataset=dataset,
                             architecture=type(model).__name__)
    json_path, html_path = save_report_pair(report, out)
    print(report.text_table())
    print()
    for line in report.verdicts:
        print(f"- {line}")
    print(f"\nwrote {json_path} and {html_path}")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "audit", help="attack your own model with the book's checklist and report every "
                      "indicator of a failed attack",
        description="Load MODEL (and WEIGHTS), run the checklist's attacks on N class-balanced "
                    "test examples, compute the indicators of attack failure, and write "
                    "report.json and report.html to OUT.")
    parser.add_argument("--model", required=True,
                        help="path/to/file.py:build or package.module:build — a function or class "
                             "that returns the torch.nn.Module (inputs in [0, 1], logits out)")
    parser.add_argument("--weights", help="a state dict saved with torch.save "
                                          "(loaded with weights_only=True)")
    parser.add_argument("--dataset", required=True, help="fashion-mnist, mnist, cifar10, cifar100 "
                                                         "or svhn (test split)")
    parser.add_argument("--eps", help="the budget on pixels in [0, 1] (default: the dataset's "
                                      "usual L∞ ε)")
    parser.add_argument("--norm", default="linf", help="linf (default) or l2")
    parser.add_argument("--n", default="500", help="test examples, class-balanced (default 500)")
    parser.add_argument("--out", default="audit-report", help="folder for report.json and "
                                                               "report.html (default audit-report)")
    parser.add_argument("--quick", action="store_true",
                        help="the laptop-sized battery (default: the full one, with all of "
                             "AutoAttack, meant for a GPU)")
    parser.add_argument("--no-transfer", dest="transfer", action="store_false",
                        help="skip transfer from our normally trained model")
    parser.add_argument("--name", help="the model's name in the report (default: --model)")
    parser.add_argument("--seed", default="0", help="picks the test examples and seeds every "
                                                    "attack (default 0)")
    parser.add_argument("--batch-size", default="256", help="examples per attack batch")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.set_defaults(func=run_cli)


REPORT_FILES = ("report.json", "report.html")


def check_report_folder(out) -> Path:
    """``--out`` as a folder we may fill: new, or holding only an earlier audit's two files, in a
    writable parent. Checked before any work, so a bad path never costs an audit."""
    out = Path(str(out)).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must name a folder for report.json and report.html; {str(out)!r} "
                         f"is an existing file")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in REPORT_FILES)
        if others:
            raise ValueError(f"--out {str(out)!r} holds other files ({', '.join(others[:3])}); "
                             f"name a new folder or one holding only an earlier report")
    parent = out.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {str(out)!r}: the folder {str(parent)!r} is not writable")
    return out


def save_report_pair(report, out) -> tuple[Path, Path]:
    """Write report.json and report.html as a pair: both go to a fresh sibling folder, which then
    replaces ``out`` by renames, so a reader never sees the two files from different runs (at
    worst, for an instant, no folder)."""
    import shutil
    import tempfile

    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        report.save_json(fresh / REPORT_FILES[0])
        save_html(report, fresh / REPORT_FILES[1])
        fresh.chmod(0o755)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            old.rmdir()
            out.rename(old)
        fresh.rename(out)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out / REPORT_FILES[0], out / REPORT_FILES[1]
