"""One evaluation engine: attacks run on the same examples, the per-example worst case, the
indicators of attack failure, and the reports.

- :mod:`~lsnotes.robustness.evaluate`: a robustness report (clean and per-attack accuracy, the
  worst case) as RobustBench's ``model_info`` JSON; ``lsnotes attack``;
- :mod:`~lsnotes.robustness.diagnostics`: the classic symptoms of gradient masking;
- :mod:`~lsnotes.robustness.checklist`: :func:`audit`, the evaluation checklist on any model,
  with :mod:`~lsnotes.robustness.pgd_trace` (PGD that records its iterates) and
  :mod:`~lsnotes.robustness.indicators` (the indicators of attack failure);
- :mod:`~lsnotes.robustness.report` (what an audit found), :mod:`~lsnotes.robustness.report_html`
  (its self-contained page) and :mod:`~lsnotes.robustness.cli` (``lsnotes audit``);
- :mod:`~lsnotes.robustness.book_models`: the book's own models audited, and the model we
  transfer from;
- :mod:`~lsnotes.robustness.sharded`: a long battery split into shards, locally or on Ray.

The engine sits above :mod:`lsnotes.zoo` (the book's models, Ray) and nothing in the zoo imports it.
"""

from lsnotes.robustness.evaluate import (DEFAULT_ATTACKS, RobustnessReport, library_versions,  # noqa: F401
                                         model_info, percent_string, robustness_report, save_json)
from lsnotes.robustness.diagnostics import (MaskingDiagnostics, Symptom,  # noqa: F401
                                            gradient_masking_diagnostics)
from lsnotes.robustness.report import AttackRow, AuditReport, Indicator  # noqa: F401
from lsnotes.robustness.pgd_trace import PGDTrace, traced_pgd  # noqa: F401
from lsnotes.robustness.checklist import BATTERIES, Battery, audit  # noqa: F401
from lsnotes.robustness.report_html import save_html  # noqa: F401
from lsnotes.robustness.sharded import sharded_report  # noqa: F401
