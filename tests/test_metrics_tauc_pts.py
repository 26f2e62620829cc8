"""tauc_pts_<F>: two_branch.txt §4's tAUC formula read literally (mean TAR over ROC points)."""

from __future__ import annotations

import numpy as np
import pytest

from dfdetect import metrics as M


def test_tauc_pts_hand_computed():
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    # operating points: (0, 0) (0, .5) (.5, .5) (.5, 1) (1, 1)
    m = M.binary_metrics(y, s, far_points=(0.1, 0.5))
    assert m["tauc_pts_0.1"] == pytest.approx(0.25)      # (0, 0) and (0, .5)
    assert m["tauc_pts_0.5"] == pytest.approx(0.5)       # the four points with FAR <= .5
    assert m["tauc_0.1"] == pytest.approx(0.5)           # the grid reading differs


def test_tauc_pts_depends_on_thresholds_not_grid():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(400), np.ones(400)].astype(int)
    s = np.r_[rng.normal(0, 1, 400), rng.normal(2.5, 1, 400)]
    m = M.binary_metrics(y, s, far_points=(0.1,))
    fpr, tpr, _ = M.roc_curve(y, s, drop_intermediate=False)
    assert m["tauc_pts_0.1"] == pytest.approx(np.mean(tpr[fpr <= 0.1]))
    assert m["tauc_pts_0.1"] < m["tauc_0.1"]             # the run at FAR = 0 pulls it down
    with pytest.warns(M.UndefinedMetricWarning):
        one = M.binary_metrics([1, 1], [0.2, 0.3], far_points=(0.1,))
    assert np.isnan(one["tauc_pts_0.1"])
