"""The validation stage: on a generated ttbar shard (hepline histograms, summary, outputs) and
on the vendored real files (NanoAOD, RNTuple, collision data, PHYSLITE)."""

from __future__ import annotations

import json

import awkward as ak
import hist
import pytest
import uproot

from analysis.cli import main
from analysis.core.config import RunnerConfig
from analysis.core.provenance import read_provenance
from analysis.validation import (
    FLAVOURS,
    JET_ETA_MAX,
    JET_PT_MIN_GEV,
    MIN_EFFECTIVE_ENTRIES,
    make_object_histograms,
    summarise,
    summarise_objects,
    validate,
    validate_sample,
)
from tests.fixtures.files import REAL_FILES
from tests.fixtures.paths import DEFAULT_CONFIG


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


# ---------------------------------------------------------------------------------------
# the vendored real files (tests/data): NanoAOD, RNTuple, collision data, PHYSLITE
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_hepline_validate_on_real_files(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = REAL_FILES[name]
    sample = name.removesuffix(".root")
    assert main(["validate", "--config", str(DEFAULT_CONFIG), "--sample", sample, "--output-dir",
                 str(tmp_path), str(f.path)]) == 0
    summary = json.loads((tmp_path / f"{sample}.json").read_text())
    assert (summary["format"], summary["storage"], summary["is_data"]) == (f.format, f.storage, f.is_data)
    assert summary.get("nanoaod_version") == f.nanoaod_version and summary["events"] == f.entries
    assert ("flavour_fractions" in summary) is not f.is_data
    assert ("m_yy_median" in summary) is (name != "nano_tt_v12.root")  # a skim without photons
    assert "track_sd0_tails" not in summary
    if f.is_data:
        assert summary["sumw"] == f.entries
    with uproot.open(tmp_path / f"{sample}.root") as out:
        names = {k.split(";")[0] for k in out}
    assert {"jet_pt_all", "lead_electron_pt", "lead_muon_pt"} <= names
    assert ({f"jet_pt_{n}" for n in FLAVOURS.values()} <= names) is not f.is_data
    assert (tmp_path / f"{sample}.png").stat().st_size > 10_000
    rec = read_provenance(tmp_path / f"{sample}.json")
    assert rec["stage"] == "validation" and rec["inputs"][0]["path"] == str(f.path)


def test_physlite_validation_is_in_gev_with_mc_weights() -> None:
    f = REAL_FILES["PHYSLITE_example.root"]
    result = validate([str(f.path)], "physlite", RunnerConfig.validated({"chunksize": 1000}))
    with uproot.open(f.path) as rf:
        tree = rf["CollectionTree"]
        pt = tree["AnalysisJetsAuxDyn.pt"].array() / 1000.0  # MeV -> GeV
        eta = tree["AnalysisJetsAuxDyn.eta"].array()
        weight = ak.values_astype(ak.firsts(tree["EventInfoAuxDyn.mcEventWeights"].array()), "float64")
    sel = (pt > JET_PT_MIN_GEV) & (abs(eta) < JET_ETA_MAX) & (pt < 420.0)  # the histogram's range
    expected = float(ak.sum(ak.broadcast_arrays(weight, pt)[0][sel]))
    assert result.numbers["jets"] == pytest.approx(expected, rel=1e-9)
    assert result.sumw == pytest.approx(float(ak.sum(weight)), rel=1e-9)
    assert result.format == "physlite" and not result.is_data
    assert "jet_response" not in result.hists  # no matched generator jets in the view


def test_object_summary_reports_insufficient_statistics() -> None:
    h = make_object_histograms()
    h["lead_muon_pt"].fill(pt=[30.0] * (MIN_EFFECTIVE_ENTRIES - 1))
    h["lead_electron_pt"].fill(pt=[20.0] * 40 + [30.0] * 40)
    h["lead_photon_pt"].fill(pt=[50.0] * 30, weight=[1.0] * 29 + [1000.0])  # one weight dominates
    s = summarise_objects(h)
    assert s["leading_pt_median_gev"]["muon"] == f"insufficient statistics ({MIN_EFFECTIVE_ENTRIES - 1})"
    assert s["leading_pt_median_gev"]["electron"] == pytest.approx(25.0)
    assert s["leading_pt_median_gev"]["photon"] == "insufficient statistics (1)"
    assert s["m_yy_median"] == "insufficient statistics (0)" and s["jets"] == 0.0


def test_validate_with_an_explicit_format(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = str(REAL_FILES["nano_dy.root"].path)
    argv = ["validate", "--config", str(DEFAULT_CONFIG), "--sample", "dy", "--output-dir", str(tmp_path)]
    assert main([*argv, "--format", "physlite", path]) == 2
    assert f"hepline: error: {path}: no tree 'CollectionTree' in file" in capsys.readouterr().err
    assert main([*argv, "--format", "nanoaod", path]) == 0
    assert json.loads((tmp_path / "dy.json").read_text())["nanoaod_version"] == "v5"


def test_non_finite_objects_are_an_error_not_a_dropped_jet() -> None:
    """Validation dropped jets with NaN pT silently (4780 -> 4294 in issue 21): now an error
    naming the file, the field and the entry."""
    from types import SimpleNamespace

    import awkward as ak
    import numpy as np
    import pytest

    from analysis.core.errors import NonFiniteInputError
    from analysis.validation import _check_finite_view

    def coll(pts):
        pt = ak.Array(pts)
        return ak.zip({"pt": pt, "eta": pt * 0, "phi": pt * 0, "mass": pt * 0})

    good = {"jets": coll([[30.0, 20.0], [], [50.0]]), "photons": coll([[], [10.0], []]),
            "electrons": coll([[], [], []]), "muons": coll([[], [], []])}
    meta = {"filename": "f.root", "entrystart": 100}
    _check_finite_view(SimpleNamespace(weight=np.ones(3), **good), meta)  # finite: no error
    bad = {**good, "jets": coll([[30.0, 20.0], [], [float("nan")]])}
    with pytest.raises(NonFiniteInputError, match=r"^f\.root: jets\.pt holds 1 NaN/inf value\(s\), the first in entry 102$"):
        _check_finite_view(SimpleNamespace(weight=np.ones(3), **bad), meta)
    with pytest.raises(NonFiniteInputError, match=r"event weight .* entry 101$"):
        _check_finite_view(SimpleNamespace(weight=np.array([1.0, np.inf, 1.0]), **good), meta)
