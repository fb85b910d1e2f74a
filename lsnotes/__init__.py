"""lsnotes: the helper package behind the textbook *Label smoothing and adversarial robustness*.

One module per concept; chapters import these modules and never copy their code:

- :mod:`lsnotes.checks`   argument validation and chapter parameters (profile, seed, device)
- :mod:`lsnotes.losses`   smoothed labels (SLS, ALS, BLS, SBLS, Szegedy) and Theorem 1
- :mod:`lsnotes.toy`      the triangular toy problem, solved exactly
- :mod:`lsnotes.data`     datasets kept on the training device
- :mod:`lsnotes.models`   the papers' architectures
- :mod:`lsnotes.train`    one training entry point (LS and adversarial training)
- :mod:`lsnotes.cache`    an atomic, verified checkpoint cache
- :mod:`lsnotes.attacks`  FGSM, BIM, PGD, CW, DeepFool, ODI, MultiTargeted, AutoAttack, transfer
- :mod:`lsnotes.evaluate` robustness reports and gradient-masking diagnostics
- :mod:`lsnotes.widgets`  sliders in JupyterLab with a static fallback in the built book
- :mod:`lsnotes.plots`    the book's figure style
- :mod:`lsnotes.cli`      the ``lsnotes`` command
"""

__version__ = "0.1.0"
