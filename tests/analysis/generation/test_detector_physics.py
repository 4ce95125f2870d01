"""Physics sanity of the generated samples (small ttbar and X->HH shards)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot
import vector

vector.register_awkward()


def _collection(ev: ak.Array, name: str, with_name: str | None = None) -> ak.Array:
    prefix = name + "_"
    return ak.zip({f[len(prefix):]: ev[f] for f in ev.fields if f.startswith(prefix)}, with_name=with_name)


def _events(path) -> ak.Array:  # type: ignore[no-untyped-def]
    with uproot.open(path) as f:
        return f["Events"].arrays()


def _signed_d0_significance(ev: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    jets, trk = _collection(ev, "Jet"), _collection(ev, "Track")
    ok = trk.jetIdx >= 0
    jet = jets[ak.where(ok, trk.jetIdx, 0)]
    sign = np.sign(np.sin(jet.phi - trk.phi) * trk.d0)
    sd0 = sign * np.abs(trk.d0) / trk.d0Err
    sel = ok & (jet.pt > 20) & (np.abs(jet.eta) < 2.5) & (np.abs(trk.d0) < 1.0)
    return ak.to_numpy(ak.flatten(sd0[sel])), ak.to_numpy(ak.flatten(jet.hadronConeExclTruthLabelID[sel]))


def test_b_jet_tracks_have_a_large_positive_sd0_tail(ttbar_file) -> None:  # type: ignore[no-untyped-def]
    sd0, flav = _signed_d0_significance(_events(ttbar_file))
    b, light = sd0[flav == 5], sd0[flav == 0]
    assert b.size > 500 and light.size > 500
    tail_b, tail_l = np.mean(b > 3), np.mean(light > 3)
    assert tail_b > 4 * tail_l, (tail_b, tail_l)
    # prompt-dominated light jets are nearly symmetric; b jets are not
    assert np.mean(light < -3) > 0.4 * tail_l
    assert tail_b > 4 * np.mean(b < -3)


def test_prompt_track_d0_pulls_are_unit_width(ttbar_file) -> None:  # type: ignore[no-untyped-def]
    trk = _collection(_events(ttbar_file), "Track")
    prompt = trk.truthOrigin == 2
    pull = ak.to_numpy(ak.flatten((trk.d0 / trk.d0Err)[prompt]))
    half68 = np.diff(np.percentile(pull, [16, 84]))[0] / 2
    assert 0.95 < half68 < 1.2  # resolution model plus the PV resolution
    assert np.mean(np.abs(pull) > 5) < 0.02  # tails present but small


def test_b_hadron_flight_length_is_millimetres(ttbar_file) -> None:  # type: ignore[no-untyped-def]
    had = _collection(_events(ttbar_file), "TruthHadron")
    b = had[(had.flavour == 5) & (had.pt > 20)]
    lxy = ak.to_numpy(ak.flatten(np.hypot(b.decayX, b.decayY)))
    assert 1.0 < np.median(lxy) < 5.0  # reference: median ~2.4 mm in ttbar


def test_jet_response_is_near_one(ttbar_file) -> None:  # type: ignore[no-untyped-def]
    ev = _events(ttbar_file)
    jets, gen = _collection(ev, "Jet"), _collection(ev, "GenJet")
    ok = (jets.genJetIdx >= 0) & (jets.pt > 30) & (np.abs(jets.eta) < 2.5)
    resp = ak.to_numpy(ak.flatten((jets.pt / gen.pt[ak.where(ok, jets.genJetIdx, 0)])[ok]))
    assert resp.size > 300
    assert 0.93 < np.median(resp) < 1.05
    assert 0.02 < np.subtract(*np.percentile(resp, [84, 16])) / 2 < 0.2


def test_ttbar_flavour_fractions_are_plausible(ttbar_file) -> None:  # type: ignore[no-untyped-def]
    jets = _collection(_events(ttbar_file), "Jet")
    lab = ak.to_numpy(ak.flatten(jets.hadronConeExclTruthLabelID[(jets.pt > 20) & (np.abs(jets.eta) < 2.5)]))
    frac = {f: np.mean(lab == f) for f in (5, 4, 0, 15)}
    assert 0.22 < frac[5] < 0.45
    assert 0.05 < frac[4] < 0.2
    assert 0.4 < frac[0] < 0.7
    assert frac[15] < 0.06


def test_diphoton_mass_of_x_hh_peaks_at_125(xhh_file) -> None:  # type: ignore[no-untyped-def]
    ev = _events(xhh_file)
    ph = _collection(ev, "Photon")
    ph = ak.zip({"pt": ph.pt, "eta": ph.eta, "phi": ph.phi, "mass": ph.pt * 0,
                 "flav": ph.genPartFlav}, with_name="Momentum4D")
    ph = ph[ph.flav == 1]
    two = ph[ak.num(ph) >= 2]
    m = ak.to_numpy((two[:, 0] + two[:, 1]).mass)
    core = m[(m > 115) & (m < 135)]
    assert core.size > 0.5 * len(ev)
    assert abs(np.median(core) - 125.0) < 0.6
    width = np.diff(np.percentile(core, [16, 84]))[0] / 2
    assert 0.7 < width < 3.0


def test_x_hh_events_have_two_b_labelled_jets_often(xhh_file) -> None:  # type: ignore[no-untyped-def]
    jets = _collection(_events(xhh_file), "Jet")
    nb = ak.to_numpy(ak.sum((jets.hadronConeExclTruthLabelID == 5) & (jets.pt > 20), axis=1))
    assert np.mean(nb >= 2) > 0.3


def test_prompt_track_z0_is_relative_to_the_primary_vertex(ttbar_file) -> None:  # type: ignore[no-untyped-def]
    """z0 is measured from the reconstructed PV (beam spot σz = 45 mm): prompt pulls are unit-width."""
    ev = _events(ttbar_file)
    trk = _collection(ev, "Track")
    prompt = trk.truthOrigin == 2
    pull = ak.to_numpy(ak.flatten((trk.z0 / trk.z0Err)[prompt]))
    half68 = np.diff(np.percentile(pull, [16, 84]))[0] / 2
    assert 0.9 < half68 < 1.3
    # and the PV itself is spread like the beam spot, so the check above is not trivial
    assert 30 < np.std(ak.to_numpy(ev.PV_z)) < 60


def test_truth_hadron_decay_vertex_is_relative_to_the_true_pv(ttbar_file) -> None:  # type: ignore[no-untyped-def]
    had = _collection(_events(ttbar_file), "TruthHadron")
    b = had[(had.flavour == 5) & (had.pt > 20)]
    # the 3-D flight is along the hadron direction: |decayZ| / Lxy ~ |sinh(eta)|
    lxy = np.hypot(b.decayX, b.decayY)
    ratio = ak.to_numpy(ak.flatten(np.abs(b.decayZ) / (lxy * np.abs(np.sinh(b.eta)) + 1e-6)))
    assert np.median(ratio) == pytest.approx(1.0, abs=0.05)


@pytest.mark.slow
def test_diphoton_continuum_has_hard_extra_jets(tmp_path, config):
    """The γγ continuum uses a power shower: ≈ 10 % of diphoton events have two clean jets
    (0.5 % with Pythia's default shower start, which would starve the HH → γγbb̄ background)."""
    from analysis.generation.produce import produce_shard

    out = tmp_path / "yy.root"
    produce_shard(config, "yy", 0, out, n_events=1500, progress=False)
    with uproot.open(out) as f:
        a = f["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_phi", "Photon_pt", "Photon_eta",
                                "Photon_phi", "Photon_isTight"])
    good = (a.Photon_pt > 25) & (abs(a.Photon_eta) < 2.37) & a.Photon_isTight
    two = ak.num(a.Photon_pt[good]) >= 2
    a, good = a[two], good[two]
    ph_eta, ph_phi = a.Photon_eta[good][:, :2], a.Photon_phi[good][:, :2]
    j_eta, p_eta = ak.unzip(ak.cartesian([a.Jet_eta, ph_eta], nested=True))
    j_phi, p_phi = ak.unzip(ak.cartesian([a.Jet_phi, ph_phi], nested=True))
    dphi = (j_phi - p_phi + np.pi) % (2 * np.pi) - np.pi
    clean = ak.min(np.sqrt((j_eta - p_eta) ** 2 + dphi ** 2), axis=2) > 0.4
    n_jets = ak.sum(clean & (a.Jet_pt > 25) & (abs(a.Jet_eta) < 2.5), axis=1)
    frac2 = float(ak.mean(n_jets >= 2))
    assert len(n_jets) > 250
    assert 0.04 < frac2 < 0.2, frac2
