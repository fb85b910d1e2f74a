"""lsnotes.chapters.logit_squeezing: m* beside printed logit ranges; each claim can fail."""

import numpy as np
import pytest

from lsnotes import losses, papers
from lsnotes.chapters import logit_squeezing as chapter


def fu_ranges():
    table = papers.table("fu2020", "table2")
    return {float(r.key[0]): [float(v) for v in r.values] for r in table.rows}


def equilibrium_ranges(scale=1.0, low=-0.1):
    """Ranges whose width is m*(α, 10) times ``scale``, lower end ``low``."""
    return {a: (low, low + scale * losses.equilibrium_margin(a, 10))
            for a in (0.1, 0.3, 0.5, 0.9)}


def test_loss_versus_margin_is_minimised_at_m_star():
    grid = np.linspace(0, 8, 8001)
    for a in (0.1, 0.5):
        best = grid[np.argmin(chapter.loss_versus_margin(grid, a, 10))]
        assert abs(best - losses.equilibrium_margin(a, 10)) < 2e-3


def test_the_table_has_one_row_per_alpha_and_infinite_m_star_at_zero():
    table = chapter.margins_beside_ranges(fu_ranges())
    assert len(table.rows) == len(fu_ranges())
    assert table.rows[0][4] == "∞" and table.rows[0][0] == "0"


def test_claims_hold_on_the_papers_numbers():
    assert all(chapter.range_claims(fu_ranges()).values())
    assert all(chapter.margin_claims(fu_ranges()).values())


def test_range_claims_fail_on_widths_that_grow_or_ranges_above_zero():
    growing = {0.1: (-0.5, 1.0), 0.5: (-0.5, 2.0)}
    claims = chapter.range_claims(growing)
    assert not claims["the widths shrink as α grows"]
    above_zero = {0.1: (0.5, 4.0), 0.5: (0.2, 2.0)}
    assert not list(chapter.range_claims(above_zero).values())[1]


def test_margin_claims_fail_when_the_ranges_are_narrower_than_m_star():
    claims = chapter.margin_claims(equilibrium_ranges(scale=0.5))
    assert not list(claims.values())[0]       # m* below every width
    wide = chapter.margin_claims(equilibrium_ranges(scale=3.0, low=-5.0))
    assert not list(wide.values())[1]         # m* at or above every upper end
    assert not list(wide.values())[3]         # m*(K = 100) above every width


def test_sls_claim_fails_when_the_widths_are_sls_margins():
    ranges = {a: (-0.01, -0.01 + losses.equilibrium_margin(a, 10, "sls"))
              for a in (0.1, 0.3, 0.5)}
    assert not list(chapter.margin_claims(ranges).values())[2]


def test_numbers_for_the_prose():
    numbers = chapter.range_numbers(fu_ranges())
    assert numbers.first_alpha == "0.1" and numbers.last_alpha == "0.9"
    assert float(numbers.width_first) == pytest.approx(5.05)
    without_ce = chapter.range_numbers({0.2: (-0.1, 3.0), 0.4: (-0.1, 2.0)})
    assert without_ce.width_unsmoothed == "—"  # no α = 0 row: not measured, shown as a dash


@pytest.mark.parametrize("ranges", [
    {}, {0.0: (-5.0, 15.0)}, {0.1: (1.0, 0.5)}, {1.5: (0.0, 1.0)}, {0.1: (0.0,)}, [1, 2],
])
def test_missing_or_bad_ranges_fail_loudly(ranges):
    for claims in (chapter.range_claims, chapter.margin_claims, chapter.range_numbers):
        with pytest.raises(ValueError):
            claims(ranges)


def test_figures_draw():
    assert chapter.draw_margins_and_ranges(fu_ranges()).axes
    explorer = chapter.loss_curve_explorer(10)
    before = explorer.redraw()
    assert explorer.set(alpha=0.5) != before
