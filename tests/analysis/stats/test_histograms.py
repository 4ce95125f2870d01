"""analysis.stats.histograms: the HistSet (merge, normalisation to sigma x L, cutflow table),
writers (pickle, ROOT TH1s, pyhf JSON)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot

from analysis.core.errors import InputFileError
from analysis.stats import histograms as H

REGIONS = ["sr", "cr"]
SYSTS = ["jet_scale", "photon_resolution"]


def make_set(samples=None, lumi=139.0):
    """Un-normalised histogram set: sample -> (xsec_pb, sumw, [(region, variation, x, w), ...])."""
    samples = samples or {
        "sig": (2.0, 4000.0, [("sr", "nominal", [125.2, 125.7, 124.1], [1.0, 2.0, 0.5]),
                              ("sr", "jet_scaleUp", [125.2, 125.7], [1.0, 2.0]),
                              ("sr", "jet_scaleDown", [125.2], [1.0]),
                              ("sr", "photon_resolutionUp", [121.0, 129.0], [1.5, 2.0])]),
        "bkg": (50.0, 2.0e5, [("sr", "nominal", np.linspace(106, 158, 40), np.full(40, 3.0)),
                              ("cr", "nominal", [110.0], [4.0])]),
    }
    hs = H.HistSet(lumi_fb=lumi, observables=["m_yy"], regions=REGIONS,
                   variations=H.variation_names(SYSTS), systematics=SYSTS)
    for name, (xs, sumw, fills) in samples.items():
        hists = H.make_hists(["m_yy"], REGIONS, H.variation_names(SYSTS))
        for region, var, x, w in fills:
            hists["m_yy"].fill(region=region, variation=var, m_yy=np.asarray(x), weight=np.asarray(w))
        hists["m_yy"] = H.mirror_down(hists["m_yy"], "photon_resolution")
        hs.samples[name] = H.SampleHists(
            hists=hists, xsec_pb=xs, sumw=sumw, n_events=10, files=[f"{name}.root"],
            cutflow=H.Cutflow(steps=["all", "cut"], raw=[10, 3], sumw=[sumw, 3.5], sumw2=[sumw, 5.25]))
    return hs


def test_norm_factor_is_sigma_times_lumi_over_sumw():
    assert H.norm_factor(2.0, 4000.0, 139.0) == pytest.approx(2.0 * 1000 * 139 / 4000)
    assert H.norm_factor(1.0, 1.0) == pytest.approx(139000.0)  # default 139 fb^-1
    with pytest.raises(ValueError, match="sum of generator weights"):
        H.norm_factor(1.0, 0.0)
    with pytest.raises(ValueError, match="cross-section"):
        H.norm_factor(None, 1.0)


def test_normalisation_against_sigma_times_lumi():
    hs = make_set()
    out = hs.normalise(100.0)
    k = 2.0 * 1000 * 100.0 / 4000.0
    nom = out.hist("sig", "m_yy", "sr")
    assert nom.values().sum() == pytest.approx(k * 3.5)
    assert nom.variances().sum() == pytest.approx(k * k * (1 + 4 + 0.25))
    sig = out.samples["sig"]
    assert sig.norm == pytest.approx(k)
    assert sig.cutflow.weighted == pytest.approx([k * 4000.0, k * 3.5])
    assert sig.cutflow.weighted_err == pytest.approx([k * np.sqrt(4000.0), k * np.sqrt(5.25)])
    # a sample whose every event passes holds sigma x L
    assert sig.cutflow.weighted[0] == pytest.approx(2.0 * 1000 * 100.0)
    assert out.normalised and out.lumi_fb == 100.0
    # the input is untouched
    assert not hs.normalised and hs.samples["sig"].norm is None and hs.samples["sig"].cutflow.weighted is None
    assert hs.hist("sig", "m_yy", "sr").values().sum() == pytest.approx(3.5)
    # exactly scale_hist with norm_factor, bin by bin (flow bins included)
    ref = H.scale_hist(hs.samples["sig"].hists["m_yy"], H.norm_factor(2.0, 4000.0, 100.0))
    assert np.array_equal(ref.view(flow=True).value, sig.hists["m_yy"].view(flow=True).value)
    assert np.array_equal(ref.view(flow=True).variance, sig.hists["m_yy"].view(flow=True).variance)
    again = out.normalise()
    assert again.samples["sig"].norm == pytest.approx(k)  # idempotent
    assert again.hist("sig", "m_yy", "sr").values().sum() == pytest.approx(k * 3.5)
    with pytest.raises(ValueError, match="different luminosity"):
        out.normalise(139.0)
    bad = make_set()
    bad.samples["sig"].sumw = None
    with pytest.raises(ValueError, match="sample 'sig'"):
        bad.normalise()


def test_data_samples_are_not_scaled():
    hs = make_set()
    hs.samples["bkg"].is_data = True
    out = hs.normalise()
    assert out.samples["bkg"].norm == 1.0
    assert np.array_equal(out.samples["bkg"].hists["m_yy"].values(flow=True),
                          hs.samples["bkg"].hists["m_yy"].values(flow=True))


def test_mirror_down():
    h = make_set().samples["sig"].hists["m_yy"]
    nom = h[{"region": "sr", "variation": "nominal"}].values()
    up = h[{"region": "sr", "variation": "photon_resolutionUp"}].values()
    dn = h[{"region": "sr", "variation": "photon_resolutionDown"}].values()
    assert dn == pytest.approx(np.clip(2 * nom - up, 0, None))
    assert dn.sum() > 0


def test_hist_accessor():
    hs = make_set()
    h = hs.hist("sig", "m_yy", "sr", "jet_scaleUp")
    assert h.ndim == 1 and h.values().sum() == pytest.approx(3.0)
    assert hs.hist("bkg", "m_yy", "cr").values().sum() == pytest.approx(4.0)
    assert set(hs.hists_of("m_yy")) == {"sig", "bkg"} and hs.hists_of("m_bb") == {}
    with pytest.raises(KeyError, match="sample 'nope'"):
        hs.hist("nope", "m_yy", "sr")


def test_root_file_names_and_contents(tmp_path):
    hs = make_set().normalise()
    path = hs.write_root(tmp_path / "h.root")
    with uproot.open(path) as f:
        keys = {k.split(";")[0] for k in f.keys(recursive=True)}
        assert "m_yy/sr_sig" in keys and "m_yy/cr_bkg" in keys
        assert "m_yy/sr_sig_jet_scaleUp" in keys and "m_yy/sr_sig_photon_resolutionDown" in keys
        assert len([k for k in keys if k.startswith("m_yy/")]) == 2 * 2 * 5
        th1 = f["m_yy/sr_sig"]
        assert th1.classname.startswith("TH1")
        h = hs.hist("sig", "m_yy", "sr")
        assert th1.values() == pytest.approx(h.values())
        assert th1.errors() == pytest.approx(np.sqrt(h.variances()))
        assert th1.axis().edges() == pytest.approx(h.axes[0].edges)
        up = f["m_yy/sr_sig_jet_scaleUp"].values()
        assert up.sum() == pytest.approx(3.0 * hs.samples["sig"].norm)


def test_writers_store_the_provenance_record(tmp_path):
    """ROOT: a TObjString beside the observable folders (every other key still a TH1);
    pickle and workspace JSON: a sidecar. Contents do not depend on the record."""
    from analysis.core.provenance import PROVENANCE_KEY, provenance_record, read_provenance, sidecar_path
    from analysis.stats.limits import build_workspace

    hs = make_set().normalise()
    rec = provenance_record(stage="histograms", config={"seed": 1}, extra={"lumi_fb": 139.0})
    root = hs.write_root(tmp_path / "h.root", provenance=rec)
    plain = hs.write_root(tmp_path / "plain.root")
    assert read_provenance(root) == rec and not sidecar_path(root).exists()
    with uproot.open(root) as f, uproot.open(plain) as g:
        assert {k.split(";")[0] for k in f.keys(recursive=False)} == {"m_yy", PROVENANCE_KEY}
        th1s = [k for k in f.keys(recursive=True, cycle=False) if k != PROVENANCE_KEY]
        assert sorted(th1s) == sorted(g.keys(recursive=True, cycle=False))
        for k in th1s:
            if k != "m_yy":
                assert f[k].classname.startswith("TH1"), k
                assert np.array_equal(f[k].values(flow=True), g[k].values(flow=True)), k
                assert np.array_equal(f[k].variances(flow=True), g[k].variances(flow=True)), k
    pkl = hs.write(tmp_path / "h.pkl", provenance=rec)
    assert read_provenance(pkl) == rec and H.HistSet.read(pkl).lumi_fb == 139.0
    spec, _ = build_workspace(hs, signal="sig", backgrounds=["bkg"], regions=["sr"], observable="m_yy",
                              rebin=10, systematics=SYSTS)
    ws = H.write_workspace(tmp_path / "ws.json", spec, provenance=rec)
    assert read_provenance(ws) == rec and json.loads(ws.read_text()) == json.loads(json.dumps(spec))


def _same_hists(a: H.HistSet, b: H.HistSet) -> bool:
    return a.samples.keys() == b.samples.keys() and all(
        np.array_equal(ha.view(flow=True).value, b.samples[n].hists[o].view(flow=True).value)
        and np.array_equal(ha.view(flow=True).variance, b.samples[n].hists[o].view(flow=True).variance)
        for n, s in a.samples.items() for o, ha in s.hists.items())


def test_merge_disjoint_and_shards():
    a = make_set()
    b = make_set({"other": (1.0, 10.0, [("cr", "nominal", [150.0], [2.0])])})
    merged = H.HistSet.merged([a, b])
    assert set(merged.samples) == {"sig", "bkg", "other"}
    assert merged.merge([]).samples.keys() == merged.samples.keys()
    assert set(a.merge([b]).samples) == {"sig", "bkg", "other"}
    # two jobs over shards of the same samples: histograms, events, files, sumw, cutflow summed
    twice = H.HistSet.merged([a, make_set()])
    s = twice.samples["sig"]
    assert s.sumw == pytest.approx(8000.0) and s.cutflow.raw == [20, 6] and s.n_events == 20
    assert s.cutflow.sumw == [8000.0, 7.0] and s.cutflow.sumw2 == [8000.0, 10.5]
    assert s.files == ["sig.root", "sig.root"]
    h = a.samples["sig"].hists["m_yy"]
    assert np.array_equal(s.hists["m_yy"].view(flow=True).value, (h + h).view(flow=True).value)
    assert np.array_equal(s.hists["m_yy"].view(flow=True).variance, (h + h).view(flow=True).variance)
    assert a.samples["sig"].sumw == 4000.0 and a.samples["sig"].cutflow.raw == [10, 3]  # inputs untouched
    # merging then normalising = normalising the summed inputs
    assert _same_hists(twice.normalise(), H.HistSet.merged([a, make_set()]).normalise())
    with pytest.raises(ValueError, match="two normalised"):
        H.HistSet.merged([a.normalise(), make_set().normalise()])
    with pytest.raises(ValueError, match="different regions"):
        H.HistSet.merged([a, H.HistSet(observables=["m_yy"], regions=["sr"], variations=a.variations)])
    with pytest.raises(ValueError, match="no histogram sets"):
        H.HistSet.merged([])


def test_pickle_round_trip(tmp_path):
    merged = H.HistSet.merged([make_set(), make_set({"other": (1.0, 10.0, [("cr", "nominal", [150.0], [2.0])])})])
    normed = merged.normalise()
    path = normed.write(tmp_path / "h.pkl")
    back = H.HistSet.read(path)
    assert back == normed  # every field, histograms compared bin by bin
    assert _same_hists(back, normed)
    assert back.samples["sig"].cutflow == normed.samples["sig"].cutflow
    # on disk: the documented plain-dict layout
    import pickle

    raw = pickle.loads(path.read_bytes())
    assert raw["kind"] == H.HISTSET_KIND and raw["normalised"] is True
    assert raw["samples"]["sig"]["cutflow"]["weighted"] == normed.samples["sig"].cutflow.weighted
    assert H.HistSet.from_dict(raw) == normed
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(InputFileError, match=r"x\.pkl: not a hepline histogram set"):
        H.HistSet.read(tmp_path / "x.pkl")
    (tmp_path / "y.pkl").write_bytes(b"not a pickle")
    with pytest.raises(InputFileError, match=r"y\.pkl: not a readable histogram pickle"):
        H.HistSet.read(tmp_path / "y.pkl")
    with pytest.raises(InputFileError, match="not found"):
        H.HistSet.read(tmp_path / "missing.pkl")


def test_workspace_json_validates_against_pyhf_schema(tmp_path):
    import pyhf

    from analysis.stats.limits import build_workspace

    hs = make_set().normalise()
    spec, _report = build_workspace(hs, signal="sig", backgrounds=["bkg"], regions=["sr"], observable="m_yy",
                                    rebin=10, systematics=SYSTS)
    path = H.write_workspace(tmp_path / "ws.json", spec)
    loaded = json.loads(path.read_text())
    pyhf.schema.validate(loaded, "workspace.json")   # raises on an invalid spec
    ws = pyhf.Workspace(loaded)
    model = ws.model()
    assert model.config.poi_name == "mu"
    assert {"lumi", "jet_scale", "photon_resolution", "staterror_sr"} <= set(model.config.parameters)
    with pytest.raises(pyhf.exceptions.InvalidSpecification):
        H.write_workspace(tmp_path / "bad.json", {"channels": []})
    assert not (tmp_path / "bad.json").exists()


def _old_cutflow_table(histset):
    """The cutflow.json dict as the dict-based code built it (before the HistSet)."""
    steps, samples = None, {}
    for name, entry in histset["samples"].items():
        cf = entry.get("cutflow")
        if not cf:
            continue
        steps = steps or list(cf["steps"])
        weighted = cf.get("weighted") if histset.get("normalised") else list(map(float, cf["sumw"]))
        first = float(cf["raw"][0]) if cf["raw"] else 0.0
        samples[name] = {"raw": [int(x) for x in cf["raw"]],
                         "weighted": [float(x) for x in weighted] if weighted is not None else None,
                         "efficiency": [float(x) / first if first else 0.0 for x in cf["raw"]]}
    return {"steps": steps or [], "samples": samples, "lumi_fb": histset.get("lumi_fb"),
            "normalised": bool(histset.get("normalised"))}


def test_cutflow_table_and_markdown():
    normed = make_set().normalise()
    table = normed.cutflow_table()
    assert table.steps == ["all", "cut"]
    assert table.samples["sig"].raw == [10, 3]
    assert table.samples["sig"].efficiency == pytest.approx([1.0, 0.3])
    k = normed.samples["sig"].norm
    assert table.samples["sig"].weighted == [k * 4000.0, k * 3.5]
    # cutflow.json: exactly the old dict form, normalised or not
    for hs in (normed, make_set()):
        assert json.dumps(hs.cutflow_table().to_dict(), sort_keys=True) == json.dumps(
            _old_cutflow_table(hs.to_dict()), sort_keys=True)
    raw = make_set().cutflow_table()
    assert not raw.normalised and raw.samples["sig"].weighted == [4000.0, 3.5]
    md = table.markdown()
    assert "| cut | 3 | 3 |" in md and "events in 139 fb⁻¹" in md
    assert "sum of weights" in raw.markdown()
    assert "no cutflow" in H.CutflowTable(steps=[], samples={}, lumi_fb=139.0, normalised=False).markdown()
    other = make_set()
    other.samples["bkg"].cutflow.steps = ["all", "another"]
    with pytest.raises(ValueError, match="different steps"):
        other.cutflow_table()


def test_binning_overrides():
    ax = H.axis_for("m_yy", {"m_yy": {"bins": 11}})
    assert len(ax.edges) == 12 and ax.edges[0] == 105.0
    ax = H.axis_for("m_star", {"m_star": {"edges": [250, 300, 400, 1000]}})
    assert list(ax.edges) == [250, 300, 400, 1000]
    with pytest.raises(KeyError, match="no binning"):
        H.axis_for("unknown")


def test_fill_indexed_equals_fill_with_labels():
    rng = np.random.default_rng(3)
    variations = H.variation_names(SYSTS)
    by_label = H.make_hists(["m_yy"], REGIONS, variations)["m_yy"]
    by_index = by_label.copy()
    n = 2000
    region = rng.integers(0, len(REGIONS), n)
    x = rng.uniform(95.0, 170.0, n)  # under- and overflow included
    w = rng.normal(1.0, 0.5, n)
    for v, name in enumerate(variations):
        by_label.fill(region=np.asarray(REGIONS, dtype=object)[region], variation=name, m_yy=x, weight=w * (v + 1))
        H.fill_indexed(by_index, w * (v + 1), region=region, variation=v, m_yy=x)
    a, b = by_label.view(flow=True), by_index.view(flow=True)
    assert np.allclose(a.value, b.value) and np.allclose(a.variance, b.variance)
    assert b.value[..., 0].sum() > 0 and b.value[..., -1].sum() > 0  # flow bins were hit
    # one flat index per entry, shifted by the variation stride, filled in a single add
    once = H.make_hists(["m_yy"], REGIONS, variations)["m_yy"]
    base = H.flat_index(once, region=region, variation=0, m_yy=x)
    stride = H.axis_stride(once, "variation")
    H.add_flat(once, np.concatenate([base + v * stride for v in range(len(variations))]),
               np.concatenate([w * (v + 1) for v in range(len(variations))]))
    assert np.allclose(once.view(flow=True).value, a.value)
    assert np.allclose(once.view(flow=True).variance, a.variance)


def test_fill_indexed_rejects_bad_input():
    h = H.make_hists(["m_yy"], REGIONS, ["nominal"])["m_yy"]
    with pytest.raises(IndexError, match="region"):
        H.fill_indexed(h, np.ones(2), region=np.array([0, 5]), variation=0, m_yy=np.array([120.0, 130.0]))
    with pytest.raises(KeyError, match="variation"):
        H.fill_indexed(h, np.ones(1), region=0, m_yy=np.array([120.0]))
    import hist

    with pytest.raises(TypeError, match="Weight storage"):
        H.fill_indexed(hist.Hist.new.Reg(2, 0, 1, name="x").Double(), np.ones(1), x=[0.5])
