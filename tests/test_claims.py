"""Every claim can fail: the predicates of :mod:`lsnotes.claims`, each with a counter-example, and
:class:`lsnotes.present.Claims`, which refuses to skip an asserted claim it cannot evaluate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lsnotes import claims as C
from lsnotes.present import ClaimFailed, Claims

NAN = float("nan")

# predicate: (arguments for which it must hold, arguments for which it must FAIL)
EXAMPLES = {
    "exceeds": [(dict(value=0.43, reference=0.21), dict(value=0.21, reference=0.21)),
                (dict(value=0.43, reference=0.21, by=0.10),
                 dict(value=0.30, reference=0.21, by=0.10))],
    "below": [(dict(value=0.1, reference=0.2), dict(value=0.2, reference=0.2)),
              (dict(value=0.1, reference=0.3, by=0.1), dict(value=0.25, reference=0.3, by=0.1))],
    "at_most": [(dict(value=0.05, bound=0.05), dict(value=0.051, bound=0.05))],
    "at_least": [(dict(value=0.9, bound=0.9), dict(value=0.89, bound=0.9))],
    "within": [(dict(value=0.52, reference=0.50, tolerance=0.03),
                dict(value=0.54, reference=0.50, tolerance=0.03)),
               (dict(value=0.48, reference=0.50, tolerance=0.03),
                dict(value=0.46, reference=0.50, tolerance=0.03))],
    "one_of": [(dict(value="ALS", allowed=("ALS", "BLS")),
                dict(value="SLS", allowed=("ALS", "BLS")))],
    "every": [(dict(flags=[True, True]), dict(flags=[True, False]))],
    "none_of": [(dict(flags=[False, False]), dict(flags=[False, True]))],
    "most": [(dict(flags=[True, True, False]), dict(flags=[True, False]))],
    "share_at_least": [(dict(flags=[True] * 9 + [False], share=0.9),
                        dict(flags=[True] * 8 + [False] * 2, share=0.9))],
    "strictly_decreasing": [(dict(values=[3.0, 2.0, 1.0]), dict(values=[3.0, 3.0, 1.0])),
                            (dict(values=[3.0, 2.0]), dict(values=[2.0, 3.0]))],
    "strictly_increasing": [(dict(values=[1, 2, 3]), dict(values=[1, 3, 2]))],
    "all_close": [(dict(actual=[1.0, 2.0], expected=[1.0, 2.0 + 1e-7], atol=1e-6),
                   dict(actual=[1.0, 2.0], expected=[1.0, 2.1], atol=1e-6))],
    "differs": [(dict(actual=[1.0, 2.0], expected=[1.0, 2.1], atol=1e-2),
                 dict(actual=[1.0, 2.0], expected=[1.0, 2.001], atol=1e-2))],
}

# predicate: arguments it must refuse as not measured (None, NaN, nothing)
MISSING = [
    ("exceeds", dict(value=None, reference=0.2)),
    ("exceeds", dict(value=0.3, reference=NAN)),
    ("below", dict(value=NAN, reference=0.2)),
    ("at_most", dict(value=None, bound=0.05)),
    ("at_least", dict(value=np.float64("nan"), bound=0.9)),
    ("within", dict(value=0.5, reference=None, tolerance=0.03)),
    ("one_of", dict(value=None, allowed=("ALS",))),
    ("every", dict(flags=[])),  # all([]) is True: would hold by construction
    ("every", dict(flags=[True, None])),
    ("none_of", dict(flags=[])),
    ("most", dict(flags=iter([]))),
    ("share_at_least", dict(flags=[], share=0.5)),
    ("strictly_decreasing", dict(values=[1.0])),
    ("strictly_decreasing", dict(values=[2.0, NAN])),
    ("strictly_increasing", dict(values=[])),
    ("all_close", dict(actual=[1.0, NAN], expected=[1.0, 1.0], atol=1e-6)),
    ("all_close", dict(actual=[], expected=[], atol=1e-6)),
    ("differs", dict(actual=None, expected=[1.0], atol=1e-6)),
]

# predicate: arguments of the wrong kind, and the parameter the ValueError must name
BAD = [
    ("exceeds", dict(value=True, reference=0.2), "value"),
    ("exceeds", dict(value="0.3", reference=0.2), "value"),
    ("exceeds", dict(value=0.3, reference=0.2, by=-0.1), "by"),
    ("within", dict(value=0.3, reference=0.2, tolerance=math.inf), "tolerance"),
    ("every", dict(flags=[0.3, 0.4]), "flags"),  # numbers, not outcomes
    ("every", dict(flags="yes"), "flags"),
    ("share_at_least", dict(flags=[True], share=1.5), "share"),
    ("one_of", dict(value="ALS", allowed=()), "allowed"),
    ("all_close", dict(actual=[1.0, 2.0], expected=[1.0, 2.0, 3.0], atol=0.1), "shape"),
]


def test_every_predicate_has_a_counter_example():
    assert set(EXAMPLES) == set(C.PREDICATES)


@pytest.mark.parametrize("name, holds, fails", [
    (name, holds, fails) for name, cases in EXAMPLES.items() for holds, fails in cases])
def test_predicate_holds_on_its_example_and_fails_on_its_counter_example(name, holds, fails):
    predicate = C.PREDICATES[name]
    yes, no = predicate(**holds), predicate(**fails)
    assert yes.holds is True and bool(yes) and yes.predicate == name
    assert no.holds is False and not no
    assert no.shown  # says what it compared


@pytest.mark.parametrize("name, arguments", MISSING)
def test_missing_input_fails_loudly(name, arguments):
    with pytest.raises(C.MissingMeasurement, match="not measured|empty|at least"):
        C.PREDICATES[name](**arguments)


@pytest.mark.parametrize("name, arguments, parameter", BAD)
def test_wrong_input_is_a_value_error_naming_the_parameter(name, arguments, parameter):
    with pytest.raises(ValueError, match=parameter):
        C.PREDICATES[name](**arguments)


def test_a_missing_measurement_is_both_a_claim_failure_and_a_value_error():
    assert issubclass(C.MissingMeasurement, ClaimFailed)
    assert issubclass(C.MissingMeasurement, ValueError)


def test_numpy_and_torch_outcomes_are_accepted():
    assert C.every(np.array([1.0, 2.0]) > 0.5).holds
    assert not C.most(torch.tensor([1.0, 0.0, 0.0]) > 0.5).holds
    assert C.exceeds(torch.tensor(0.5), np.float32(0.25)).holds


def test_shown_states_the_comparison():
    assert C.exceeds(0.431, 0.219).shown == "0.431 > 0.219"
    assert C.exceeds(0.431, 0.219, by=0.1).shown == "0.431 > 0.219 + 0.1"
    assert C.most([True, False, True]).shown == "2 of 3 > half"


# ----------------------------------------------------------------------------- measured

def test_measured_returns_the_values_and_fails_on_an_absent_key_or_none():
    reports = {"LS": 0.4, "PGD-AT": 0.5, "TRADES": None}
    assert C.measured(reports, "LS") == 0.4
    assert C.measured(reports, "LS", "PGD-AT") == (0.4, 0.5)
    with pytest.raises(C.MissingMeasurement, match=r"reports\['CE'\].*measured: 'LS', 'PGD-AT'"):
        C.measured(reports, "LS", "CE", what="reports")
    with pytest.raises(C.MissingMeasurement, match="TRADES"):
        C.measured(reports, "TRADES")
    with pytest.raises(ValueError, match="keys"):
        C.measured(reports)


# ----------------------------------------------------------------------------- Claims

def test_an_asserted_claim_that_was_not_measured_fails_and_is_not_skipped():
    with pytest.raises(ClaimFailed, match="not measured in this run: PGD-AT beats LS"):
        Claims({"PGD-AT beats LS": None, "LS beats CE": True}, asserted=["PGD-AT beats LS"])


def test_an_unasserted_claim_that_was_not_measured_is_shown_as_such():
    shown = Claims({"PGD-AT beats LS": None, "LS beats CE": True}).to_markdown()
    assert "- — not measured in this run: PGD-AT beats LS" in shown
    assert "- ✔ holds: LS beats CE" in shown


@pytest.mark.parametrize("outcome", [NAN, 0.3, "yes", [True], np.array([True, False])])
def test_a_claim_outcome_that_is_not_a_bool_is_refused(outcome):
    # bool(nan) is True: a NaN outcome would otherwise "hold"
    with pytest.raises(ValueError, match="LS beats CE"):
        Claims({"LS beats CE": outcome})


def test_a_failed_check_names_the_statement_and_the_comparison():
    with pytest.raises(ClaimFailed, match=r"LS beats CE \(0.2 > 0.3\)"):
        Claims({"LS beats CE": C.exceeds(0.2, 0.3)}, asserted=["LS beats CE"])
    shown = Claims({"LS beats CE": C.exceeds(0.4, 0.3)}, asserted=["LS beats CE"]).to_markdown()
    assert shown == "- ✔ holds (asserted): LS beats CE (0.4 > 0.3)"


def test_asserted_may_be_one_statement_as_a_string():
    with pytest.raises(ClaimFailed):
        Claims({"LS beats CE": False}, asserted="LS beats CE")
