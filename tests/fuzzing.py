"""How property tests draw their examples. ``make test`` (and CI) runs them derandomised: the
same examples on every run and no example database, so a green tree stays green. ``make fuzz``
(``LSNOTES_FUZZ=1``) explores: fresh examples, many more of them, failures kept in the database.
"""

from __future__ import annotations

import os

from hypothesis import settings

FUZZ = os.environ.get("LSNOTES_FUZZ") == "1"
FUZZ_FACTOR = 40

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("fuzz", derandomize=False, deadline=None, print_blob=True)
settings.load_profile("fuzz" if FUZZ else "ci")


def examples(n: int) -> int:
    """``n`` examples in ``make test``; ``FUZZ_FACTOR`` times as many in ``make fuzz``."""
    return n * FUZZ_FACTOR if FUZZ else n
