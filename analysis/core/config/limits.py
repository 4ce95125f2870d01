"""The ``limits`` section: the pyhf statistical model and the CLs limits.

Frozen typed views of the validated section (:mod:`analysis.core.config.node`); the
schema in ``schema/`` holds the defaults and limits, and ``tests/analysis/core/test_config_types.py``
keeps these classes in step with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from analysis.core.config.node import ConfigNode

__all__ = [
    "LimitsConfig",
    "LimitsNonresonant",
    "LimitsResonant",
    "MassCategory",
    "NonresonantContinuumFit",
]


@dataclass(frozen=True, kw_only=True)
class NonresonantContinuumFit(ConfigNode):
    """the continuum backgrounds as exponentials fitted to the m_yy sidebands of a looser
    region (shape), normalised to their MC yield in each region, instead of the raw MC
    templates
    """

    enabled: bool
    samples: tuple[str, ...]
    shape_region: str
    sidebands: tuple[tuple[float, ...], ...]


@dataclass(frozen=True, kw_only=True)
class LimitsNonresonant(ConfigNode):
    """The ``limits.nonresonant`` section."""

    #: a non-resonant HH sample normalised to sigma_SM x B; the limit on its mu is mu_HH
    signal: str | None
    observable: Literal['m_yy', 'm_bb', 'm_star']
    rebin: int
    window: tuple[float, ...] | None
    regions: tuple[str, ...]
    #: the continuum backgrounds as exponentials fitted to the m_yy sidebands of a looser region
    #: (shape), normalised to their MC yield in each region, instead of the raw MC templates
    continuum_fit: NonresonantContinuumFit


@dataclass(frozen=True, kw_only=True)
class MassCategory(ConfigNode):
    """The ``mass_category`` section."""

    #: this category applies to signals with mass below this (null = no upper bound)
    max_mass_gev: float | None
    regions: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class LimitsResonant(ConfigNode):
    """The ``limits.resonant`` section."""

    #: X -> HH samples (mass and reference sigma from generation.samples)
    signals: tuple[str, ...]
    observable: Literal['m_yy', 'm_bb', 'm_star']
    rebin: int
    #: keep observable bins within mX (1 +- f) (null = the whole axis)
    window_fraction: float | None
    #: 2018 practice, loose selection below 500 GeV and tight above
    mass_categories: tuple[MassCategory, ...]


@dataclass(frozen=True, kw_only=True)
class LimitsConfig(ConfigNode):
    """Statistical model (signals, backgrounds, systematics, binning) and CLs limits.
    """

    SECTION: ClassVar[str] = "limits"

    confidence_level: float
    test_statistic: Literal['qtilde', 'q']
    backgrounds: tuple[str, ...]
    #: shape systematics (pyhf histosys) taken from the histogram variations
    systematics: tuple[Literal['btag_b', 'btag_c', 'btag_light', 'photon_scale', 'photon_resolution', 'jet_scale'], ...]
    #: relative luminosity uncertainty (pyhf normsys 'lumi' on every MC sample)
    lumi_uncertainty: float
    #: pyhf staterror (Barlow-Beeston lite) per channel on the backgrounds
    mc_stat: bool
    #: also put the signal under the shared staterror (off by default; docs/hh_yybb.md)
    mc_stat_signal: bool
    #: bins whose total background (nominal) is below this many events are raised to it (added to
    #: the region's largest background, with no MC-stat uncertainty on the added amount) and
    #: reported with a warning; pyhf cannot fit a bin with zero expected background
    empty_bin_floor: float
    #: a systematic variation missing from a histogram: error (default); symmetrize (mirror the
    #: other side about nominal; drop the modifier if both are missing); drop (no modifier for that
    #: sample), each with a warning
    missing_variation: Literal['error', 'symmetrize', 'drop']
    #: a sample of the histograms holding (pseudo-)data; its nominal gives observed limits
    data_sample: str | None
    #: without data_sample, Poisson pseudo-data from the background model with this seed (observed
    #: limits); null = expected only
    pseudo_data_seed: int | None
    nonresonant: LimitsNonresonant
    resonant: LimitsResonant
