"""analysis.stats.limits: pyhf models from histograms, CLs limits against independent computations,
the resonant grid with its Brazil plot, and every bad input handled with a clear message."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
from scipy import optimize, stats

from analysis.core.config import LimitsConfig, config_from_dict
from analysis.core.errors import InputFileError
from analysis.core.config.limits import NonresonantContinuumFit
from analysis.stats import histograms as H
from analysis.stats import limits as L

SYSTS = ["jet_scale"]


def histset(entries, *, variations=None, regions=("sr", "cr"), lumi=1.0):
    """A normalised set (norm = 1: xsec_pb * 1000 * lumi / sumw = 1) from
    ``{sample: [(region, variation, x, w), ...]}``; every sample also gets a cutflow."""
    variations = variations or H.variation_names(SYSTS)
    hs = H.HistSet(lumi_fb=lumi, observables=["m_yy"], regions=list(regions), variations=variations)
    for name, fills in entries.items():
        hists = H.make_hists(["m_yy"], list(regions), variations)
        for region, var, x, w in fills:
            hists["m_yy"].fill(region=region, variation=var, m_yy=np.asarray(x, float), weight=np.asarray(w, float))
        hs.samples[name] = H.SampleHists(
            hists=hists, xsec_pb=1.0, sumw=1000.0 * lumi, n_events=100,
            cutflow=H.Cutflow(steps=["all", "two_photons", "btag"], raw=[100, 40, 12],
                              sumw=[100.0, 40.0, 12.0], sumw2=[100.0, 40.0, 12.0]))
    return hs.normalise()


def counting(s, b, n_obs=None, syst=True):
    """One bin (rebin 110 -> 105-160) with s signal and b background events."""
    def fills(total):
        out = [("sr", "nominal", [125.0], [total])]
        if syst:
            out += [("sr", "jet_scaleUp", [125.0], [total * 1.02]), ("sr", "jet_scaleDown", [125.0], [total * 0.98])]
        return out

    entries = {"sig": fills(s), "bkg": fills(b)}
    if n_obs is not None:
        entries["data"] = [("sr", "nominal", [125.0], [n_obs])]
    return histset(entries)


# ---------------------------------------------------------------------------------------
# known answers
# ---------------------------------------------------------------------------------------
def test_exact_poisson_cls_known_answers():
    assert L.poisson_cls_upper_limit(0, 0.0) == pytest.approx(-math.log(0.05), rel=1e-9)  # 2.996
    assert L.poisson_cls_upper_limit(0, 0.0) == pytest.approx(3.0, abs=0.005)
    # n = 0: CLs does not depend on b
    assert L.poisson_cls_upper_limit(0, 3.7) == pytest.approx(2.9957, abs=1e-4)
    # n = 1, b = 0: e^-s (1 + s) = 0.05
    s1 = optimize.brentq(lambda s: math.exp(-s) * (1 + s) - 0.05, 0, 20)
    assert L.poisson_cls_upper_limit(1, 0.0) == pytest.approx(s1, rel=1e-8) == pytest.approx(4.744, abs=1e-3)


def _independent_single_bin(s, b, n_obs):
    """Asymptotic CLs (q_mu, Cowan et al. 2011) for one Poisson bin, written out by hand."""
    def q_asimov(mu):
        return 2.0 * (mu * s - b * math.log1p(mu * s / b))

    def cls_expected(mu, n_sigma):
        sq_a = math.sqrt(q_asimov(mu))
        return (1.0 - stats.norm.cdf(sq_a + n_sigma)) / stats.norm.cdf(-n_sigma)

    def cls_observed(mu):
        nu = mu * s + b
        q = 2.0 * (nu - n_obs + n_obs * math.log(n_obs / nu)) if mu * s > n_obs - b else 0.0
        sq, sq_a = math.sqrt(q), math.sqrt(q_asimov(mu))
        return (1.0 - stats.norm.cdf(sq)) / stats.norm.cdf(sq_a - sq)

    exp = [optimize.brentq(lambda m, k=k: cls_expected(m, k) - 0.05, 1e-3, 100) for k in (2, 1, 0, -1, -2)]
    obs = optimize.brentq(lambda m: cls_observed(m) - 0.05, 1e-3, 100)
    return exp, obs


def test_single_bin_limit_matches_independent_asymptotics():
    s, b, n_obs = 10.0, 50.0, 55.0
    hs = counting(s, b, n_obs, syst=False)
    spec, report = L.build_workspace(hs, signal="sig", backgrounds=["bkg"], regions=["sr"], observable="m_yy",
                                     rebin=110, systematics=[], lumi_uncertainty=0.0, mc_stat=False, data="data")
    assert len(spec["channels"][0]["samples"][0]["data"]) == 1
    lim = L.upper_limit(spec, test_statistic="q", poi_scale=report.poi_scale)
    exp, obs = _independent_single_bin(s, b, n_obs)
    assert lim.expected == pytest.approx(exp, rel=0.01)
    assert lim.observed == pytest.approx(obs, rel=0.01)
    assert lim.median == pytest.approx(exp[2], rel=0.005)
    assert lim.cl == 0.95 and lim.test_statistic == "q" and lim.poi_scale == report.poi_scale
    assert lim.hypotests > 0 and lim.failed_hypotests == 0
    assert report.observed == "data"
    # q~ and q agree for the median (both give (1 - Phi(sqrt(q_A))) / 0.5 there)
    lim_t = L.upper_limit(spec, test_statistic="qtilde", poi_scale=report.poi_scale)
    assert lim_t.expected[2] == pytest.approx(exp[2], rel=0.01)


def test_systematics_weaken_the_limit():
    hs = counting(10.0, 50.0)
    common = {"signal": "sig", "backgrounds": ["bkg"], "regions": ["sr"], "observable": "m_yy", "rebin": 110}
    bare, r0 = L.build_workspace(hs, systematics=[], lumi_uncertainty=0.0, mc_stat=False, **common)
    full, r1 = L.build_workspace(hs, systematics=SYSTS, lumi_uncertainty=0.1, mc_stat=True, **common)
    e0 = L.upper_limit(bare, poi_scale=r0.poi_scale, observed=False).median
    e1 = L.upper_limit(full, poi_scale=r1.poi_scale, observed=False).median
    assert e1 > e0 * 1.01
    assert r1.observed == "asimov"


# ---------------------------------------------------------------------------------------
# resonant grid, table and Brazil plot
# ---------------------------------------------------------------------------------------
def _grid_config(**limits):
    return config_from_dict({"seed": 1, "generation": {"samples": {
        "x300": {"process": "x_hh_yybb", "mass_gev": 300, "xsec_pb": 1.0, "shards": 1, "events_per_shard": 1},
        "x600": {"process": "x_hh_yybb", "mass_gev": 600, "xsec_pb": 2.0, "shards": 1, "events_per_shard": 1}}},
        "limits": {"backgrounds": ["bkg"], "systematics": SYSTS,
                   "resonant": {"signals": ["x300", "x600"], "observable": "m_yy", "rebin": 22,
                                "window_fraction": None, "mass_categories": [{"regions": ["sr"]}]}, **limits}})


def _grid_histset():
    bkg = [("sr", "nominal", [120.0, 125.0, 130.0], [20.0, 20.0, 20.0]),
           ("sr", "jet_scaleUp", [120.0, 125.0, 130.0], [21.0, 21.0, 21.0]),
           ("sr", "jet_scaleDown", [120.0, 125.0, 130.0], [19.0, 19.0, 19.0])]
    sig = lambda k: [(r, v, [125.0], [k]) for r, v in (("sr", "nominal"), ("sr", "jet_scaleUp"), ("sr", "jet_scaleDown"))]
    return histset({"x300": sig(5.0), "x600": sig(20.0), "bkg": bkg})


def test_resonant_grid_table_and_brazil_plot(tmp_path):
    hs = _grid_histset()
    cfg = _grid_config()
    entries = L.signal_workspaces(hs, cfg.limits, cfg.generation.samples)
    assert [e.mass_gev for e in entries] == [300.0, 600.0]
    assert [e.sigma_ref_pb for e in entries] == [1.0, 2.0] and {e.mode for e in entries} == {"resonant"}
    rows = L.run_limits(entries, cfg.limits)
    for r in rows:
        e = r.sigma_limit_pb.expected
        assert e == sorted(e) and all(x > 0 for x in e)
        assert e[2] == pytest.approx(r.mu.expected[2] * r.sigma_ref_pb)
        assert r.limit is r.sigma_limit_pb and r.mu.observed is None and r.regions == ["sr"]
    # four times the signal with twice the reference sigma: the sigma limit halves
    assert rows[1].limit.median == pytest.approx(rows[0].limit.median / 2, rel=0.02)
    table = L.LimitTable(rows=rows, lumi_fb=139.0)
    assert [r.signal for r in table.resonant()] == ["x300", "x600"]
    md = table.markdown()
    assert "| 300 |" in md and "| 600 |" in md and "σ(pp → X → HH) [fb]" in md and "139 fb⁻¹" in md
    from analysis.plot.paper import brazil_figure
    from analysis.plot.style import save_figure

    fig = brazil_figure(table)
    assert fig.axes[0].get_yscale() == "log" and "95% CL" in fig.axes[0].get_ylabel()
    png = save_figure(fig, tmp_path / "brazil.png")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    # pseudo-data give observed limits
    obs_rows = L.run_limits(L.signal_workspaces(hs, cfg.limits, cfg.generation.samples, pseudo_data_seed=3)[:1],
                            cfg.limits)
    assert obs_rows[0].mu.observed is not None and obs_rows[0].mu.observed > 0
    assert obs_rows[0].sigma_limit_pb.observed == pytest.approx(obs_rows[0].mu.observed * 1.0)


def _old_row(e, lim):
    """A limits.json row as the dict-based code built it (before LimitResult)."""
    row = {"signal": e.signal, "mode": e.mode, "mass_gev": e.mass_gev, "regions": e.report.regions,
           "mu": {"expected": [x for x in lim.expected], "observed": lim.observed, "cl": lim.cl,
                  "test_statistic": lim.test_statistic, "poi_scale": lim.poi_scale, "hypotests": lim.hypotests,
                  "failed_hypotests": lim.failed_hypotests},
           "warnings": e.report.warnings}
    if e.mode == "resonant":
        s = e.sigma_ref_pb
        row["sigma_ref_pb"] = s
        row["sigma_limit_pb"] = {"expected": [x * s for x in lim.expected],
                                 "observed": None if lim.observed is None else lim.observed * s}
    return row


def test_limit_result_to_dict_is_the_limits_json_row():
    hs = _grid_histset()
    cfg = _grid_config(pseudo_data_seed=3)
    entries = L.signal_workspaces(hs, cfg.limits, cfg.generation.samples)
    rows = L.run_limits(entries, cfg.limits)
    for e, r in zip(entries, rows, strict=True):
        assert r.to_dict() == _old_row(e, r.mu)
        assert list(r.to_dict()) == ["signal", "mode", "mass_gev", "regions", "mu", "warnings", "sigma_ref_pb",
                                     "sigma_limit_pb"]
    table = L.LimitTable(rows=rows, lumi_fb=139.0).to_dict()
    assert table == {"lumi_fb": 139.0, "rows": [_old_row(e, r.mu) for e, r in zip(entries, rows, strict=True)]}
    import json

    assert json.loads(json.dumps(table)) == table  # plain JSON data


def test_workspace_index_round_trip(tmp_path):
    hs = _grid_histset()
    cfg = _grid_config()
    hists = hs.write(tmp_path / "hists.pkl")
    entries = L.write_workspaces(cfg, hists, tmp_path / "ws", pseudo_data_seed=3)
    idx = L.WorkspaceIndex.read(tmp_path / "ws" / "index.json")
    assert idx.lumi_fb == hs.lumi_fb == 1.0
    assert idx.paths == [tmp_path / "ws" / n for n in ("index.json", "x300.json", "x600.json")]
    for a, b in zip(entries, idx.entries, strict=True):
        assert b.spec == json.loads(json.dumps(a.spec))
        assert b.report == a.report and b.report.observed == "pseudo"
        assert (b.signal, b.mode, b.mass_gev, b.sigma_ref_pb) == (a.signal, a.mode, a.mass_gev, a.sigma_ref_pb)
    with pytest.raises(InputFileError, match="nope.json: file not found"):
        L.WorkspaceIndex.read(tmp_path / "nope.json")


def test_nonresonant_mu_hh_from_an_lhe_sample_matches_independent_asymptotics(tmp_path):
    """A non-resonant SM HH sample (LHE input) gives the limit on μ_HH; on a one-bin model
    without systematics it equals the hand-written asymptotic CLs."""
    s, b = 4.0, 30.0
    hs = histset({"hh_sm": [("sr", v, [125.0], [s]) for v in ("nominal", "jet_scaleUp", "jet_scaleDown")],
                  "bkg": [("sr", v, [125.0], [b]) for v in ("nominal", "jet_scaleUp", "jet_scaleDown")]})
    cfg = config_from_dict({"seed": 1, "generation": {"samples": {
        "hh_sm": {"process": "lhe", "lhe_file": str(tmp_path / "hh.lhe"), "xsec_pb": 0.03105,
                  "decay": "hh_yybb", "shards": 1, "events_per_shard": 1}}},
        "limits": {"backgrounds": ["bkg"], "systematics": [], "lumi_uncertainty": 0.0, "mc_stat": False,
                   "test_statistic": "q", "resonant": {"signals": []},
                   "nonresonant": {"signal": "hh_sm", "observable": "m_yy", "rebin": 110, "regions": ["sr"]}}})
    entries = L.signal_workspaces(hs, cfg.limits, cfg.generation.samples)
    assert [e.mode for e in entries] == ["nonresonant"]
    (row,) = L.run_limits(entries, cfg.limits)
    exp, _ = _independent_single_bin(s, b, b)
    assert row.mu.expected[2] == pytest.approx(exp[2], rel=0.01)
    assert row.mu.expected == pytest.approx(exp, rel=0.02)
    assert row.sigma_limit_pb is None and row.limit is row.mu
    assert "sigma_limit_pb" not in row.to_dict() and "sigma_ref_pb" not in row.to_dict()
    md = L.LimitTable(rows=[row]).markdown()
    assert "upper limit on μ_HH (hh_sm)" in md


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------
def _ws(hs, **kw):
    args = {"signal": "sig", "backgrounds": ["bkg"], "regions": ["sr"], "observable": "m_yy", "rebin": 110, "systematics": SYSTS}
    args.update(kw)
    return L.build_workspace(hs, **args)


def test_sample_missing_from_histograms_or_config():
    hs = counting(10.0, 50.0)
    with pytest.raises(L.LimitInputError, match="background sample 'ttbar' is not in the histograms"):
        _ws(hs, backgrounds=["bkg", "ttbar"])
    with pytest.raises(L.LimitInputError, match="signal sample 'xhh_900'"):
        _ws(hs, signal="xhh_900")
    cfg = _grid_config(backgrounds=["bkg"], resonant={"signals": ["sig"]})
    with pytest.raises(L.LimitInputError, match=r"resonant signal 'sig' .* is not in generation.samples .*x300, x600"):
        L.signal_workspaces(hs, cfg.limits, cfg.generation.samples)
    nonres = _grid_config(resonant={"signals": []}, nonresonant={"signal": "sig"})
    with pytest.raises(L.LimitInputError, match="non-resonant signal 'sig'"):
        L.signal_workspaces(hs, nonres.limits, nonres.generation.samples)
    with pytest.raises(L.LimitInputError, match="region 'nope'"):
        _ws(hs, regions=["nope"])


def test_no_signal_event_reports_the_cutflow():
    hs = histset({"sig": [], "bkg": [("sr", "nominal", [125.0], [50.0])]})
    hs.samples["sig"].cutflow.raw = [100, 0, 0]
    with pytest.raises(L.LimitInputError, match=r"everything lost at cut 'two_photons' \(100 -> 0"):
        _ws(hs, systematics=[])


def test_not_normalised_histograms():
    hs = counting(1.0, 1.0)
    hs.normalised = False
    with pytest.raises(L.LimitInputError, match="not normalised"):
        _ws(hs)


def test_empty_background_bins_are_floored_with_a_warning(caplog):
    # background only in the first of two bins; signal in both
    hs = histset({"sig": [("sr", "nominal", [110.0, 150.0], [3.0, 3.0])],
                  "bkg": [("sr", "nominal", [110.0], [40.0])]})
    with caplog.at_level(logging.WARNING, logger="analysis.stats.limits"):
        spec, report = _ws(hs, rebin=55, systematics=[], empty_bin_floor=0.01)
    assert report.floored_bins == [L.FlooredBins(region="sr", sample="bkg", bins=[1])]
    assert report.to_dict()["floored_bins"] == [{"region": "sr", "sample": "bkg", "bins": [1]}]
    assert "floored" in caplog.text and "[132.5, 160)" in caplog.text
    bkg = next(s for s in spec["channels"][0]["samples"] if s["name"] == "bkg")
    assert bkg["data"] == pytest.approx([40.0, 0.01])
    stat = next(m for m in bkg["modifiers"] if m["type"] == "staterror")
    assert stat["data"][1] == 0.0  # the floor is not MC: no MC-stat uncertainty
    lim = L.upper_limit(spec, poi_scale=report.poi_scale, observed=False)
    assert 0 < lim.median < 5 and lim.observed is None  # ~3 signal events in an almost background-free bin
    # no background at all in a region: floored everywhere, flagged as untrustworthy
    hs2 = histset({"sig": [("sr", "nominal", [125.0], [3.0])], "bkg": [("cr", "nominal", [125.0], [1.0])]})
    _, rep2 = _ws(hs2, rebin=55, systematics=[])
    assert any("no background MC at all" in w for w in rep2.warnings)


def test_missing_systematic_variation_policies(caplog):
    variations = ["nominal", "jet_scaleUp"]  # jet_scaleDown never made
    hs = histset({"sig": [("sr", "nominal", [125.0], [10.0]), ("sr", "jet_scaleUp", [125.0], [11.0])],
                  "bkg": [("sr", "nominal", [125.0], [50.0]), ("sr", "jet_scaleUp", [125.0], [52.0])]},
                 variations=variations)
    with pytest.raises(L.LimitInputError, match=r"jet_scaleDown missing for sample 'sig', region 'sr'"):
        _ws(hs)
    spec, report = _ws(hs, missing_variation="symmetrize")
    sig = spec["channels"][0]["samples"][0]
    hsys = next(m for m in sig["modifiers"] if m["name"] == "jet_scale")
    scale = report.poi_scale
    assert hsys["data"]["lo_data"] == pytest.approx([9.0 * scale])  # mirrored: 2*10 - 11
    assert report.symmetrized
    with caplog.at_level(logging.WARNING, logger="analysis.stats.limits"):
        spec, report = _ws(hs, missing_variation="drop")
    assert all(m["name"] != "jet_scale" for s in spec["channels"][0]["samples"] for m in s["modifiers"])
    assert len(report.dropped_modifiers) == 2 and "dropped" in caplog.text
    with pytest.raises(ValueError, match="missing_variation"):
        _ws(hs, missing_variation="ignore")


def test_limits_section_defaults_and_errors():
    cfg = LimitsConfig.default()
    assert cfg.confidence_level == 0.95 and cfg.lumi_uncertainty == 0.017
    assert cfg.resonant.signals == ("xhh_300", "xhh_500", "xhh_800")
    from analysis.core.config import ConfigError

    with pytest.raises(ConfigError, match="missing_variation"):
        config_from_dict({"limits": {"missing_variation": "ignore"}})


def test_continuum_from_sideband_fit_replaces_the_mc_template():
    rng = np.random.default_rng(4)
    x_shape = 105.0 - np.log(rng.uniform(size=4000)) / 0.03
    x_shape = x_shape[x_shape < 160.0]
    hs = histset({"sig": [("sr", "nominal", [125.0], [5.0])],
                  "yy": [("cr", "nominal", x_shape, np.ones(len(x_shape))),      # shape region: many events
                         ("sr", "nominal", [110.0, 150.0], [30.0, 10.0])]})     # tagged region: 2 MC events
    common = {"signal": "sig", "backgrounds": ["yy"], "regions": ["sr"], "observable": "m_yy", "rebin": 11, "systematics": []}
    raw, _ = L.build_workspace(hs, **common)
    cfit = NonresonantContinuumFit(enabled=True, samples=("yy",), shape_region="cr",
                                   sidebands=((105.0, 120.0), (130.0, 160.0)))
    off, off_report = L.build_workspace(hs, continuum_fit=cfit.replace(enabled=False), **common)
    assert off == raw and off_report.continuum_fits is None
    spec, report = L.build_workspace(hs, continuum_fit=cfit, **common)
    yy = next(s for s in spec["channels"][0]["samples"] if s["name"] == "yy")["data"]
    yy_raw = next(s for s in raw["channels"][0]["samples"] if s["name"] == "yy")["data"]
    assert sum(yy) == pytest.approx(40.0)                   # normalised to the region's MC yield
    assert sum(1 for v in yy_raw if v > 0.01) == 2          # raw MC: two filled bins
    assert all(v > 0 for v in yy) and yy == sorted(yy, reverse=True)  # smooth falling exponential
    fit = report.continuum_fits["yy"]
    assert fit.params["slope"] == pytest.approx(-0.03, abs=4 * fit.errors["slope"])
    assert report.to_dict()["continuum_fits"]["yy"] == fit.to_dict()
    assert L.WorkspaceReport.from_dict(report.to_dict()) == report  # the index.json round trip
    for entry in hs.samples.values():  # the same histograms under another observable name
        entry.hists["m_bb"] = entry.hists["m_yy"]
    with pytest.raises(L.LimitInputError, match="continuum_fit models m_yy"):
        L.build_workspace(hs, continuum_fit=cfit, **{**common, "observable": "m_bb"})
