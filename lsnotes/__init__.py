"""lsnotes: the helper package behind the textbook *Label smoothing and adversarial robustness*.

One module per concept; chapters import these modules and never copy their code:

The basics and the theory, flat:

- :mod:`lsnotes.checks`   argument validation and chapter parameters (profile, seed, device)
- :mod:`lsnotes.losses`   smoothed labels (SLS, ALS, BLS, SBLS, Szegedy) and Theorem 1
- :mod:`lsnotes.toy`      the triangular toy problem, solved exactly
- :mod:`lsnotes.data`     datasets kept on the training device
- :mod:`lsnotes.models`   the architectures the book trains
- :mod:`lsnotes.train`    one training entry point (LS and adversarial training)
- :mod:`lsnotes.cache`    an atomic, verified checkpoint cache

Three wings, each a subpackage:

- :mod:`lsnotes.attacks`     our attacks, one module per family, the original AutoAttack, the registry
- :mod:`lsnotes.robustness`  one evaluation engine: reports, gradient-masking symptoms, the audit
- :mod:`lsnotes.zoo`         what each chapter trains, declared once; planned and trained (Ray)

And what the chapters show:

- :mod:`lsnotes.papers`   the three papers' tables, as printed, as data
- :mod:`lsnotes.provenance` every number in a sentence about a paper: computed or in its JSON
- :mod:`lsnotes.claims`   tested predicates for chapter claims; missing inputs fail loudly
- :mod:`lsnotes.present`  numbers for prose, tables and claim lists in chapters
- :mod:`lsnotes.widgets`  sliders in JupyterLab with a static fallback in the built book
- :mod:`lsnotes.plots`    the book's figure style
- :mod:`lsnotes.runbook`  chapters executed with papermill; the book built from them
- :mod:`lsnotes.cli`      the ``lsnotes`` command

Benchmarks and the GPU check (``make gpu-check``) live in ``benchmarks/``, outside the package.
"""

__version__ = "0.1.0"
