"""selections.hh_yybb.kernel: the compiled per-event pass against its numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from selections.hh_yybb import kernel as K
from selections.hh_yybb.smearing import resolution_factors_numpy


def _collection(rng: np.random.Generator, n: int, mean: float, max_n: int) -> tuple[np.ndarray, dict]:
    counts = np.minimum(rng.poisson(mean, n), max_n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    m = int(offsets[-1])
    pt = np.sort(rng.exponential(40.0, m) + 20.0)[::-1].copy()  # order fixed per event below
    for a, b in zip(offsets[:-1], offsets[1:], strict=True):
        pt[a:b] = np.sort(pt[a:b])[::-1]
    return offsets, {"pt": pt, "eta": rng.uniform(-2.6, 2.6, m).astype(np.float32),
                     "phi": rng.uniform(-math.pi, math.pi, m).astype(np.float32)}


def _inputs(seed: int, n: int = 3000, **over) -> K.PassInput:
    rng = np.random.default_rng(seed)
    ph_off, ph = _collection(rng, n, 2.2, 5)
    e_off, e = _collection(rng, n, 0.3, 3)
    mu_off, mu = _collection(rng, n, 0.3, 3)
    j_off, j = _collection(rng, n, 3.5, 9)
    # photons near each other in η–φ so that the overlap removal has work to do
    j["eta"][: len(j["eta"]) // 3] = ph["eta"][0]
    p = K.PassInput(
        ph_off=ph_off, ph_pt=(ph["pt"] * rng.uniform(0.9, 1.1, len(ph["pt"]))).astype(np.float32),
        ph_eta=ph["eta"], ph_phi=ph["phi"], ph_mask=rng.uniform(size=len(ph["pt"])) < 0.8, top2=False,
        e_off=e_off, e_eta=e["eta"], e_phi=e["phi"], e_mask=rng.uniform(size=len(e["pt"])) < 0.7,
        mu_off=mu_off, mu_eta=mu["eta"], mu_phi=mu["phi"], mu_mask=rng.uniform(size=len(mu["pt"])) < 0.7,
        lep_dr=0.4, j_off=j_off, j_pt=j["pt"], j_eta=j["eta"], j_phi=j["phi"],
        j_mass=rng.uniform(2.0, 20.0, len(j["pt"])), j_mask=rng.uniform(size=len(j["pt"])) < 0.85,
        j_bin=rng.integers(0, 3, len(j["pt"])).astype(np.int8), jet_dr=0.4, bin_two=1, bin_one=2,
        mstar_offset=250.0, lead_frac=0.35, sub_frac=0.25, myy_window=(60.0, 400.0),
    )
    p.update(over)
    return p


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.dtype.kind == "f":
            assert np.array_equal(np.isnan(x), np.isnan(y)), k
            # libm and numpy's vectorised sin/cos/sinh may differ in the last bit; masses of
            # nearly collinear pairs amplify that (m² is a difference of large numbers)
            assert np.allclose(x[~np.isnan(x)], y[~np.isnan(y)], rtol=1e-10, atol=1e-9), k
        else:
            assert np.array_equal(x, y), k


@pytest.mark.parametrize("case", [
    {},
    {"top2": True},
    {"full": False},
    {"full": False, "all_myy": False, "myy_window": (105.0, 160.0)},
    {"lep_dr": 0.0, "jet_dr": None},
])
def test_compiled_pass_equals_the_numpy_reference(case):
    p = _inputs(5, **case)
    a, b = K.event_arrays(p), K.event_arrays_numpy(p)
    _assert_same(a, b)
    # the inputs exercise every branch: diphotons, both tag categories, removed jets
    assert (a["i2"] >= 0).mean() > 0.3 and np.isfinite(a["mbb"]).any()
    assert {0, 1, 2} <= set(np.unique(a["tag"]))


def test_soft_diphotons_skip_myy_without_changing_a_passing_event():
    """all_myy=False leaves m_γγ NaN only where the photons are too soft for the E_T/m_γγ
    cuts anywhere in the window; every event passing the diphoton cuts is unchanged."""
    p = _inputs(7, myy_window=(105.0, 160.0), full=False)
    ref = K.event_arrays(p)
    a = K.event_arrays({**p, "all_myy": False})
    with np.errstate(invalid="ignore"):
        passed = ((ref["g1pt"] > 0.35 * ref["myy"]) & (ref["g2pt"] > 0.25 * ref["myy"])
                  & (ref["myy"] > 105.0) & (ref["myy"] < 160.0))
    skipped = np.isnan(a["myy"]) & np.isfinite(ref["myy"])
    assert passed.sum() > 5 and skipped.sum() > 5
    assert not (skipped & passed).any()
    assert np.all((ref["g1pt"][skipped] <= 0.35 * 105.0) | (ref["g2pt"][skipped] <= 0.25 * 105.0))
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(ref[k])
        if k == "jet_mask":
            continue
        assert np.array_equal(x[passed], y[passed], equal_nan=x.dtype.kind == "f"), k
    assert np.array_equal(a["myy"][~skipped], ref["myy"][~skipped], equal_nan=True)


def test_event_mask_empties_the_other_events():
    p = _inputs(6)
    mask = np.random.default_rng(1).uniform(size=len(p["ph_off"]) - 1) < 0.5
    a = K.event_arrays({**p, "event_mask": mask})
    _assert_same(a, K.event_arrays_numpy({**p, "event_mask": mask}))
    full = K.event_arrays(p)
    assert np.all(a["i1"][~mask] == -1) and np.all(np.isnan(a["myy"][~mask]))
    for k in ("i1", "i2", "n_j", "tag", "c0", "c1"):
        assert np.array_equal(a[k][mask], full[k][mask]), k


def test_known_event():
    """Two photons back to back, a jet on top of the leading photon (removed), two b-jets."""
    pt = np.array([80.0, 60.0], np.float32)
    p = K.PassInput(
        ph_off=np.array([0, 2]), ph_pt=pt, ph_eta=np.zeros(2, np.float32),
        ph_phi=np.array([0.0, math.pi / 2], np.float32), ph_mask=np.ones(2, bool), top2=False,
        e_off=np.array([0, 0]), e_eta=np.zeros(0, np.float32), e_phi=np.zeros(0, np.float32),
        e_mask=np.zeros(0, bool), mu_off=np.array([0, 0]), mu_eta=np.zeros(0, np.float32),
        mu_phi=np.zeros(0, np.float32), mu_mask=np.zeros(0, bool), lep_dr=0.4,
        j_off=np.array([0, 3]), j_pt=np.array([90.0, 70.0, 40.0]), j_eta=np.array([0.1, 1.0, -1.0], np.float32),
        j_phi=np.array([0.05, 2.5, -2.0], np.float32), j_mass=np.array([10.0, 12.0, 8.0]),
        j_mask=np.ones(3, bool), j_bin=np.array([2, 2, 1], np.int8), jet_dr=0.4, bin_two=1, bin_one=2,
        mstar_offset=250.0, lead_frac=0.35, sub_frac=0.25, myy_window=(60.0, 160.0),
    )
    out = K.event_arrays(p)
    # m_yy of two massless 80 and 60 GeV photons at 90 degrees: sqrt(2 * 80 * 60)
    assert out["myy"][0] == pytest.approx(math.sqrt(2 * 80 * 60))
    assert out["jet_mask"].tolist() == [False, True, True]
    assert out["n_j"][0] == 2 and out["tag"][0] == 2
    assert (out["c0"][0], out["c1"][0]) == (1, 2) and (out["l0"][0], out["l1"][0]) == (1, 2)
    assert out["j1"][0] == 70.0 and out["j2"][0] == 40.0
    _assert_same(out, K.event_arrays_numpy(p))


def test_pair_rows_numpy_missing_objects():
    p = _inputs(11)
    rng = np.random.default_rng(12)
    n_rows = 4000
    n_j, n_ph = len(p["j_pt"]), len(p["ph_pt"])
    a = rng.integers(-1, n_j, n_rows)  # −1: no jet (NaN masses, the other jet's pT)
    b = rng.integers(-1, n_j, n_rows)
    g1, g2 = rng.integers(0, n_ph, n_rows), rng.integers(-1, n_ph, n_rows)
    myy = rng.uniform(100.0, 160.0, n_rows)
    jets = {"pt": p["j_pt"], "eta": p["j_eta"], "phi": p["j_phi"], "mass": p["j_mass"]}
    photons = {"pt": p["ph_pt"], "eta": p["ph_eta"], "phi": p["ph_phi"]}
    got = K.pair_rows_numpy(a, b, g1, g2, myy, jets, photons, 250.0)
    both = (a >= 0) & (b >= 0)
    assert np.isnan(got[0][~both]).all() and np.isfinite(got[0][both]).all()
    assert np.isnan(got[1][both & (g2 < 0)]).all() and np.isfinite(got[1][both & (g2 >= 0)]).all()
    one = (a >= 0) & (b < 0)
    assert np.array_equal(got[2][one], p["j_pt"][a[one]]) and np.array_equal(got[3][one], p["j_pt"][a[one]])


def test_truth_rows_equal_the_numpy_reference():
    """The compiled truth-tag rows (probabilities and masses) against
    ``selections.hh_yybb.btag.truth_tag_rows`` + :func:`pair_rows_numpy`, row by row, bit for bit."""
    from selections.hh_yybb.btag import truth_tag_rows
    from selections.hh_yybb.compiled import FlatCollection

    p = _inputs(13, myy_window=(0.0, 1e9))
    ev = K.event_arrays(p)
    rng = np.random.default_rng(14)
    counts = np.diff(p["j_off"])
    jets = FlatCollection(counts, {"pt": p["j_pt"], "eta": p["j_eta"], "phi": p["j_phi"], "mass": p["j_mass"],
                                   "eff_class": rng.integers(0, 6, len(p["j_pt"]))})
    photons = {"pt": p["ph_pt"], "eta": p["ph_eta"], "phi": p["ph_phi"]}
    pre = (ev["i2"] >= 0) & (ev["n_j"] >= 2)
    e2 = rng.uniform(0.0, 0.8, 6)
    effs = {"nominal": (e2, e2 * 0.7), "up": (np.minimum(e2 * 1.2, 1.0), e2 * 0.8)}
    got = K.truth_rows(jets, ev["jet_mask"], pre, effs, ev["i1"], ev["i2"], ev["myy"], photons, 250.0)
    ref = truth_tag_rows(jets.evt, jets.n_events, jets["eff_class"], ev["jet_mask"], pre, effs)
    e = ref["evt"]
    masses = K.pair_rows_numpy(ref["c0"], ref["c1"], ev["i1"][e], ev["i2"][e], ev["myy"][e], jets, photons, 250.0)
    assert len(got["evt"]) == len(e) > 1000 and {1, 2} == set(got["kind"].tolist())
    for k in ("evt", "kind", "c0", "c1"):  # the same rows in the same order
        assert np.array_equal(got[k], ref[k]), k
    for name in effs:
        assert np.array_equal(got["p"][name], ref["p"][name]), name
    _assert_same(dict(zip(("m_bb", "m_star", "j1", "j2"), (got[k] for k in ("m_bb", "m_star", "j1", "j2")),
                          strict=True)),
                 dict(zip(("m_bb", "m_star", "j1", "j2"), masses, strict=True)))
    # events outside ``pre`` give no rows; the row order is by event
    assert pre[got["evt"]].all() and np.all(np.diff(got["evt"]) >= 0)
    # the classes from a per-jet base and the pT-bin edges (3 flavours × 2 pT bins: 0..5)
    base = rng.integers(0, 3, len(p["j_pt"])) * 2
    edges = [np.median(p["j_pt"])]
    with_classes = {**jets, "eff_class": base + np.searchsorted(edges, p["j_pt"], side="right")}
    jets_cls = FlatCollection(counts, with_classes)
    a = K.truth_rows(jets_cls, ev["jet_mask"], pre, effs, ev["i1"], ev["i2"], ev["myy"], photons, 250.0)
    b = K.truth_rows(jets, ev["jet_mask"], pre, effs, ev["i1"], ev["i2"], ev["myy"], photons, 250.0,
                     class_base=base, pt_edges=edges)
    assert not np.array_equal(a["p"]["nominal"], got["p"]["nominal"])  # other classes than above
    for k in ("evt", "kind", "c0", "c1", "m_bb"):
        assert np.array_equal(a[k], b[k], equal_nan=k == "m_bb"), k
    for name in effs:
        assert np.array_equal(a["p"][name], b["p"][name]), name


def test_resolution_factors_equal_the_numpy_reference():
    rng = np.random.default_rng(21)
    offsets, ph = _collection(rng, 2000, 2.2, 5)
    event = rng.integers(0, 2**40, 2000).astype(np.uint64)
    kw = {"seed": 12345, "stochastic": 0.10, "constant": 0.007, "relative_uncertainty": 0.2}
    got = K.resolution_factors(offsets, ph["pt"].astype(np.float32), ph["eta"], event, **kw)
    ref = resolution_factors_numpy(offsets, ph["pt"].astype(np.float32), ph["eta"], event, **kw)
    assert np.array_equal(got, ref)  # the same operations in the same order: the same bits
    # a photon's factor depends on (seed, event number, index in the event) only
    sub = K.resolution_factors(offsets[:3] - offsets[0], ph["pt"].astype(np.float32)[: offsets[2]],
                               ph["eta"][: offsets[2]], event[:2], **kw)
    assert np.array_equal(sub, got[: offsets[2]])
    assert not np.allclose(got, K.resolution_factors(offsets, ph["pt"].astype(np.float32), ph["eta"], event,
                                                     **{**kw, "seed": 1}))
    z = (ref - 1.0)
    assert 0.0 < np.std(z) < 0.05 and abs(np.mean(z)) < 0.1 * np.std(z)


def test_objects_of_equals_the_numpy_index():
    from selections.hh_yybb.compiled import FlatCollection

    rng = np.random.default_rng(31)
    counts = rng.poisson(1.5, 500)
    counts[:3] = [0, 4, 0]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    events = rng.uniform(size=500) < 0.4
    events[:3] = [True, True, False]
    ref = np.flatnonzero(np.repeat(events, counts))
    got = K.objects_of(offsets, events)
    assert got.dtype == np.int64 and np.array_equal(got, ref) and got[:4].tolist() == [0, 1, 2, 3]
    assert K.objects_of(offsets, np.zeros(500, dtype=bool)).size == 0
    coll = FlatCollection(counts, {"pt": rng.uniform(size=int(counts.sum()))})
    a, b = coll.subset(events), coll.subset(events, compiled=True)
    assert np.array_equal(a["pt"], b["pt"]) and np.array_equal(a.offsets, b.offsets)
    assert a.n_events == b.n_events == int(events.sum())
    assert np.array_equal(a.counts, b.counts) and np.array_equal(b.counts, counts[events])
    idx, offs = K.objects_and_offsets(offsets, np.flatnonzero(events))
    assert np.array_equal(idx, ref) and offs[0] == 0 and np.array_equal(np.diff(offs), counts[events])
    with pytest.raises(ValueError, match="counts or offsets"):
        FlatCollection(None, {"pt": np.zeros(0)})


def test_warm_up_starts_numba_and_expects_numba_follows_the_engine(tmp_path):
    from analysis.core.config import SelectionConfig
    from selections.hh_yybb.processor import expects_compiled_engine

    K.warm_up()  # idempotent, no error
    assert K.objects_of(np.array([0, 2]), np.array([True])).tolist() == [0, 1]
    small, big = tmp_path / "small.json", tmp_path / "big.json"
    small.write_text('{"n_events": 10}')
    big.write_text('{"n_events": 2000000}')

    def hh(engine: str):
        return SelectionConfig.validated({"hh_yybb": {"engine": engine, "numba_min_events": 1000000}}).hh_yybb

    auto = hh("auto")
    assert not expects_compiled_engine(auto, [str(small)]) and expects_compiled_engine(auto, [str(small), str(big)])
    assert not expects_compiled_engine(auto, [str(tmp_path / "missing.json")])
    assert not expects_compiled_engine(auto, None)
    assert expects_compiled_engine(hh("numba"), None) and not expects_compiled_engine(hh("numpy"), [str(big)])
    assert not expects_compiled_engine(hh("reference"), [str(big)])


def test_resolution_factors_mask_leaves_the_others_at_one():
    rng = np.random.default_rng(5)
    offsets = np.array([0, 2, 5, 6])
    pt, eta = rng.uniform(20, 80, 6).astype(np.float32), rng.uniform(-2, 2, 6)
    event = np.array([11, 12, 13], dtype=np.uint64)
    kw = {"seed": 3, "stochastic": 0.1, "constant": 0.007, "relative_uncertainty": 0.15}
    full = K.resolution_factors(offsets, pt, eta, event, **kw)
    mask = np.array([True, False, True, True, False, True])
    part = K.resolution_factors(offsets, pt, eta, event, mask=mask, **kw)
    assert np.array_equal(part[mask], full[mask])
    assert np.all(part[~mask] == 1.0) and np.all(full[~mask] != 1.0)
