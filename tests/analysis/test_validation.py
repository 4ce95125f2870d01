"""The validation stage on a generated ttbar shard: histograms, summary, outputs."""

from __future__ import annotations

import json

import hist
import pytest
import uproot

from analysis.validation import FLAVOURS, summarise, validate_sample


def test_validation_outputs_and_summary(tmp_path, ttbar_file, config) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import N_TTBAR

    result = validate_sample([str(ttbar_file)], "ttbar", tmp_path, config)
    assert result.events == N_TTBAR and set(result.hists) == {"jet_pt", "jet_response", "track_sd0", "m_yy"}
    summary = result.to_dict()
    fr = summary["flavour_fractions"]
    assert sum(fr.values()) == pytest.approx(1.0)
    assert fr["b"] > 0.2 and fr["light"] > 0.3
    assert 0.93 < summary["jet_response_median"] < 1.05
    tails = summary["track_sd0_tails"]
    assert tails["b"]["frac_sd0_gt_3"] > 4 * tails["light"]["frac_sd0_gt_3"]
    with uproot.open(tmp_path / "ttbar.root") as f:
        names = {k.split(";")[0] for k in f.keys()}
    assert {f"jet_pt_{n}" for n in FLAVOURS.values()} <= names and "m_yy" in names
    assert (tmp_path / "ttbar.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "ttbar.json").read_text())["events"] == N_TTBAR


def test_summary_quantiles_on_known_histogram() -> None:
    from analysis.validation import make_histograms

    h = make_histograms()
    h["m_yy"].fill(m_yy=[124.5] * 60 + [125.5] * 60)  # median exactly on the 125 bin edge
    h["jet_pt"].fill(flavour=[5, 5, 0, 4], pt=[30, 40, 50, 60])
    s = summarise(h)
    assert s["flavour_fractions"] == {"b": 0.5, "c": 0.25, "light": 0.25, "tau": 0.0}
    assert s["m_yy_median"] == pytest.approx(125.0, abs=1e-9)
    assert s["m_yy_half_width_68"] == pytest.approx(0.68, abs=0.01)
    assert isinstance(h["m_yy"], hist.Hist)
