"""Detector performance measured on generated ntuples: the numbers the realism targets of
docs/detector.md are checked against.

Pure functions on the event arrays of hepline ntuples (``uproot`` ``arrays()`` with the
flat ``<Collection>_<field>`` names), one per quantity, plus :func:`measure` that reads the
files of each sample and :func:`write_performance` (``hepline detector-performance``):

* :func:`jet_energy_resolution` — σ(pT)/pT and the response of central jets against their
  truth jets, per truth-pT bin (the JES closure and the JER);
* :func:`derive_jes` — the MC-derived jet energy scale (numerical inversion), the knots of
  ``detector.jets.jes_factor``;
* :func:`diphoton_mass_resolution` — the m_γγ resolution of H → γγ (Gaussian core and σ68);
* :func:`photon_energy_resolution_by_eta` — σ(E)/E of true photons in |η| bins;
* :func:`fake_photon_rate` — tight, isolated photons from jets per truth jet;
* :func:`ip_tails` — the signed d0-significance tails of tracks in light jets, by origin;
* :func:`vertexing_performance` — vertices per event and how often the hard scatter is
  the primary vertex.

Resolutions are quoted two ways: ``sigma_core``, the width of a Gaussian fitted to the core
(iterated within ±2σ, corrected for the truncation: the σ of ATLAS's Gaussian or Crystal-Ball
cores), and ``sigma68``, half the smallest interval holding 68.3 % (tails included). A
quantity with fewer than :data:`MIN_ENTRIES` entries is reported as ``None`` (printed as
"insufficient statistics (N)").
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from analysis.core.atomic import write_json
from analysis.core.config import Config
from analysis.core.config.detector import JetReconstruction
from analysis.core.provenance import provenance_record

__all__ = [
    "DEFAULT_JET_BINS",
    "MIN_ENTRIES",
    "DetectorPerformance",
    "Estimate",
    "FakePhotonRate",
    "IpTails",
    "JetBin",
    "MassResolution",
    "derive_jes",
    "diphoton_mass_resolution",
    "fake_photon_rate",
    "gaussian_core",
    "ip_tails",
    "jet_energy_resolution",
    "measure",
    "photon_energy_resolution_by_eta",
    "read_events",
    "sigma68",
    "vertexing_performance",
    "write_performance",
]

log = logging.getLogger(__name__)

#: fewer entries than this give no number ("insufficient statistics")
MIN_ENTRIES = 30
#: truth-jet pT bins (GeV) of the jet resolution
DEFAULT_JET_BINS = (20.0, 25.0, 35.0, 50.0, 70.0, 90.0, 120.0, 160.0, 220.0, 280.0, 350.0, 500.0)
_TRUNC2 = 0.8796  # σ of a unit Gaussian truncated to ±2σ


def _insufficient(n: int) -> str:
    return f"insufficient statistics ({n})"


def gaussian_core(x: np.ndarray, k: float = 2.0, iterations: int = 8) -> tuple[float, float, int] | None:
    """Mean and σ of the Gaussian core of ``x``: iterated within mean ± kσ, the σ corrected
    for the truncation (k = 2 only). ``None`` below :data:`MIN_ENTRIES` entries.

    Returns:
        ``(mean, sigma, n_in_core)``.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < MIN_ENTRIES:
        return None
    mean = float(np.median(x))
    sigma = float(np.subtract(*np.percentile(x, [84.13, 15.87])) / 2)
    n_core = x.size
    for _ in range(iterations):
        core = x[np.abs(x - mean) < k * sigma]
        n_core = core.size
        if n_core < MIN_ENTRIES:
            return None
        mean = float(core.mean())
        sigma = float(core.std()) / (_TRUNC2 if k == 2.0 else 1.0)
    return mean, sigma, n_core


def sigma68(x: np.ndarray) -> float | None:
    """Half the width of the smallest interval holding 68.3 % of ``x`` (``None`` if too few)."""
    x = np.sort(np.asarray(x, dtype=np.float64)[np.isfinite(x)])
    n = x.size
    if n < MIN_ENTRIES:
        return None
    m = int(math.ceil(0.6827 * n))
    widths = x[m - 1:] - x[: n - m + 1]
    return float(widths.min() / 2)


@dataclass(frozen=True)
class Estimate:
    """A rate with its binomial (Clopper-Pearson 68 %) interval."""

    passed: int
    total: int
    value: float | None
    lo: float | None
    hi: float | None

    @classmethod
    def binomial(cls, passed: int, total: int) -> Estimate:
        """k of n with its 68 % Clopper-Pearson interval (``None`` values without entries)."""
        from scipy.stats import beta

        if total <= 0:
            return cls(passed, total, None, None, None)
        lo = float(beta.ppf(0.1587, passed, total - passed + 1)) if passed > 0 else 0.0
        hi = float(beta.ppf(0.8413, passed + 1, total - passed)) if passed < total else 1.0
        return cls(passed, total, passed / total, lo, hi)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"passed": self.passed, "total": self.total, "value": self.value, "lo": self.lo,
                "hi": self.hi}


# --------------------------------------------------------------------------- reading


def read_events(paths: Iterable[str | os.PathLike[str]], branches: Sequence[str]) -> ak.Array:
    """The ``Events`` branches of hepline ntuples, concatenated."""
    import uproot

    arrays = []
    for p in paths:
        with uproot.open(p) as f:
            arrays.append(f["Events"].arrays(list(branches)))
    if not arrays:
        return ak.Array({b: [] for b in branches})
    return ak.concatenate(arrays)


def _coll(ev: ak.Array, name: str) -> ak.Array:
    prefix = name + "_"
    return ak.zip({f[len(prefix):]: ev[f] for f in ev.fields if f.startswith(prefix)})


def _dphi(a: Any, b: Any) -> Any:
    return (a - b + np.pi) % (2 * np.pi) - np.pi


# --------------------------------------------------------------------------- jets


@dataclass(frozen=True)
class JetBin:
    """The response of reconstructed to truth jets in one truth-pT bin (GeV)."""

    lo: float
    hi: float
    n: int
    #: median pT(reco)/pT(truth)
    response: float | None
    #: σ(pT)/pT from the Gaussian core, over the core mean
    sigma_core: float | None
    #: σ68 of pT(reco)/pT(truth), over the median
    sigma68: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``note`` for bins without enough jets)."""
        out: dict[str, Any] = {"lo": self.lo, "hi": self.hi, "n": self.n, "response": self.response,
                               "sigma_core": self.sigma_core, "sigma68": self.sigma68}
        if self.response is None:
            out["note"] = _insufficient(self.n)
        return out


def _matched_jets(ev: ak.Array, eta_max: float, isolation_dr: float) -> tuple[np.ndarray, ...]:
    """Flat (reco pT, truth pT, truth η, truth E) of reco jets matched to isolated truth jets."""
    jets, gen = _coll(ev, "Jet"), _coll(ev, "GenJet")
    jets = jets[jets.genJetIdx >= 0]  # (an event may have jets but no truth jet)
    g = gen[jets.genJetIdx]
    # truth-jet isolation: no other truth jet above 10 GeV within isolation_dr
    pairs = ak.cartesian([g, gen], nested=True)
    dr = np.hypot(pairs["0"].eta - pairs["1"].eta, _dphi(pairs["0"].phi, pairs["1"].phi))
    neighbours = ak.sum((dr < isolation_dr) & (dr > 1e-4) & (pairs["1"].pt > 10.0), axis=2)
    sel = (np.abs(g.eta) < eta_max) & (neighbours == 0)
    return (ak.to_numpy(ak.flatten(jets.pt[sel])), ak.to_numpy(ak.flatten(g.pt[sel])),
            ak.to_numpy(ak.flatten(g.eta[sel])),
            ak.to_numpy(ak.flatten((g.pt * np.cosh(g.eta))[sel])),
            ak.to_numpy(ak.flatten((jets.pt * np.cosh(jets.eta))[sel])))


def jet_energy_resolution(
    ev: ak.Array, bins: Sequence[float] = DEFAULT_JET_BINS, eta_max: float = 1.2,
    isolation_dr: float = 0.8,
) -> list[JetBin]:
    """JES closure and JER of central jets, per truth-pT bin.

    Reconstructed jets matched to truth jets (``Jet_genJetIdx``, ΔR < 0.3) with |η| <
    ``eta_max`` and no other truth jet above 10 GeV within ``isolation_dr`` (the ATLAS
    practice that keeps close-by jets from smearing the response).

    Args:
        ev: ``Jet_{pt,eta,phi,genJetIdx}`` and ``GenJet_{pt,eta,phi}`` arrays.
        bins: truth-pT bin edges (GeV).
        eta_max: |η| range of the truth jets.
        isolation_dr: truth-jet isolation.

    Returns:
        One :class:`JetBin` per bin.
    """
    reco, truth, *_ = _matched_jets(ev, eta_max, isolation_dr)
    out = []
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        r = reco[(truth >= lo) & (truth < hi)] / truth[(truth >= lo) & (truth < hi)]
        core = gaussian_core(r)
        s68 = sigma68(r)
        med = float(np.median(r)) if r.size >= MIN_ENTRIES else None
        out.append(JetBin(
            lo=float(lo), hi=float(hi), n=int(r.size), response=med,
            sigma_core=core[1] / core[0] if core is not None else None,
            sigma68=s68 / med if (s68 is not None and med) else None,
        ))
    return out


def derive_jes(
    ev: ak.Array, cfg: JetReconstruction, energy_bins: Sequence[float] | None = None,
    eta_max: float = 2.5,
) -> tuple[list[float], list[float]]:
    """The jet energy scale by numerical inversion, at the knots of ``cfg.jes_energy_gev``.

    The jets of ``ev`` were calibrated with ``cfg``'s JES; each jet's pile-up-subtracted
    EM-scale energy is recovered by inverting it. In bins of truth energy the median response
    R = E_sub/E_truth is measured and placed at E_sub = R·E_truth; the new factor at each knot
    is 1/R interpolated in log E there (flat beyond the measured range).

    Args:
        ev: jets and truth jets as for :func:`jet_energy_resolution`.
        cfg: the ``detector.jets`` section the sample was made with.
        energy_bins: truth-energy bin edges (GeV); default 15 bins from 15 GeV to 3 TeV.
        eta_max: |η| range of the truth jets.

    Returns:
        ``(knots_gev, factors)`` for ``detector.jets.jes_energy_gev`` and ``jes_factor``.
    """
    from analysis.generation.jets import jes_factor

    _, _, _, e_truth, e_cal = _matched_jets(ev, eta_max, 0.8)
    # recover the EM-scale (subtracted) energy: E_cal = E_sub * f(E_sub)
    e_sub = e_cal.copy()
    for _ in range(30):
        e_sub = e_cal / jes_factor(e_sub, cfg)
    edges = np.geomspace(15.0, 3000.0, 16) if energy_bins is None else np.asarray(energy_bins)
    xs, ys = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (e_truth >= lo) & (e_truth < hi)
        if sel.sum() < MIN_ENTRIES:
            continue
        r = float(np.median(e_sub[sel] / e_truth[sel]))
        xs.append(r * float(np.median(e_truth[sel])))
        ys.append(1.0 / r)
    knots = [float(k) for k in cfg.jes_energy_gev]
    if not xs:
        return knots, [float(f) for f in cfg.jes_factor]
    order = np.argsort(xs)
    x, y = np.log(np.asarray(xs)[order]), np.asarray(ys)[order]
    return knots, [round(float(v), 4) for v in np.interp(np.log(knots), x, y)]


# --------------------------------------------------------------------------- photons


@dataclass(frozen=True)
class MassResolution:
    """The diphoton mass of events with two true photons (GeV)."""

    n: int
    mean: float | None
    sigma_core: float | None
    sigma68: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out: dict[str, Any] = {"n": self.n, "mean": self.mean, "sigma_core": self.sigma_core,
                               "sigma68": self.sigma68}
        if self.mean is None:
            out["note"] = _insufficient(self.n)
        return out


def _good_photons(ev: ak.Array, pt_min: float) -> ak.Array:
    ph = _coll(ev, "Photon")
    return ph[(ph.pt > pt_min) & (ph.genPartFlav == 1)]


def diphoton_mass_resolution(ev: ak.Array, pt_min: float = 25.0, window: tuple[float, float] = (110.0, 140.0)) -> MassResolution:
    """m_γγ of the two leading true (prompt) photons above ``pt_min`` (GeV), within ``window``.

    Args:
        ev: ``Photon_{pt,eta,phi,genPartFlav}`` arrays of an H → γγ sample.
        pt_min: photon pT threshold (GeV).
        window: the m_γγ range kept (GeV).

    Returns:
        The mean and resolution of m_γγ.
    """
    ph = _good_photons(ev, pt_min)
    two = ph[ak.num(ph) >= 2]
    a, b = two[:, 0], two[:, 1]
    m2 = 2 * a.pt * b.pt * (np.cosh(a.eta - b.eta) - np.cos(_dphi(a.phi, b.phi)))
    m = np.sqrt(np.maximum(ak.to_numpy(m2), 0.0))
    m = m[(m > window[0]) & (m < window[1])]
    core = gaussian_core(m)
    if core is None:
        return MassResolution(int(m.size), None, None, None)
    return MassResolution(int(m.size), core[0], core[1], sigma68(m))


def photon_energy_resolution_by_eta(
    ev: ak.Array, eta_bins: Sequence[float] = (0.0, 0.6, 1.0, 1.37, 1.52, 1.8, 2.37),
    pt_min: float = 25.0,
) -> list[dict[str, Any]]:
    """σ(E)/E of reconstructed photons matched (ΔR < 0.05) to hard-process photons, per |η| bin.

    Args:
        ev: ``Photon_*`` and ``GenPart_*`` arrays.
        eta_bins: |η| bin edges (the crack bin stays empty: no photons are reconstructed there).
        pt_min: reconstructed photon pT threshold (GeV).

    Returns:
        One dict per bin: edges, n, ``sigma_core`` and ``sigma68`` of E/E_true.
    """
    ph = _good_photons(ev, pt_min)
    gp = _coll(ev, "GenPart")
    gp = gp[(gp.pdgId == 22) & (gp.pt > 5.0)]
    pairs = ak.cartesian([ph, gp], nested=True)
    dr = np.hypot(pairs["0"].eta - pairs["1"].eta, _dphi(pairs["0"].phi, pairs["1"].phi))
    best = ak.argmin(dr, axis=2, keepdims=True)
    dr_best = ak.flatten(dr[best], axis=2)
    truth = ak.flatten(pairs["1"][best], axis=2)
    ok = ~ak.is_none(dr_best, axis=1) & (ak.fill_none(dr_best, 9.0) < 0.05)
    ok = ak.fill_none(ok, False)
    e_reco = ak.to_numpy(ak.drop_none(ak.flatten((ph.pt * np.cosh(ph.eta))[ok])))
    e_true = ak.to_numpy(ak.drop_none(ak.flatten((truth.pt * np.cosh(truth.eta))[ok])))
    aeta = np.abs(ak.to_numpy(ak.drop_none(ak.flatten(ph.eta[ok]))))
    out = []
    for lo, hi in zip(eta_bins[:-1], eta_bins[1:], strict=True):
        r = e_reco[(aeta >= lo) & (aeta < hi)] / e_true[(aeta >= lo) & (aeta < hi)]
        core = gaussian_core(r)
        s68 = sigma68(r)
        row: dict[str, Any] = {"lo": lo, "hi": hi, "n": int(r.size),
                               "sigma_core": core[1] / core[0] if core else None,
                               "sigma68": s68 / float(np.median(r)) if s68 else None}
        if core is None:
            row["note"] = _insufficient(int(r.size))
        out.append(row)
    return out


@dataclass(frozen=True)
class FakePhotonRate:
    """Photons faked by jets, per truth jet (pT > ``pt_min`` GeV in the photon acceptance).

    ``candidates``: photon candidates from hadron decays matched to the jet; ``tight``,
    ``isolated`` and ``tight_isolated`` the fractions of jets with such a candidate; the
    factorised estimate is rate(candidates) × ε(tight) × ε(isolated) measured on the
    candidates (the ATLAS two-dimensional-sideband assumption that identification and
    isolation are independent for fakes), usable where the direct count is too small.
    """

    n_jets: int
    pt_min: float
    candidates: Estimate
    tight: Estimate
    isolated: Estimate
    tight_isolated: Estimate
    tight_given_candidate: Estimate
    isolated_given_candidate: Estimate
    factorised: float | None

    @property
    def rejection(self) -> float | None:
        """1 / (the tight-isolated fake rate), from the direct count if it has ≥ 10 fakes,
        else from the factorised estimate."""
        rate = (self.tight_isolated.value if self.tight_isolated.passed >= 10 else self.factorised)
        return 1.0 / rate if rate else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "n_jets": self.n_jets, "pt_min": self.pt_min,
            "candidates": self.candidates.to_dict(), "tight": self.tight.to_dict(),
            "isolated": self.isolated.to_dict(), "tight_isolated": self.tight_isolated.to_dict(),
            "tight_given_candidate": self.tight_given_candidate.to_dict(),
            "isolated_given_candidate": self.isolated_given_candidate.to_dict(),
            "factorised": self.factorised, "rejection": self.rejection,
            **({"note": _insufficient(self.tight_isolated.passed)} if self.rejection is None else {}),
        }


def fake_photon_rate(
    ev: ak.Array, pt_min: float = 25.0, iso_calo: float = 0.065, iso_track: float = 0.05,
    eta_max: float = 2.37, crack: tuple[float, float] = (1.37, 1.52),
) -> FakePhotonRate:
    """Jets faking photons: candidates from hadron decays (``genPartFlav`` 2) matched to truth
    jets, with the tight identification and the FixedCutLoose-like isolation of the HH
    selection (isoCalo/E_T < 0.065, isoTrack/E_T < 0.05).

    Truth jets within ΔR < 0.4 of a hard-process photon or lepton are not counted (in γ+jet
    events the truth photon is itself clustered into a truth jet).

    Args:
        ev: ``Photon_*``, ``GenJet_*`` and ``GenPart_*`` arrays.
        pt_min: jet and photon pT threshold (GeV).
        iso_calo, iso_track: relative isolation cuts.
        eta_max, crack: the photon acceptance in |η|.

    Returns:
        The rates per truth jet.
    """
    gen = _coll(ev, "GenJet")
    gp = _coll(ev, "GenPart")
    prompt = gp[((gp.pdgId == 22) | (abs(gp.pdgId) == 11) | (abs(gp.pdgId) == 13)) & (gp.pt > 10.0)]
    a = np.abs(gen.eta)
    jets = gen[(gen.pt > pt_min) & (a < eta_max) & ~((a > crack[0]) & (a < crack[1]))]
    pj = ak.cartesian([jets, prompt], nested=True)
    near_prompt = ak.any(np.hypot(pj["0"].eta - pj["1"].eta, _dphi(pj["0"].phi, pj["1"].phi)) < 0.4,
                         axis=2)
    jets = jets[~near_prompt]
    ph = _coll(ev, "Photon")
    fakes = ph[(ph.genPartFlav != 1) & (ph.pt > pt_min)]
    pairs = ak.cartesian([jets, fakes], nested=True)
    dr = np.hypot(pairs["0"].eta - pairs["1"].eta, _dphi(pairs["0"].phi, pairs["1"].phi))
    f = pairs["1"]
    near = dr < 0.4
    tight = near & f.isTight
    iso = near & (f.isoCalo < iso_calo * f.pt) & (f.isoTrack < iso_track * f.pt)
    n_jets = int(ak.sum(ak.num(jets)))

    def count(mask: ak.Array) -> int:
        return int(ak.sum(ak.any(mask, axis=2)))

    n_cand, n_tight, n_iso, n_ti = count(near), count(tight), count(iso), count(tight & iso)
    cand = Estimate.binomial(n_cand, n_jets)
    t_c = Estimate.binomial(n_tight, n_cand)
    i_c = Estimate.binomial(n_iso, n_cand)
    fact = (cand.value * t_c.value * i_c.value
            if (cand.value and t_c.value is not None and i_c.value is not None) else None)
    return FakePhotonRate(
        n_jets=n_jets, pt_min=pt_min, candidates=cand, tight=Estimate.binomial(n_tight, n_jets),
        isolated=Estimate.binomial(n_iso, n_jets), tight_isolated=Estimate.binomial(n_ti, n_jets),
        tight_given_candidate=t_c, isolated_given_candidate=i_c, factorised=fact,
    )


# --------------------------------------------------------------------------- tracks, vertices


@dataclass(frozen=True)
class IpTails:
    """Signed d0 significance of the tagger-selected tracks of light jets (label 0,
    pT > 20 GeV, |η| < 2.5; tracks with |d0| < 1 mm and |z0 sinθ| < 1.5 mm)."""

    n_tracks: int
    #: fraction of tracks with sd0 > 3 / < −3, and > 5
    positive_3: float | None
    negative_3: float | None
    positive_5: float | None
    #: of the tracks with sd0 > 3: the fraction per truth origin (FTAG convention names)
    tail_origin: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out: dict[str, Any] = {"n_tracks": self.n_tracks, "positive_3": self.positive_3,
                               "negative_3": self.negative_3, "positive_5": self.positive_5,
                               "tail_origin": dict(self.tail_origin)}
        if self.positive_3 is None:
            out["note"] = _insufficient(self.n_tracks)
        return out


_ORIGIN_NAMES = {0: "pileup", 1: "fake", 2: "primary", 3: "from_b", 4: "from_bc", 5: "from_c",
                 6: "from_tau", 7: "other_secondary"}


def ip_tails(ev: ak.Array, flavour: int = 0) -> IpTails:
    """Tails of the lifetime-signed d0 significance of tracks in jets of one flavour.

    Args:
        ev: ``Jet_*`` and ``Track_*`` arrays.
        flavour: the jets' ``hadronConeExclTruthLabelID`` (0: light).

    Returns:
        The tail fractions and, in the positive tail, the share of each truth origin.
    """
    jets, trk = _coll(ev, "Jet"), _coll(ev, "Track")
    ok = trk.jetIdx >= 0
    jet = jets[ak.where(ok, trk.jetIdx, 0)]
    sin_t = 1.0 / np.cosh(trk.eta)
    sign = np.where(np.sin(jet.phi - trk.phi) * trk.d0 >= 0, 1.0, -1.0)
    sd0 = sign * np.abs(trk.d0) / trk.d0Err
    sel = (ok & (jet.hadronConeExclTruthLabelID == flavour) & (jet.pt > 20) & (np.abs(jet.eta) < 2.5)
           & (np.abs(trk.d0) < 1.0) & (np.abs(trk.z0 * sin_t) < 1.5))
    s = ak.to_numpy(ak.flatten(sd0[sel]))
    origin = ak.to_numpy(ak.flatten(trk.truthOrigin[sel]))
    n = int(s.size)
    if n < MIN_ENTRIES:
        return IpTails(n, None, None, None)
    tail = s > 3
    shares = {name: float(np.mean(origin[tail] == code)) for code, name in _ORIGIN_NAMES.items()} \
        if tail.any() else {}
    return IpTails(n, float(np.mean(s > 3)), float(np.mean(s < -3)), float(np.mean(s > 5)), shares)


def vertexing_performance(ev: ak.Array, dz_mm: float = 0.1) -> dict[str, Any]:
    """Pile-up interactions and reconstructed vertices per event, and the fraction of events
    whose primary vertex is within ``dz_mm`` of the true hard-scatter vertex.

    Args:
        ev: ``Pileup_nPU``, ``PV_npvs``, ``PV_z`` and ``GenVtx_z`` arrays.
        dz_mm: the matching distance (mm).

    Returns:
        ``{"n_events", "mean_pileup", "mean_vertices", "hard_scatter_chosen"}``.
    """
    n = len(ev)
    if n == 0:
        return {"n_events": 0, "note": _insufficient(0)}
    dz = np.abs(ak.to_numpy(ev.PV_z) - ak.to_numpy(ev.GenVtx_z))
    return {
        "n_events": n,
        "mean_pileup": float(np.mean(ak.to_numpy(ev.Pileup_nPU))),
        "mean_vertices": float(np.mean(ak.to_numpy(ev.PV_npvs))),
        "hard_scatter_chosen": Estimate.binomial(int(np.sum(dz < dz_mm)), n).to_dict(),
    }


# --------------------------------------------------------------------------- all together


_JET_BRANCHES = ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_genJetIdx", "Jet_hadronConeExclTruthLabelID",
                 "GenJet_pt", "GenJet_eta", "GenJet_phi")
_PHOTON_BRANCHES = ("Photon_pt", "Photon_eta", "Photon_phi", "Photon_genPartFlav", "Photon_isTight",
                    "Photon_isoCalo", "Photon_isoTrack", "GenPart_pt", "GenPart_eta", "GenPart_phi",
                    "GenPart_pdgId")
_TRACK_BRANCHES = ("Track_pt", "Track_eta", "Track_phi", "Track_d0", "Track_z0", "Track_d0Err",
                   "Track_truthOrigin", "Track_jetIdx")
_VERTEX_BRANCHES = ("Pileup_nPU", "PV_npvs", "PV_z", "GenVtx_z")


@dataclass(frozen=True)
class DetectorPerformance:
    """Every measured detector number (the ``hepline detector-performance`` JSON)."""

    jets: list[JetBin]
    diphoton: MassResolution | None
    photon_energy: list[dict[str, Any]]
    fakes: dict[str, FakePhotonRate]
    ip_tails: IpTails | None
    vertexing: dict[str, dict[str, Any]]
    inputs: dict[str, list[str]]
    #: the jet energy scale derived from the jet sample (:func:`derive_jes`; needs the
    #: configuration the sample was made with): ``{"jes_energy_gev": [...], "jes_factor": [...]}``
    jes: dict[str, list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "jets": [b.to_dict() for b in self.jets],
            "diphoton_mass": self.diphoton.to_dict() if self.diphoton else None,
            "photon_energy_resolution": self.photon_energy,
            "fake_photons": {k: v.to_dict() for k, v in self.fakes.items()},
            "ip_tails_light": self.ip_tails.to_dict() if self.ip_tails else None,
            "vertexing": self.vertexing,
            "derived_jes": self.jes,
            "inputs": self.inputs,
        }


def measure(
    *,
    jets: Sequence[str | os.PathLike[str]] = (),
    diphoton: Sequence[str | os.PathLike[str]] = (),
    fakes: Mapping[str, Sequence[str | os.PathLike[str]]] | None = None,
    tracks: Sequence[str | os.PathLike[str]] = (),
    jet_config: JetReconstruction | None = None,
) -> DetectorPerformance:
    """Measure the detector on the ntuples of each role.

    Args:
        jets: a jet sample (dijets) for the JES closure and JER.
        diphoton: an H → γγ sample for the m_γγ and photon energy resolutions.
        fakes: per sample name (γ+jet, dijets), the files for the fake-photon rate.
        tracks: a sample with light jets (ttbar) for the impact-parameter tails.
        jet_config: the ``detector.jets`` section the jet sample was made with: the jet energy
            scale is then derived from it too (:func:`derive_jes`).

    Returns:
        The numbers (parts without files are empty or ``None``).
    """
    fakes = dict(fakes or {})
    jet_res: list[JetBin] = []
    jes = None
    if jets:
        jet_ev = read_events(jets, _JET_BRANCHES)
        jet_res = jet_energy_resolution(jet_ev)
        if jet_config is not None:
            knots, factors = derive_jes(jet_ev, jet_config)
            jes = {"jes_energy_gev": knots, "jes_factor": factors}
    dip, pe = None, []
    vtx: dict[str, dict[str, Any]] = {}
    if diphoton:
        ev = read_events(diphoton, (*_PHOTON_BRANCHES, *_VERTEX_BRANCHES))
        dip = diphoton_mass_resolution(ev)
        pe = photon_energy_resolution_by_eta(ev)
        vtx["diphoton"] = vertexing_performance(ev)
    fk = {name: fake_photon_rate(read_events(paths, (*_PHOTON_BRANCHES, "GenJet_pt", "GenJet_eta",
                                                     "GenJet_phi")))
          for name, paths in fakes.items() if paths}
    ipt = None
    if tracks:
        ev = read_events(tracks, (*_JET_BRANCHES, *_TRACK_BRANCHES, *_VERTEX_BRANCHES))
        ipt = ip_tails(ev)
        vtx["tracks"] = vertexing_performance(ev)
    inputs = {"jets": [str(p) for p in jets], "diphoton": [str(p) for p in diphoton],
              "tracks": [str(p) for p in tracks],
              **{f"fakes_{k}": [str(p) for p in v] for k, v in fakes.items()}}
    return DetectorPerformance(jet_res, dip, pe, fk, ipt, vtx, inputs, jes)


def write_performance(
    output: str | os.PathLike[str], cfg: Config | None = None, **files: Any
) -> DetectorPerformance:
    """:func:`measure` and write its JSON (with provenance) to ``output``.

    Args:
        output: the JSON file.
        cfg: the configuration the samples were made with (its hash goes into the provenance;
            with it the jet energy scale is derived from the jet sample).
        **files: as :func:`measure`.

    Returns:
        The measured numbers.
    """
    perf = measure(**files, jet_config=cfg.detector.jets if cfg is not None else None)
    all_inputs = [p for paths in perf.inputs.values() for p in paths]
    write_json(output, perf.to_dict(), provenance=provenance_record(
        stage="generation.detector_performance", config=cfg, inputs=all_inputs))
    return perf
