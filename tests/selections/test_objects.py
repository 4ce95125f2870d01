"""selections.objects: object selections, overlap removal, masses and b-tag SF weights."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from analysis.core.config import SelectionConfig
from analysis.core.config.selection import Requirement
from selections import objects as O

ISO = (Requirement(field="isoCalo", max=0.065, relative=True), Requirement(field="isoTrack", max=0.05, relative=True))
PHOTON_REQUIREMENTS = (Requirement(field="isTight", relative=False), *ISO)
PHOTON_CUTS = {"pt_min": 25.0, "eta_max": 2.37, "crack": (1.37, 1.52)}


def req(field: str, **kw) -> Requirement:
    return Requirement(field=field, relative=kw.pop("relative", False), **kw)


def photons() -> ak.Array:
    # event 0: good, crack, forward, soft; event 1: non-tight, calo-iso fail, track-iso edge; event 2: none
    return ak.Array([
        [
            {"pt": 50.0, "eta": 0.3, "phi": 0.0, "isoCalo": 1.0, "isoTrack": 0.0, "isTight": True},
            {"pt": 50.0, "eta": -1.45, "phi": 1.0, "isoCalo": 0.0, "isoTrack": 0.0, "isTight": True},
            {"pt": 50.0, "eta": 2.40, "phi": 2.0, "isoCalo": 0.0, "isoTrack": 0.0, "isTight": True},
            {"pt": 20.0, "eta": 0.0, "phi": 3.0, "isoCalo": 0.0, "isoTrack": 0.0, "isTight": True},
        ],
        [
            {"pt": 40.0, "eta": 1.0, "phi": 0.0, "isoCalo": 0.0, "isoTrack": 0.0, "isTight": False},
            {"pt": 40.0, "eta": 1.0, "phi": 1.0, "isoCalo": 2.7, "isoTrack": 0.0, "isTight": True},
            {"pt": 40.0, "eta": 1.0, "phi": 2.0, "isoCalo": 0.0, "isoTrack": 1.99, "isTight": True},
            {"pt": 40.0, "eta": 1.0, "phi": 2.5, "isoCalo": 0.0, "isoTrack": 2.01, "isTight": True},
        ],
        [],
    ])


def test_photon_selection_known_answers():
    mask = O.photon_selection(photons(), PHOTON_REQUIREMENTS, **PHOTON_CUTS)
    assert ak.to_list(mask) == [[True, False, False, False], [False, False, True, False], []]


def test_photon_selection_on_flat_numpy_matches_awkward():
    ph = photons()
    flat = {f: ak.to_numpy(ak.flatten(ph[f])) for f in ak.fields(ph)}
    m_flat = np.asarray(O.photon_selection(flat, PHOTON_REQUIREMENTS, **PHOTON_CUTS))
    assert m_flat.tolist() == ak.to_list(ak.flatten(O.photon_selection(ph, PHOTON_REQUIREMENTS, **PHOTON_CUTS)))


def test_object_requirements_of_the_default_mappings():
    objects = SelectionConfig.default().objects
    assert O.object_requirements(objects.hepline.photon) == PHOTON_REQUIREMENTS
    assert O.object_requirements(objects.hepline.jet) == (None,)  # no jet ID in hepline
    assert O.object_requirements(objects.nanoaod.jet) == (req("jetId", min=2),)


def test_requirement_specs():
    objs = ak.Array([[{"pt": 10.0, "cutBased": 3, "iso": 0.2, "flag": True},
                      {"pt": 10.0, "cutBased": 1, "iso": 0.05, "flag": False}]])
    assert ak.to_list(O.requirement_mask(objs, req("cutBased", min=3))) == [[True, False]]
    assert ak.to_list(O.requirement_mask(objs, req("cutBased", equals=1))) == [[False, True]]
    assert ak.to_list(O.requirement_mask(objs, req("iso", max=0.1))) == [[False, True]]
    assert ak.to_list(O.requirement_mask(objs, req("iso", max=0.01, relative=True))) == [[False, True]]
    assert ak.to_list(O.requirement_mask(objs, req("flag"))) == [[True, False]]
    assert O.requirement_mask(objs, None) is True
    assert O.requirements_mask(objs, [None, None]) is True
    with pytest.raises(KeyError, match="isTight"):
        O.requirement_mask(objs, req("isTight"))


def test_jet_and_lepton_selection():
    jets = ak.Array([[{"pt": 30.0, "eta": 2.4, "jetId": 6}, {"pt": 30.0, "eta": 2.6, "jetId": 6},
                      {"pt": 24.0, "eta": 0.0, "jetId": 6}, {"pt": 50.0, "eta": 0.0, "jetId": 0}]])
    assert ak.to_list(O.jet_selection(jets, pt_min=25, eta_max=2.5)) == [[True, False, False, True]]
    assert ak.to_list(O.jet_selection(jets, [req("jetId", min=2)], pt_min=25, eta_max=2.5)) == [
        [True, False, False, False]]
    leps = ak.Array([[{"pt": 12.0, "eta": 1.4, "isoTrack": 0.0}, {"pt": 12.0, "eta": 0.0, "isoTrack": 3.0},
                      {"pt": 12.0, "eta": 0.0, "isoTrack": 1.0}]])
    iso = [req("isoTrack", max=0.15, relative=True)]
    assert ak.to_list(O.lepton_selection(leps, iso, pt_min=10, eta_max=2.47, crack=(1.37, 1.52))) == [
        [False, False, True]]


def test_delta_r_wraps_phi():
    assert O.delta_phi(3.0, -3.0) == pytest.approx(6.0 - 2 * np.pi)
    assert O.delta_r(0.0, 3.1, 0.3, -3.1) == pytest.approx(np.hypot(0.3, 2 * np.pi - 6.2))


def test_overlap_removal_both_forms_agree():
    jets = ak.Array([[{"pt": 30.0, "eta": 0.1, "phi": 0.1}, {"pt": 30.0, "eta": 1.0, "phi": 3.1},
                      {"pt": 30.0, "eta": 0.0, "phi": -3.1}], [{"pt": 30.0, "eta": 0.0, "phi": 0.0}]])
    gam = ak.Array([[{"pt": 50.0, "eta": 0.0, "phi": 0.0}, {"pt": 40.0, "eta": 0.0, "phi": 3.1}], []])
    keep = O.overlap_free(jets, gam, 0.4)
    assert ak.to_list(keep) == [[False, True, False], [True]]
    pts = ak.pad_none(gam, 2, clip=True)
    points = [(ak.to_numpy(ak.fill_none(pts.eta[:, i], np.nan)), ak.to_numpy(ak.fill_none(pts.phi[:, i], np.nan)))
              for i in (0, 1)]
    assert ak.to_list(O.overlap_free_of_points(jets, points, 0.4)) == ak.to_list(keep)
    assert ak.to_list(O.overlap_free(jets, gam, None)) == [[True, True, True], [True]]


def test_invariant_mass_of_back_to_back_photons():
    g1 = O.p4(np.array([62.5]), np.array([0.0]), np.array([0.0]))
    g2 = O.p4(np.array([62.5]), np.array([0.0]), np.array([np.pi]))
    assert O.invariant_mass(g1, g2)[0] == pytest.approx(125.0)
    # both boosted along z (same eta): invariant mass unchanged
    b1 = O.p4(np.array([62.5]), np.array([1.3]), np.array([0.0]))
    b2 = O.p4(np.array([62.5]), np.array([1.3]), np.array([np.pi]))
    assert O.invariant_mass(b1, b2)[0] == pytest.approx(125.0, rel=1e-12)
    # m^2 = 2 pT1 pT2 (cosh(d eta) - cos(d phi)) for massless particles
    c1 = O.p4(np.array([40.0]), np.array([0.5]), np.array([0.3]))
    c2 = O.p4(np.array([70.0]), np.array([-0.7]), np.array([2.0]))
    expected = np.sqrt(2 * 40 * 70 * (np.cosh(1.2) - np.cos(1.7)))
    assert O.invariant_mass(c1, c2)[0] == pytest.approx(expected, rel=1e-12)


def test_btag_weight_table_single_wp_is_textbook():
    eff = np.array([[0.01, 0.2, 0.7]])          # light, c, b at one WP
    sf = np.array([[1.2, 0.9, 1.05]])
    w = O.btag_weight_table(eff, sf)          # [flavour, bin]
    assert w[:, 1] == pytest.approx(sf[0])     # tagged: SF
    assert w[:, 0] == pytest.approx((1 - sf[0] * eff[0]) / (1 - eff[0]))  # untagged


def test_btag_weight_table_pseudo_continuous_conserves_probability():
    eff = np.array([[0.03, 0.25, 0.77], [0.01, 0.1, 0.6]])  # loose -> tight
    sf = np.array([[1.1, 0.95, 1.02], [1.3, 0.9, 0.97]])
    w = O.btag_weight_table(eff, sf)
    p_mc = np.concatenate([np.ones((1, 3)), eff, np.zeros((1, 3))])
    p_mc = (p_mc[:-1] - p_mc[1:]).T             # [flavour, bin]
    assert (p_mc * w).sum(axis=1) == pytest.approx(np.ones(3))  # data probabilities sum to one
    nominal = O.btag_weight_table(eff, np.ones_like(eff))
    assert nominal == pytest.approx(np.ones_like(nominal))


def test_btag_event_weight_products():
    table = np.array([[1.0, 2.0], [1.0, 3.0], [0.5, 5.0]])  # light, c, b x (untagged, tagged)
    flav = ak.Array([[2, 2, 0], [], [1]])
    bins = ak.Array([[1, 0, 1], [], [1]])
    assert O.btag_event_weight(flav, bins, table) == pytest.approx([5.0 * 0.5 * 2.0, 1.0, 3.0])
    assert O.flavour_class(np.array([5, 4, 15, 0, 21])).tolist() == [2, 1, 1, 0, 0]
    for dtype in (np.int8, np.int32, np.int64):  # any label type; negative parton labels are light
        got = O.flavour_class(np.array([5, 4, 15, 0, -5, -4, 21, 1], dtype=dtype))
        assert got.dtype == np.int8 and got.tolist() == [2, 1, 1, 0, 0, 0, 0, 0]
    assert ak.to_list(O.flavour_class(ak.Array([[5, 0], [15]]))) == [[2, 0], [1]]
    assert O.tag_bin(np.array([0.1, 0.65, 0.9]), [0.6, 0.8]).tolist() == [0, 1, 2]
    got = O.tag_bin(np.array([0.1, 0.65, 0.9, np.nan, 0.8], dtype=np.float32), [0.6, 0.8])
    assert got.dtype == np.int8 and got.tolist() == [0, 1, 2, 0, 1]  # NaN passes nothing; D > cut
    assert ak.to_list(O.tag_bin(ak.Array([[0.1, 0.9], []]), [0.6, 0.8])) == [[0, 2], []]
