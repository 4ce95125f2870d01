"""Write-time multijet preselection of the RPV samples (``rpv.preselection``).

The whole-detector CNN claim needs O(10⁵) QCD events per slice to put a dozen background events
in the cut-based signal region, but only ~9 % of qcd_400_800 has three large-R jets and a hard
leading one. The preselection keeps, at generation time, only events with

* ≥ ``rpv.preselection.n_jets_min`` large-R jets (3), the jets of :func:`selections.rpv.cuts.large_r_jets`
  with the ``rpv.large_r_jets`` settings (anti-kt R = 1.0, pT > 200 GeV, |η| < 2.0), and
* a leading jet with pT > ``rpv.preselection.leading_pt_min_gev`` (400 GeV),

computed on the towers as they are written (float32 η, φ and the stored energies). Because the
jets are the cut-based search's own and the thresholds are at most its preselection's
(≥ 3 jets, leading pT > 440 GeV; :func:`check_contains_signal_region` refuses anything tighter),
every event of the cut-based signal region is kept. Pythia and the detector cost the same;
the files, images and trainings shrink by about 10×.

The weighted efficiency ε = Σw(kept)/Σw(simulated) of each shard multiplies its cross-section
(:class:`analysis.generation.produce.WriteFilter`), so ``genWeight · σ / Σw`` of the kept events
(:mod:`selections.rpv.samples`) reproduces their unfiltered yields; the counts are stored as
``preselection`` in the shard metadata (:func:`preselection_summary` reads them back).

In memory: :func:`preselection_mask` (jet count and leading pT → flags),
:func:`preselect_block` (a simulated block → flags), :func:`write_filter`. Files
(``hepline rpv generate``): :func:`generate`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.core.config import Config
from analysis.core.config.rpv import RpvConfig, RpvPreselection
from analysis.core.errors import ConfigError
from analysis.generation.produce import ShardResult, WriteFilter, produce_shard
from selections.rpv.cuts import large_r_jets

log = logging.getLogger(__name__)

__all__ = [
    "PRESELECTION_NAME",
    "SamplePreselection",
    "check_contains_signal_region",
    "describe",
    "generate",
    "preselect_block",
    "preselection_mask",
    "preselection_summary",
    "write_filter",
]

#: the ``name`` of the write filter in the shard metadata
PRESELECTION_NAME = "rpv_multijet"


def check_contains_signal_region(rpv: RpvConfig) -> None:
    """Refuse a preselection that could drop an event of the cut-based signal region.

    The preselection uses the search's own large-R jets, so it contains the signal region when
    its jet count and leading-jet pT thresholds are at most those of the cut-based preselection
    (``rpv.cuts.presel_n_jets_min``, ``rpv.cuts.leading_pt_min_gev``), which the signal region
    requires.

    Raises:
        ConfigError: a threshold above the cut-based one, naming the field.
    """
    p, c = rpv.preselection, rpv.cuts
    if p.n_jets_min > c.presel_n_jets_min:
        raise ConfigError(
            f"rpv.preselection.n_jets_min: {p.n_jets_min} is above rpv.cuts.presel_n_jets_min "
            f"({c.presel_n_jets_min}); the write-time preselection would drop signal-region events")
    if p.leading_pt_min_gev > c.leading_pt_min_gev:
        raise ConfigError(
            f"rpv.preselection.leading_pt_min_gev: {p.leading_pt_min_gev:g} GeV is above "
            f"rpv.cuts.leading_pt_min_gev ({c.leading_pt_min_gev:g} GeV); the write-time "
            "preselection would drop signal-region events")


def describe(rpv: RpvConfig) -> str:
    """The preselection in words (stored in the shard metadata)."""
    p, j = rpv.preselection, rpv.large_r_jets
    return (f">= {p.n_jets_min} anti-kt R = {j.radius:g} tower jets with pT > {j.pt_min_gev:g} GeV and "
            f"|eta| < {j.abs_eta_max:g}, leading pT > {p.leading_pt_min_gev:g} GeV")


def preselection_mask(n_jets: np.ndarray, lead_pt: np.ndarray, preselection: RpvPreselection) -> np.ndarray:
    """The events passing the preselection.

    Args:
        n_jets: large-R jets per event.
        lead_pt: leading large-R jet pT per event (GeV; 0 without jets).
        preselection: ``rpv.preselection``.
    """
    return (np.asarray(n_jets) >= preselection.n_jets_min) & (
        np.asarray(lead_pt, np.float64) > preselection.leading_pt_min_gev)


def preselect_block(block: Mapping[str, Any], rpv: RpvConfig) -> np.ndarray:
    """The preselection flags of a simulated block (``Tower`` collection: eta, phi, eEM, eHad in GeV).

    Args:
        block: the event block as written (:func:`analysis.generation.detector.simulate` plus
            the event branches), or an awkward array with ``Tower_*`` fields read back.
        rpv: the ``rpv`` section (large-R jets, preselection).

    Returns:
        One bool per event.
    """
    import awkward as ak

    if isinstance(block, Mapping) and "Tower" in block:
        towers = block["Tower"]
        fields = {k: towers[k] for k in ("eta", "phi", "eEM", "eHad")}
    else:
        fields = {k: block[f"Tower_{k}"] for k in ("eta", "phi", "eEM", "eHad")}
    n = len(fields["eta"])
    counts = ak.to_numpy(ak.num(fields["eta"], axis=1)).astype(np.int64)
    flat = {k: ak.to_numpy(ak.flatten(v, axis=1)) for k, v in fields.items()}
    jets = large_r_jets(n, np.repeat(np.arange(n), counts), flat["eta"], flat["phi"], flat["eEM"], flat["eHad"],
                        rpv.large_r_jets)
    ev = np.asarray(jets.event, np.int64)
    n_jets = np.bincount(ev, minlength=n)
    lead_pt = np.zeros(n)
    first = np.zeros(n + 1, np.int64)
    np.cumsum(n_jets, out=first[1:])
    has = n_jets > 0
    lead_pt[has] = np.asarray(jets.pt, np.float64)[first[:-1][has]]
    return preselection_mask(n_jets, lead_pt, rpv.preselection)


def write_filter(rpv: RpvConfig) -> WriteFilter:
    """The preselection as a generation :class:`~analysis.generation.produce.WriteFilter`.

    Raises:
        ConfigError: a preselection that does not contain the signal region.
    """
    check_contains_signal_region(rpv)
    return WriteFilter(name=PRESELECTION_NAME, description=describe(rpv),
                       select=lambda block: preselect_block(block, rpv))


def generate(
    cfg: Config,
    sample: str,
    shard: int,
    output: str | os.PathLike[str] | None,
    *,
    n_events: int | None = None,
    progress: bool = True,
    metrics: str | os.PathLike[str] | None = None,
) -> ShardResult:
    """``hepline rpv generate``: one shard of an rpv sample with the preselection applied at write time.

    Args:
        cfg: the configuration (``generation``, ``detector``, ``seed``, ``rpv``).
        sample: a sample of ``rpv.signal_samples`` or ``rpv.background_samples``.
        shard: the shard index.
        output: the ROOT file (``None``: nothing written).
        n_events: events to generate (before the preselection); default ``events_per_shard``.
        progress: a progress bar.
        metrics: the timing metrics JSON.

    Returns:
        The shard's :class:`~analysis.generation.produce.ShardResult`; its metadata holds the
        ``preselection`` counts and σ·ε.

    Raises:
        ConfigError: a sample outside the rpv samples, or a preselection tighter than the cuts.
    """
    rpv = cfg.rpv
    if sample not in (*rpv.signal_samples, *rpv.background_samples):
        raise ConfigError(f"rpv generate: sample {sample!r} is in neither rpv.signal_samples nor "
                          "rpv.background_samples")
    return produce_shard(cfg, sample, shard, output, n_events=n_events, progress=progress, metrics=metrics,
                         write_filter=write_filter(rpv))


@dataclass(frozen=True)
class SamplePreselection:
    """The preselection of one sample's files, summed over its shards.

    Attributes:
        sample: the sample.
        files: shard files read.
        n_before, n_after: simulated and written events.
        sumw_before, sumw_after: Σ genWeight of those.
        description: the preselection in words (None for files written without one).
    """

    sample: str
    files: int
    n_before: int
    n_after: int
    sumw_before: float
    sumw_after: float
    description: str | None

    @property
    def efficiency(self) -> float:
        """Σw(kept)/Σw(simulated) (1 for unfiltered files, NaN without events)."""
        return self.sumw_after / self.sumw_before if self.sumw_before > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        return {"sample": self.sample, "files": self.files, "n_before": self.n_before, "n_after": self.n_after,
                "sumw_before": self.sumw_before, "sumw_after": self.sumw_after, "efficiency": self.efficiency,
                "description": self.description}


def preselection_summary(files: Sequence[str | os.PathLike[str]], sample: str) -> SamplePreselection:
    """The preselection counts of a sample's shard files (files without one count as unfiltered).

    Args:
        files: the sample's ntuples.
        sample: its name.
    """
    from analysis.io.ingest import read_metadata

    n_b = n_a = 0
    s_b = s_a = 0.0
    desc = None
    for f in files:
        meta = read_metadata(f)
        p = meta.get("preselection")
        if p is None:
            n = int(meta.get("n_events", 0))
            sw = float(meta.get("sumw", n))
            n_b, n_a, s_b, s_a = n_b + n, n_a + n, s_b + sw, s_a + sw
            continue
        desc = str(p.get("description"))
        n_b += int(p["n_before"])
        n_a += int(p["n_after"])
        s_b += float(p["sumw_before"])
        s_a += float(p["sumw_after"])
    return SamplePreselection(sample, len(files), n_b, n_a, s_b, s_a, desc)
