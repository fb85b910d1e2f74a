"""lsnotes.chapters.adversarial_ls: the BLS-weights figure of the chapter adversarial_ls."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from lsnotes import losses
from lsnotes.chapters import adversarial_ls as chapter


def _weights(logits, temperatures):
    z = torch.tensor([logits], dtype=torch.float64)
    y = torch.tensor([0])
    return np.stack([losses.smoothing_distribution(z, y, "bls", t)[0].numpy()
                     for t in temperatures])


def test_draws_one_line_per_class_and_the_two_reference_levels():
    logits, temperatures = [2.0, -1.0, 0.5], np.logspace(-2, 2, 5)
    fig = chapter.draw_bls_weights(temperatures, _weights(logits, temperatures), logits, 0)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    drawn = [line for line in ax.lines if len(line.get_xdata()) == len(temperatures)]
    assert len(drawn) == 3
    # The thick red line is the smallest logit's (class 1), the thick black one the true class's.
    widths = {i: line.get_linewidth() for i, line in enumerate(drawn)}
    assert widths[0] == widths[1] == 2.5 and widths[2] == 1
    levels = sorted(line.get_ydata()[0] for line in ax.lines if len(line.get_xdata()) == 2)
    assert np.allclose(levels, [1 / 3, 1 / 2])


@pytest.mark.parametrize("bad", [
    dict(temperatures=[1.0]),
    dict(temperatures=[-1.0, 1.0]),
    dict(weights=np.ones((2, 3))),           # rows are not distributions
    dict(weights=np.full((3, 3), 1 / 3)),    # one row too many
    dict(logits=[1.0, 2.0]),                 # one logit short
    dict(label=3),
])
def test_bad_input_is_refused_by_name(bad):
    args = dict(temperatures=[0.1, 10.0], weights=np.full((2, 3), 1 / 3),
                logits=[0.0, 1.0, 2.0], label=0)
    args.update(bad)
    with pytest.raises(ValueError, match=next(iter(bad))):
        chapter.draw_bls_weights(**args)
