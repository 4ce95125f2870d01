"""analysis.plot.hh: every paper figure is built from data and returned (nothing written);
analysis.plot.style.save_figure writes it atomically with its provenance and closes it;
analysis.plot.paper.brazil_arrays reads the limits.json rows."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from analysis.core.provenance import read_provenance
from analysis.plot import hh
from analysis.plot.paper import brazil_arrays, fit_label
from analysis.plot.style import save_figure
from analysis.stats import fits as F
from analysis.stats import histograms as H

REGIONS = ["sr", "cr", "vr"]


def _hists() -> dict:
    rng = np.random.default_rng(1)
    out = {}
    for name, n in (("bkg", 400), ("sig", 50)):
        h = H.make_hists(["m_yy"], REGIONS, ["nominal"])["m_yy"]
        x = rng.uniform(105, 160, n) if name == "bkg" else rng.normal(125, 2, n)
        h.fill(region=rng.choice(REGIONS[:2], n), variation="nominal", m_yy=x, weight=np.full(n, 0.5))
        out[name] = h
    return out


def test_plot_regions_returns_one_panel_per_region_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = hh.plot_regions(_hists(), ["sr", "cr", "vr"], backgrounds=["bkg", "absent"], signals=["sig"], rebin=5,
                          signal_scale={"sig": 10.0}, lumi_fb=139.0)
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["sr", "cr", "vr"]
    assert len(fig.axes) == 4 and not fig.axes[3].get_visible()  # 2 x 2 grid, one panel unused
    labels = visible[0].get_legend_handles_labels()[1]
    assert "bkg" in labels and "sig ×10" in labels and "MC stat." in labels and "absent" not in labels
    assert list(tmp_path.iterdir()) == []
    plt.close(fig)


def test_plot_cutflow_from_the_table():
    hs = H.HistSet(lumi_fb=139.0, observables=["m_yy"], regions=REGIONS, variations=["nominal"])
    for name in ("a", "b"):
        hs.samples[name] = H.SampleHists(hists=H.make_hists(["m_yy"], REGIONS, ["nominal"]), xsec_pb=1.0, sumw=10.0,
                                         cutflow=H.Cutflow(steps=["all", "cut"], raw=[10, 4], sumw=[10.0, 4.0],
                                                           sumw2=[10.0, 4.0]))
    table = hs.normalise().cutflow_table()
    fig = hh.plot_cutflow(table, samples=["b"])
    cells = [c.get_text().get_text() for c in fig.axes[0].tables[0].get_celld().values()]
    assert "5.56e+04 (4)" in cells and "b" in cells and "a" not in cells  # sigma x L / sumw x 4 events
    assert "139 fb" in fig.axes[0].get_title()
    plt.close(fig)


def test_plot_brazil_from_arrays():
    expected = [[0.5, 0.7, 1.0, 1.4, 2.0], [0.25, 0.35, 0.5, 0.7, 1.0]]
    fig = hh.plot_brazil([300.0, 600.0], expected, [1.1, None], cl=0.95, lumi_fb=139.0)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert np.allclose(lines["Expected"].get_ydata(), [1000.0, 500.0])  # pb -> fb
    assert "Observed" not in lines  # not every point has one
    assert "95% CL" in ax.get_ylabel() and "[fb]" in ax.get_ylabel()
    plt.close(fig)
    fig = hh.plot_brazil([300.0, 600.0], expected, [1.1, 0.4], unit="pb")
    assert np.allclose({ln.get_label(): ln for ln in fig.axes[0].get_lines()}["Observed"].get_ydata(), [1.1, 0.4])
    plt.close(fig)
    with pytest.raises(ValueError, match="no resonant limits"):
        hh.plot_brazil([], [])


def test_brazil_arrays_from_limits_json_rows():
    row = lambda s, m, e, o: {"signal": s, "mode": "resonant", "mass_gev": m, "mu": {"cl": 0.9},
                              "sigma_limit_pb": {"expected": e, "observed": o}}
    rows = [row("b", 600.0, [2] * 5, None), {"signal": "hh", "mode": "nonresonant", "mass_gev": None},
            row("a", 300.0, [1] * 5, 0.5)]
    assert brazil_arrays(rows) == ([300.0, 600.0], [[1] * 5, [2] * 5], [0.5, None], 0.9)
    assert brazil_arrays(rows[1:2])[0] == []


def test_plot_fit_and_save_figure(tmp_path):
    rng = np.random.default_rng(2)
    v, edges = np.histogram(rng.normal(125.0, 1.7, 4000), bins=60, range=(110.0, 140.0))
    fit = F.fit_dscb(edges, v.astype(float))
    x, y = fit.curve(0.5)
    assert len(x) == 600 and x[0] == fit.fit_range[0] and x[-1] == fit.fit_range[1]
    assert y.max() == pytest.approx(v.max(), rel=0.15)  # events per 0.5 GeV bin at the peak
    fig = hh.plot_fit(edges, v, None, (x, y), curve_label=fit_label(fit), shaded=[(105.0, 120.0)], title="t")
    assert fig.axes[0].get_legend_handles_labels()[1][0].startswith("DSCB, $\\sigma$ = 1.")
    rec = {"stage": "test"}
    path = save_figure(fig, tmp_path / "fit.png", provenance=rec)
    assert path.read_bytes()[:4] == b"\x89PNG" and read_provenance(path) == rec
    assert not plt.fignum_exists(fig.number)  # closed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.png", "fit.png.provenance.json"]
