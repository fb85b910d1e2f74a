"""make test cannot flake on a property test: its examples are the same on every run."""

from hypothesis import settings

import fuzzing


def test_property_tests_are_derandomised_unless_fuzzing():
    if fuzzing.FUZZ:
        assert not settings.default.derandomize and fuzzing.examples(10) == 10 * fuzzing.FUZZ_FACTOR
    else:
        assert settings.default.derandomize and settings.default.database is None
        assert fuzzing.examples(10) == 10
