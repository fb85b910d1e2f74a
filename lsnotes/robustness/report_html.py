"""One self-contained HTML page for an :class:`~lsnotes.robustness.report.AuditReport`.

Everything is inline — the stylesheet, and the ε-sweep figure as a base64 PNG — so the page opens
offline and can be mailed or archived as a single file; it references nothing on the network.
"""

from __future__ import annotations

import base64
import html
import io

from pathlib import Path

from lsnotes.cache import atomic_write
from lsnotes.robustness.report import AuditReport

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.92rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { padding: 0.8rem 1rem; border-left: 0.4rem solid #2a7; background: #f3faf5; }
.verdict.serious { border-color: #c33; background: #fdf3f3; }
.status-serious { color: #b00; font-weight: bold; }
.status-warning { color: #a60; font-weight: bold; }
.status-ok { color: #2a7; }
.status-skipped { color: #777; }
.setting { color: #555; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _percent(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def sweep_figure(reports: dict):
    """Accuracy under PGD-k against ε for each named report, with each battery's worst case at
    the audited ε as a star (a :class:`matplotlib.figure.Figure`, outside pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), constrained_layout=True)
    ax = fig.subplots()
    for (name, report), colour in zip(reports.items(), _COLOURS):
        points = [(e, a) for e, a in report.eps_sweep.items() if a is not None]
        label = f"{name}: " if len(reports) > 1 else ""
        ax.plot([e for e, _ in points], [100 * a for _, a in points], "o-", color=colour,
                label=f"{label}PGD-{report.battery.pgd_steps}")
        ax.plot([report.eps], [100 * report.robust_acc], "*", markersize=14, color=colour,
                label=f"{label}worst case over the battery")
        ax.axvline(report.eps, color="#888", linestyle="--", linewidth=1)
    first = next(iter(reports.values()))
    ax.set_xlabel(f"ε ({'L∞' if first.norm == 'linf' else 'L2'}, pixels in [0, 1]); "
                  f"the last point allows any image")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return fig


_COLOURS = ("#1f77b4", "#c33", "#2a7", "#9467bd", "#8c564b", "#e377c2")


def sweep_png(report: AuditReport) -> bytes:
    """:func:`sweep_figure` of one report as PNG bytes (no metadata naming any web address)."""
    buffer = io.BytesIO()
    sweep_figure({report.model_name: report}).savefig(buffer, format="png", dpi=100,
                                                      metadata={"Software": None})
    return buffer.getvalue()


def _accuracy_table(report: AuditReport) -> str:
    head = ("<tr><th>attack</th><th>what it does</th><th>run on</th><th>accuracy (%)</th>"
            "<th>newly broken</th><th>worst case after (%)</th><th>time (s)</th></tr>")
    rows = []
    for r in report.table():
        scope = {"all": "every example", "survivors": "examples still standing"}[r["scope"]]
        description = r["description"] + (f" — failed: {r['error']}" if r["error"] else "")
        rows.append(f"<tr><td>{_e(r['attack'])}</td><td>{_e(description)}</td><td>{scope}</td>"
                    f"<td class='num'>{_percent(r['accuracy'])}</td>"
                    f"<td class='num'>{'—' if r['newly_broken'] is None else r['newly_broken']}</td>"
                    f"<td class='num'>{_percent(r['worst_case_after'])}</td>"
                    f"<td class='num'>{r['seconds']:.1f}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _indicator_table(indicators) -> str:
    head = ("<tr><th>indicator</th><th>examples</th><th>status</th><th>what was found</th>"
            "<th>what it means</th><th>what to do</th></tr>")
    rows = []
    for i in indicators:
        rows.append(f"<tr><td>{_e(i.title)}<br><small>{_e(i.source)}</small></td>"
                    f"<td class='num'>{i.count} / {i.n}</td>"
                    f"<td class='status-{i.status}'>{i.status}</td><td>{_e(i.finding)}</td>"
                    f"<td>{_e(i.meaning)}</td><td>{_e(i.advice)}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _examples_table(report: AuditReport, limit: int = 100) -> str:
    tripped = {}
    for ind in report.indicators:
        for i, flag in enumerate(ind.per_example or []):
            if flag:
                tripped.setdefault(i, []).append(ind.title)
    if not tripped:
        return "<p>No example trips an indicator.</p>"
    worst = report.worst_case_correct
    rows = [f"<tr><td class='num'>{i}</td><td class='num'>{report.labels[i]}</td>"
            f"<td>{'robust' if worst[i] else 'broken'}</td><td>{_e(', '.join(names))}</td></tr>"
            for i, names in sorted(tripped.items())[:limit]]
    more = (f"<p>… and {len(tripped) - limit} more (all are in the JSON report).</p>"
            if len(tripped) > limit else "")
    return ("<table><tr><th>example</th><th>label</th><th>worst case</th><th>indicators</th></tr>"
            + "".join(rows) + "</table>" + more)


def render(report: AuditReport) -> str:
    """The report as one HTML document (a string)."""
    info = report.to_dict()
    versions = ", ".join(f"{k} {v}" for k, v in info["extra"]["versions"].items())
    norm = "L∞" if report.norm == "linf" else "L2"
    figure = base64.b64encode(sweep_png(report)).decode("ascii")
    serious = " serious" if report.serious else ""
    # while a serious indicator stands the worst case is only an upper bound: never shown bold
    headline = (f"robust accuracy <em>at most</em> {_percent(report.robust_acc)} % (an upper "
                f"bound while serious indicators stand)" if report.serious else
                f"robust accuracy <strong>{_percent(report.robust_acc)} %</strong>")
    verdicts = "".join(f"<li>{_e(v)}</li>" for v in report.verdicts[1:]) or \
        "<li>No indicator fired.</li>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Robustness audit: {_e(report.model_name)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Robustness audit: {_e(report.model_name)}</h1>
<p class="setting">{_e(report.architecture)} on {_e(report.dataset)}; threat model {norm},
ε = {report.eps:g} on pixels in [0, 1]; {report.n_examples} test examples; the
{_e(report.battery.name)} battery; seed {report.seed}; {_e(report.device)};
{report.seconds:.0f} s. {_e(versions)}.</p>
<div class="verdict{serious}"><strong>Verdict.</strong> {_e(report.verdict)}</div>
<h2>What fired, and what to do</h2>
<ul>{verdicts}</ul>
<h2>Accuracy under each attack</h2>
<p>Clean accuracy {_percent(report.clean_acc)} %; {headline}, the per-example worst case over
every attack below. Cheap attacks run on every example; the stronger ones only on the examples no earlier
attack broke, so their row gives the examples they broke first and the worst case so far.</p>
{_accuracy_table(report)}
<h2>Accuracy against ε</h2>
<img alt="accuracy under PGD against epsilon" src="data:image/png;base64,{figure}">
<h2>Indicators of attack failure</h2>
<p>The six indicators of Pintor et al. (2022), and two symptoms from the book's checklist.
<em>serious</em>: the robust accuracy above may still be too high;
<em>warning</em>: it fired, but the worst case already accounts for it.</p>
{_indicator_table(report.indicators)}
<h2>AutoAttack's checks</h2>
<p>The checks later AutoAttack releases print (Croce &amp; Hein), computed from the same run.</p>
{_indicator_table(report.autoattack_checks)}
<h2>Examples that trip an indicator</h2>
{_examples_table(report)}
<p class="setting">Written by lsnotes audit. The JSON report next to this page has every
per-example result.</p>
</body>
</html>
"""


def save_html(report: AuditReport, path) -> Path:
    """Write :func:`render`'s page for ``report`` to ``path``, atomically; returns the path."""
    path = Path(path)
    atomic_write(path, render(report).encode("utf-8"))
    path.chmod(0o644)  # a report is for reading; the temporary file was private
    return path
