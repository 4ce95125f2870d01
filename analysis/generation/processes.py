"""Pythia 8 process cards: hard-process settings, normalisation and event filter per sample.

:func:`process_card` turns one ``generation.samples`` entry of the configuration
(:class:`~analysis.core.config.SampleConfig`, schema ``$defs.sample``) into a
:class:`ProcessCard`. The generation driver sets the beams, seeds, the MPI switch and the
``Next:``/``Print:`` lines itself, then

1. writes ``card.files`` into the job's work directory and replaces the placeholder
   ``{workdir}`` in ``card.settings`` by that directory (:meth:`ProcessCard.materialise`),
2. applies the settings with ``readString`` and calls ``init()``,
3. keeps ``card.event_filter(batch)`` of every ``nextBatch`` batch (all events if ``None``),
4. normalises: the kept events represent the cross-section
   sigma = (``card.xsec_pb`` if given, else Pythia's ``sigmaGen()`` in pb) x ``card.branching``,
   i.e. each kept event weighs sigma / (number of kept events).

The filter efficiency is *not* a further factor: the filters only select the final state
whose physical probability ``branching`` already is (e.g. the forced 50/50 H -> bb/yy decays
give one H->bb + one H->yy in ~50% of the events; those events carry B(HH->bbyy) = 2 B(bb) B(yy)).

Pythia's ``sigmaGen()`` already contains the fraction of *open* decay channels of every
resonance produced in the hard process. A decay forced with ``onMode off`` + ``onIfMatch``
therefore comes with Pythia's own branching ratio inside ``sigmaGen()``; the ``branching``
of such a card only corrects that ratio to the physical one (see ``h_yy``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import awkward as ak
import numpy as np

from analysis.core.config import ConfigError, GenerationConfig, SampleConfig
from analysis.generation.slha import rpv_gluino_slha

__all__ = [
    "BR_HH_BBYY",
    "BR_H_BB",
    "BR_H_YY",
    "HH_BBYY_FILTER_DESCRIPTION",
    "WORKDIR_PLACEHOLDER",
    "CrossSectionMeasurement",
    "ProcessCard",
    "ProcessConfigError",
    "cross_section_table",
    "hh_bbyy_filter",
    "higgs_decay_counts",
    "measure",
    "measure_samples",
    "process_card",
    "pythia_branching_ratio",
]

log = logging.getLogger(__name__)

#: Placeholder in settings for the job's work directory (where ``ProcessCard.files`` go).
WORKDIR_PLACEHOLDER = "{workdir}"

#: Physical branching ratios (LHC Higgs XS WG, m_H = 125 GeV).
BR_H_BB = 0.5809
BR_H_YY = 0.00227
#: B(HH -> b b~ gamma gamma) = 2 B(H->bb) B(H->yy) (two orderings).
BR_HH_BBYY = 2.0 * BR_H_BB * BR_H_YY

#: Minimum X mass for X -> HH (2 m_H) in GeV.
_M_HIGGS_GEV = 125.0

#: Force H -> b b~ / gamma gamma 50 % / 50 % (meMode 100: fixed BRs, no width recomputation).
_FORCE_H_BB_YY = (
    "25:onMode = off",
    "25:oneChannel = 1 0.5 100 5 -5",
    "25:addChannel = 1 0.5 100 22 22",
)

_PROCESSES = ("ttbar", "x_hh_yybb", "yy_continuum", "gamma_jet", "h_yy", "rpv_gluino",
              "qcd_multijet", "lhe")

_H_YY_PRODUCTION = {
    "ggH": ("HiggsSM:gg2H = on",),
    "ttH": ("HiggsSM:gg2Httbar = on", "HiggsSM:qqbar2Httbar = on"),
    "ZH": ("HiggsSM:ffbar2HZ = on",),
}


class ProcessConfigError(ConfigError):
    """A sample lacks a key its process needs, or a value is unusable for that process.

    ``key`` is the offending sample key, ``sample`` the sample's name (or a description).
    """

    def __init__(self, message: str, *, key: str, sample: str) -> None:
        super().__init__(message)
        self.key = key
        self.sample = sample


@dataclass(frozen=True)
class ProcessCard:
    """Everything process-specific the generation driver needs for one sample.

    ``settings``: Pythia ``readString`` lines for this process (no beam/seed/MPI/Next lines);
    they may contain ``{workdir}/<name>`` for the files in ``files``.
    ``xsec_pb``: external cross-section in pb before ``branching``; ``None``: use Pythia's
    ``sigmaGen()`` (mb -> pb: x 1e9).
    ``branching``: dimensionless factor applied to the cross-section.
    ``event_filter``: batch of ``nextBatch`` events -> boolean numpy mask of events to keep
    (``None``: keep all). (xsec or sigmaGen) x ``branching`` is the cross-section of the *kept*
    events: the driver divides it by the number of kept events, not of generated ones.
    ``files``: auxiliary files (name -> text) to write into the work dir before ``init()``.
    """

    settings: tuple[str, ...]
    xsec_pb: float | None
    branching: float
    event_filter: Callable[[ak.Array], np.ndarray] | None
    filter_description: str
    files: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def materialise(self, workdir: str | os.PathLike[str]) -> list[str]:
        """Write ``files`` into ``workdir`` and return ``settings`` with ``{workdir}`` filled in."""
        wd = Path(workdir).resolve()
        wd.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (wd / name).write_text(text)
            log.debug("wrote %s (%d bytes)", wd / name, len(text))
        return [s.replace(WORKDIR_PLACEHOLDER, str(wd)) for s in self.settings]


# --------------------------------------------------------------------------------------------
# event filters (vectorised over an awkward batch from Pythia.nextBatch)


def higgs_decay_counts(events: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per event: (number of last-copy Higgs bosons, of them decaying to b b~, to gamma gamma).

    A last copy is a particle with id 25 whose first daughter is not a Higgs (carbon copies
    from shower recoils have the next copy as their only daughter). Its decay products are
    the daughters ``daughter1`` and ``daughter2 = daughter1 + 1`` (two-body decay).
    """
    prt = events.prt
    pid = prt.id
    d1 = prt.daughter1
    d2 = prt.daughter2
    id_d1 = pid[d1]          # jagged gather within each event
    id_d2 = pid[d2]
    last = (pid == 25) & (d1 > 0) & (id_d1 != 25)
    two_body = last & (d2 == d1 + 1)
    to_bb = two_body & (abs(id_d1) == 5) & (id_d2 == -id_d1)
    to_yy = two_body & (id_d1 == 22) & (id_d2 == 22)
    return (ak.to_numpy(ak.sum(last, axis=1)), ak.to_numpy(ak.sum(to_bb, axis=1)),
            ak.to_numpy(ak.sum(to_yy, axis=1)))


def hh_bbyy_filter(events: ak.Array) -> np.ndarray:
    """Keep events with exactly two Higgs bosons, one -> b b~ and one -> gamma gamma."""
    n_h, n_bb, n_yy = higgs_decay_counts(events)
    return (n_h == 2) & (n_bb == 1) & (n_yy == 1)


HH_BBYY_FILTER_DESCRIPTION = ("exactly two last-copy Higgs bosons (id 25), one decaying to "
                              "b b~ and one to gamma gamma (~50% with the forced 50/50 decays)")


# --------------------------------------------------------------------------------------------
# helpers


def _sample_label(sample: SampleConfig, name: str | None) -> str:
    if name is not None:
        return name
    return f"<process={sample.process!r}, run_number={sample.run_number}>"


def _require(sample: SampleConfig, key: str, label: str) -> Any:
    value = getattr(sample, key)
    if value is None:
        raise ProcessConfigError(
            f"sample {label}: process {sample.process!r} needs the key {key!r}",
            key=key, sample=label)
    return value


def _positive(sample: SampleConfig, key: str, label: str, *, allow_zero: bool = False
              ) -> float:
    value = _require(sample, key, label)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ProcessConfigError(f"sample {label}: {key!r} must be a number, got {value!r}",
                                 key=key, sample=label) from None
    if not (x > 0 or (allow_zero and x == 0)):
        raise ProcessConfigError(f"sample {label}: {key!r} must be "
                                 f"{'>= 0' if allow_zero else '> 0'}, got {value!r}",
                                 key=key, sample=label)
    return x


@lru_cache(maxsize=8)
def pythia_branching_ratio(pdg_id: int, products: tuple[int, ...],
                           extra_settings: tuple[str, ...] = ()) -> float:
    """Pythia's own branching ratio of ``pdg_id -> products`` at the nominal mass.

    Initialises a bare Pythia (no process level) so that the resonance widths are computed
    as Pythia computes them for event generation; ``extra_settings`` (e.g. a changed Higgs
    mass) are applied first. Takes ~0.2 s, cached.

    Args:
        pdg_id: the decaying particle.
        products: PDG ids of the decay products (any order).
        extra_settings: Pythia ``readString`` lines applied before ``init()``.

    Returns:
        The summed branching ratio of the matching open channels (dimensionless).
    """
    import pythia8mc  # local import: the process cards themselves do not need Pythia

    p = pythia8mc.Pythia("", False)
    for line in ("ProcessLevel:all = off", "Print:quiet = on", *extra_settings):
        if not p.readString(line):
            raise ValueError(f"Pythia rejected the setting {line!r}")
    if not p.init():
        raise RuntimeError("bare Pythia initialisation failed")
    entry = p.particleData.particleDataEntryPtr(pdg_id)
    want = sorted(products)
    total = 0.0
    for i in range(entry.sizeChannels()):
        ch = entry.channel(i)
        if sorted(ch.product(j) for j in range(ch.multiplicity())) == want:
            total += ch.bRatio()
    if total <= 0:
        raise ValueError(f"Pythia has no open channel {pdg_id} -> {products}")
    return total


# --------------------------------------------------------------------------------------------
# the cards


def process_card(sample: SampleConfig, *, name: str | None = None) -> ProcessCard:
    """Build the :class:`ProcessCard` for one entry of ``generation.samples``.

    Args:
        sample: the sample's section (masses and pT-hat bounds in GeV, cross-sections in pb).
        name: the sample's key in the config; only labels error messages.

    Returns:
        The process card (Pythia settings, external σ, branching, event filter, files).

    Raises:
        ProcessConfigError: a key the process needs is missing or unusable; the message names
            the key and the sample.
    """
    label = _sample_label(sample, name)
    process = sample.process
    if process not in _PROCESSES:
        raise ProcessConfigError(f"sample {label}: unknown 'process' {process!r} "
                                 f"(known: {', '.join(_PROCESSES)})", key="process", sample=label)
    extra = tuple(str(s) for s in (sample.extra_settings or ()))

    settings: list[str]
    xsec_pb: float | None = None
    branching = 1.0
    event_filter: Callable[[ak.Array], np.ndarray] | None = None
    filter_description = "none (all events kept)"
    files: dict[str, str] = {}

    if process == "ttbar":
        settings = ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"]

    elif process == "x_hh_yybb":
        m_x = _positive(sample, "mass_gev", label)
        if m_x <= 2 * _M_HIGGS_GEV:
            raise ProcessConfigError(f"sample {label}: 'mass_gev' = {m_x} GeV is below the HH "
                                     f"threshold {2 * _M_HIGGS_GEV} GeV", key="mass_gev",
                                     sample=label)
        xsec_pb = _positive(sample, "xsec_pb", label)
        settings = [
            "Higgs:useBSM = on",
            "HiggsBSM:gg2H2 = on",
            f"35:m0 = {m_x:.10g}",
            "35:mWidth = 0.01",
            "35:doForceWidth = on",
            "35:onMode = off",
            "35:onIfMatch = 25 25",
            *_FORCE_H_BB_YY,
        ]
        branching = BR_HH_BBYY
        event_filter = hh_bbyy_filter
        filter_description = HH_BBYY_FILTER_DESCRIPTION

    elif process == "yy_continuum":
        mhat_min = (_positive(sample, "mhat_min_gev", label, allow_zero=True)
                    if sample.mhat_min_gev is not None else 90.0)
        settings = [
            "PromptPhoton:ffbar2gammagamma = on",
            "PromptPhoton:gg2gammagamma = on",
            f"PhaseSpace:mHatMin = {mhat_min:.10g}",
            # Power shower: initial-state emissions up to the kinematic limit. With photons
            # in the final state Pythia would otherwise stop at the factorisation scale
            # (pTmaxMatch = 0), and γγ + 2 jets (pT > 25 GeV, ΔR(j, γ) > 0.4) comes out at
            # 0.5 % of diphoton events instead of 9.7 % (3000 events each, docs/processes.md).
            # No γγ + jet matrix-element sample is generated, so nothing is counted twice.
            "SpaceShower:pTmaxMatch = 2",
        ]

    elif process == "gamma_jet":
        pthat_min = _positive(sample, "pthat_min_gev", label, allow_zero=True)
        # All single-photon + parton 2->2 processes. gg -> g gamma is loop-induced and small
        # but part of the same final state; the gamma gamma processes belong to yy_continuum.
        settings = [
            "PromptPhoton:qg2qgamma = on",
            "PromptPhoton:qqbar2ggamma = on",
            "PromptPhoton:gg2ggamma = on",
            f"PhaseSpace:pTHatMin = {pthat_min:.10g}",
        ]

    elif process == "h_yy":
        production = _require(sample, "production", label)
        if production not in _H_YY_PRODUCTION:
            raise ProcessConfigError(f"sample {label}: 'production' must be one of "
                                     f"{sorted(_H_YY_PRODUCTION)}, got {production!r}",
                                     key="production", sample=label)
        settings = [*_H_YY_PRODUCTION[production], "25:onMode = off", "25:onIfMatch = 22 22"]
        if sample.xsec_pb is not None:
            # external production cross-section: apply the physical B(H->yy) directly
            xsec_pb = _positive(sample, "xsec_pb", label)
            branching = BR_H_YY
        else:
            # sigmaGen already includes Pythia's B(H->yy) (the open-channel fraction of the
            # forced decay), so the factor only corrects it to the physical value.
            branching = BR_H_YY / pythia_branching_ratio(
                25, (22, 22), tuple(s for s in extra if s.strip().startswith(("25:", "Higgs"))))

    elif process == "rpv_gluino":
        m_g = _positive(sample, "gluino_mass_gev", label)
        m_chi = _positive(sample, "neutralino_mass_gev", label)
        if m_chi >= m_g:
            raise ProcessConfigError(
                f"sample {label}: 'neutralino_mass_gev' ({m_chi}) must be below "
                f"'gluino_mass_gev' ({m_g})", key="neutralino_mass_gev", sample=label)
        files["rpv.slha"] = rpv_gluino_slha(m_g, m_chi)
        settings = [
            "SUSY:gg2gluinogluino = on",
            "SUSY:qqbar2gluinogluino = on",
            f"SLHA:file = {WORKDIR_PLACEHOLDER}/rpv.slha",
            "SLHA:useDecayTable = on",      # take g~ and chi10 decays from the DECAY tables
        ]

    elif process == "qcd_multijet":
        pthat_min = _positive(sample, "pthat_min_gev", label, allow_zero=True)
        settings = ["HardQCD:all = on", f"PhaseSpace:pTHatMin = {pthat_min:.10g}"]
        if sample.pthat_max_gev is not None:
            pthat_max = _positive(sample, "pthat_max_gev", label)
            if pthat_max <= pthat_min:
                raise ProcessConfigError(f"sample {label}: 'pthat_max_gev' ({pthat_max}) must "
                                         f"exceed 'pthat_min_gev' ({pthat_min})",
                                         key="pthat_max_gev", sample=label)
            settings.append(f"PhaseSpace:pTHatMax = {pthat_max:.10g}")
        if sample.pthat_bias_power is not None:
            power = _positive(sample, "pthat_bias_power", label)
            if pthat_min <= 0:
                raise ProcessConfigError(f"sample {label}: 'pthat_bias_power' needs 'pthat_min_gev' > 0 "
                                         "(the bias reference)", key="pthat_min_gev", sample=label)
            # weight 1/bias = (pthat_min / pT-hat)^power: 1 at the slice's lower edge
            settings += ["PhaseSpace:bias2Selection = on", f"PhaseSpace:bias2SelectionPow = {power:.10g}",
                         f"PhaseSpace:bias2SelectionRef = {pthat_min:.10g}"]

    else:  # lhe
        lhe_file = str(_require(sample, "lhe_file", label))
        xsec_pb = _positive(sample, "xsec_pb", label)
        path = os.path.abspath(lhe_file)
        if any(c.isspace() for c in path):
            raise ProcessConfigError(f"sample {label}: 'lhe_file' path {path!r} contains "
                                     f"whitespace, which Pythia settings cannot hold",
                                     key="lhe_file", sample=label)
        if not os.path.exists(path):
            log.warning("sample %s: LHE file %s does not exist (yet)", label, path)
        settings = ["Beams:frameType = 4", f"Beams:LHEF = {path}"]
        decay = sample.decay or "none"
        if decay == "hh_yybb":
            settings += list(_FORCE_H_BB_YY)
            branching = BR_HH_BBYY
            event_filter = hh_bbyy_filter
            filter_description = HH_BBYY_FILTER_DESCRIPTION
        elif decay != "none":
            raise ProcessConfigError(f"sample {label}: unknown 'decay' {decay!r} "
                                     f"(known: hh_yybb, none)", key="decay", sample=label)

    if sample.xsec_pb is not None and xsec_pb is None:
        # An explicit external cross-section overrides Pythia's sigmaGen for any process.
        xsec_pb = _positive(sample, "xsec_pb", label)

    card = ProcessCard(
        settings=tuple(settings) + extra,
        xsec_pb=xsec_pb,
        branching=float(branching),
        event_filter=event_filter,
        filter_description=filter_description,
        files=MappingProxyType(dict(files)),
    )
    log.debug("process card for %s: %s", label, card)
    return card


# --------------------------------------------------------------------------------------------
# diagnostic: measure the cross-section of every sample of a config


@dataclass(frozen=True)
class CrossSectionMeasurement:
    """The cross-section bookkeeping of one sample, from a short Pythia run (:func:`measure`).

    Cross-sections in pb; ``sigma_pb`` = (``xsec_pb`` or ``sigma_gen_pb``) x ``branching`` is
    the cross-section of the ``kept`` events (see the module docstring).
    """

    sample: str
    process: str
    #: events generated
    events: int
    #: events the card's filter kept
    kept: int
    #: Pythia's ``sigmaGen()`` and its error (pb)
    sigma_gen_pb: float
    sigma_gen_err_pb: float
    #: the card's external cross-section (pb), or None
    xsec_pb: float | None
    branching: float
    sigma_pb: float
    #: kept / generated
    filter_efficiency: float
    #: Pythia's ``init()`` time (s) and generation rate (events/s)
    init_s: float
    events_per_s: float

    def to_dict(self) -> dict[str, Any]:
        """The measurement as a JSON-ready dict."""
        return dict(self.__dict__)


def measure(sample: SampleConfig, *, name: str, n_events: int, workdir: str | os.PathLike[str],
            sqrt_s_gev: float = 13000.0, seed: int = 1, fast: bool = True) -> CrossSectionMeasurement:
    """Generate ``n_events`` for one sample and return its cross-section bookkeeping.

    This mirrors what the generation driver does, for checks and documentation only.

    Args:
        sample: the sample's section.
        name: its key in ``generation.samples``.
        n_events: events to generate.
        workdir: folder for the card's files.
        sqrt_s_gev: centre-of-mass energy (GeV).
        seed: Pythia's seed.
        fast: switch MPI and hadronisation off (the hard-process σ does not depend on them).

    Returns:
        The measurement (cross-sections in pb).
    """
    import pythia8mc

    card = process_card(sample, name=name)
    p = pythia8mc.Pythia("", False)
    base = [f"Beams:eCM = {sqrt_s_gev:.10g}", "Next:numberCount = 0", "Print:quiet = on",
            "Random:setSeed = on", f"Random:seed = {seed}"]
    if fast:
        base += ["PartonLevel:MPI = off", "HadronLevel:all = off"]
    for line in base + card.materialise(workdir):
        if not p.readString(line):
            raise ValueError(f"Pythia rejected the setting {line!r}")
    t0 = time.perf_counter()
    if not p.init():
        raise RuntimeError(f"Pythia init failed for sample {name}")
    t1 = time.perf_counter()
    n_gen = n_kept = 0
    while n_gen < n_events:
        batch = p.nextBatch(min(500, n_events - n_gen))
        if len(batch) == 0:
            break
        n_gen += len(batch)
        n_kept += len(batch) if card.event_filter is None else int(np.sum(card.event_filter(batch)))
    t2 = time.perf_counter()
    info = p.infoPython()
    sigma_gen = info.sigmaGen() * 1e9
    base_xsec = card.xsec_pb if card.xsec_pb is not None else sigma_gen
    return CrossSectionMeasurement(
        sample=name, process=sample.process, events=n_gen, kept=n_kept,
        sigma_gen_pb=sigma_gen, sigma_gen_err_pb=info.sigmaErr() * 1e9,
        xsec_pb=card.xsec_pb, branching=card.branching,
        sigma_pb=base_xsec * card.branching,
        filter_efficiency=n_kept / n_gen if n_gen else float("nan"),
        init_s=t1 - t0, events_per_s=n_gen / (t2 - t1) if t2 > t1 else float("nan"),
    )


def measure_samples(gen: GenerationConfig, names: Iterable[str] = (), *, n_events: int = 2000,
                    seed: int = 1, fast: bool = True) -> list[CrossSectionMeasurement]:
    """:func:`measure` every sample in ``names`` (default: all of ``gen.samples``).

    Args:
        gen: the ``generation`` section (samples and ``sqrt_s_gev``).
        names: sample keys; empty: every sample.
        n_events: events per sample.
        seed: Pythia's seed.
        fast: MPI and hadronisation off.

    Returns:
        One measurement per sample, in the order of ``names``.

    Raises:
        ConfigError: a name is not in ``generation.samples``.
    """
    names = list(names) or list(gen.samples)
    unknown = [n for n in names if n not in gen.samples]
    if unknown:
        raise ConfigError(f"generation.samples has no sample {unknown[0]!r} "
                          f"(have: {', '.join(sorted(gen.samples))})")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for nm in names:
            rows.append(measure(gen.samples[nm], name=nm, n_events=n_events, workdir=Path(tmp) / nm,
                                sqrt_s_gev=gen.sqrt_s_gev, seed=seed, fast=fast))
            log.info("%s: sigma(kept) = %.4g pb", nm, rows[-1].sigma_pb)
    return rows


def cross_section_table(rows: Iterable[CrossSectionMeasurement]) -> str:
    """A fixed-width text table of measurements (cross-sections in pb)."""
    lines = [f"{'sample':14s} {'process':13s} {'events':>6s} {'kept':>6s} {'sigmaGen [pb]':>22s} "
             f"{'xsec [pb]':>9s} {'branching':>10s} {'sigma(kept) [pb]':>17s} {'ev/s':>6s}"]
    for r in rows:
        xs = "-" if r.xsec_pb is None else f"{r.xsec_pb:.4g}"
        lines.append(f"{r.sample:14s} {r.process:13s} {r.events:6d} {r.kept:6d} "
                     f"{r.sigma_gen_pb:11.4g} +- {r.sigma_gen_err_pb:8.2g} {xs:>9s} "
                     f"{r.branching:10.4g} {r.sigma_pb:17.4g} {r.events_per_s:6.0f}")
    return "\n".join(lines)
