"""t-DCF (ASVspoof 2019 legacy, 2021 revised) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from dfdetect.metrics_asv import (COST_2019, COST_2021, asv_error_rates, det_curve, read_asv_scores,
                                  tdcf_2019, tdcf_2021, tdcf_from_fake_prob)

BONA = np.array([0.9, 0.8, 0.3])
SPOOF = np.array([0.1, 0.4])
ASV = {"Pmiss_asv": 0.1, "Pfa_asv": 0.05, "Pmiss_spoof_asv": 0.2, "Pfa_spoof_asv": 0.8}


def test_cost_models():
    assert COST_2019["Ptar"] == pytest.approx(0.9405) and COST_2019["Pnon"] == pytest.approx(0.0095)
    assert COST_2019["Pspoof"] == 0.05 and COST_2019["Cfa_cm"] == 10 and COST_2019["Cmiss_asv"] == 1
    assert COST_2021["Cfa_spoof"] == 10 and COST_2021["Cmiss"] == 1 and COST_2021["Cfa"] == 10


def test_det_curve_by_hand():
    frr, far, thr = det_curve(BONA, SPOOF)
    assert frr == pytest.approx([0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert far == pytest.approx([1, 0.5, 0.5, 0, 0, 0])
    assert thr[1:] == pytest.approx([0.1, 0.3, 0.4, 0.8, 0.9])


def test_tdcf_2019_by_hand():
    c1 = 0.9405 * (1 - 0.1) - 0.0095 * 10 * 0.05          # 0.8417
    c2 = 10 * 0.05 * (1 - 0.2)                             # 0.4
    r = tdcf_2019(BONA, SPOOF, ASV)
    assert r["C1"] == pytest.approx(c1) and r["C2"] == pytest.approx(c2)
    expected = [(c1 * m + c2 * f) / min(c1, c2) for m, f in
                zip([0, 0, 1 / 3, 1 / 3, 2 / 3, 1], [1, 0.5, 0.5, 0, 0, 0])]
    assert r["curve"] == pytest.approx(expected)
    assert r["min_tdcf"] == pytest.approx(0.5)


def test_tdcf_2021_by_hand():
    c0 = 0.9405 * 0.1 + 0.0095 * 10 * 0.05                 # 0.0988
    c1 = 0.9405 - c0
    c2 = 0.05 * 10 * 0.8
    r = tdcf_2021(BONA, SPOOF, ASV)
    assert (r["C0"], r["C1"], r["C2"]) == pytest.approx((c0, c1, c2))
    assert r["min_tdcf"] == pytest.approx((c0 + c2 * 0.5) / (c0 + min(c1, c2)))
    # a perfect CM: t-DCF = C0 / (C0 + min(C1, C2))
    assert tdcf_2021([0.9, 0.8], [0.1, 0.2], ASV)["min_tdcf"] == pytest.approx(c0 / (c0 + c2))


def test_asv_rates_and_fake_prob_orientation(tmp_path):
    rng = np.random.default_rng(0)
    asv = {"target": rng.normal(3, 1, 200), "nontarget": rng.normal(0, 1, 200), "spoof": rng.normal(2, 1, 100)}
    rates = asv_error_rates(asv["target"], asv["nontarget"], asv["spoof"])
    assert 0 < rates["eer"] < 0.2
    assert rates["Pfa_spoof_asv"] == pytest.approx(1 - rates["Pmiss_spoof_asv"])
    y = np.array([0, 0, 0, 1, 1])
    p_fake = 1 - np.concatenate([BONA, SPOOF])
    r = tdcf_from_fake_prob(y, p_fake, asv)
    assert r["min_tdcf_2019"] == pytest.approx(tdcf_2019(BONA, SPOOF, rates)["min_tdcf"])
    assert r["min_tdcf_2021"] == pytest.approx(tdcf_2021(BONA, SPOOF, rates)["min_tdcf"])
    # score files: ASVspoof whitespace format and CSV
    txt = tmp_path / "asv.txt"
    txt.write_text("LA_0001 - target 3.0\nLA_0001 - nontarget -1.0\nLA_0002 A07 spoof 1.5\n")
    got = read_asv_scores(txt)
    assert got["target"].tolist() == [3.0] and got["spoof"].tolist() == [1.5]
    csv = tmp_path / "asv.csv"
    csv.write_text("key,score\ntarget,1\nnontarget,0\nspoof,0.5\n")
    assert read_asv_scores(csv)["nontarget"].tolist() == [0.0]
    csv.write_text("key,score\ntarget,1\n")
    with pytest.raises(ValueError, match="nontarget"):
        read_asv_scores(csv)
