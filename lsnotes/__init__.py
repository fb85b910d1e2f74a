"""lsnotes: the helper package behind the textbook *Label smoothing and adversarial robustness*.

One module per concept; chapters import these modules and never copy their code:

- :mod:`lsnotes.checks`   argument validation and chapter parameters (profile, seed, device)
- :mod:`lsnotes.losses`   smoothed labels (SLS, ALS, BLS, SBLS, Szegedy) and Theorem 1
- :mod:`lsnotes.toy`      the triangular toy problem, solved exactly
- :mod:`lsnotes.data`     datasets kept on the training device
- :mod:`lsnotes.models`   the papers' architectures
- :mod:`lsnotes.train`    one training entry point (LS and adversarial training)
- :mod:`lsnotes.cache`    an atomic, verified checkpoint cache
- :mod:`lsnotes.experiments` the book's model zoo: each paper's setting, what each chapter trains
- :mod:`lsnotes.zoo`      the zoo planned and trained, sequentially or on a Ray cluster
- :mod:`lsnotes.attacks`  FGSM, BIM, PGD, CW, DeepFool, ODI, MultiTargeted, transfer; the registry
- :mod:`lsnotes.autoattack_original` AutoAttack, APGD and Square through the original code
- :mod:`lsnotes.evaluate` robustness reports and gradient-masking diagnostics
- :mod:`lsnotes.papers`   the three papers' tables, as printed, as data
- :mod:`lsnotes.provenance` every number in a sentence about a paper: computed or in its JSON
- :mod:`lsnotes.claims`   tested predicates for chapter claims; missing inputs fail loudly
- :mod:`lsnotes.present`  numbers for prose, tables and claim lists in chapters
- :mod:`lsnotes.widgets`  sliders in JupyterLab with a static fallback in the built book
- :mod:`lsnotes.plots`    the book's figure style
- :mod:`lsnotes.runbook`  chapters executed with papermill; the book built from them
- :mod:`lsnotes.gpucheck` ``make gpu-check``: CUDA tests and GPU timings
- :mod:`lsnotes.cli`      the ``lsnotes`` command
"""

__version__ = "0.1.0"
