"""The ``selection`` section: object mapping per input format and the HH -> yybb selection.

Frozen typed views of the validated section (:mod:`analysis.core.config.node`); the
schema in ``schema/`` holds the defaults and limits, and ``tests/analysis/core/test_config_types.py``
keeps these classes in step with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from analysis.core.config.node import ConfigNode

__all__ = [
    "AtlasBTagConfig",
    "ObjectsPhyslite",
    "PhysliteJet",
    "PhysliteObject",
    "Binning",
    "BtagScaleFactors",
    "CategoriesLoose",
    "CategoriesTight",
    "CmsBTagConfig",
    "CmsBtagEfficienciesEntry",
    "FlavourScaleFactor",
    "HeplineElectron",
    "HeplineJet",
    "HeplineMuon",
    "HeplinePhoton",
    "HhYybbBtag",
    "HhYybbCategories",
    "HhYybbHistograms",
    "HhYybbJets",
    "HhYybbLeptons",
    "HhYybbPhotons",
    "HhYybbResonant",
    "HhYybbSystematics",
    "JetBtag",
    "LeptonsElectron",
    "LeptonsMuon",
    "NanoaodElectron",
    "NanoaodJet",
    "NanoaodMuon",
    "NanoaodEra",
    "NanoaodEraBtag",
    "NanoaodEras",
    "NanoaodPhoton",
    "ObjectsHepline",
    "ObjectsNanoaod",
    "Requirement",
    "SelectionConfig",
    "SelectionHhYybb",
    "SelectionObjects",
    "SystematicsPhotonEnergyResolution",
]


@dataclass(frozen=True, kw_only=True)
class Requirement(ConfigNode):
    """One object requirement: {field} = the field is true / non-zero; {field, min} = field
    >= min; {field, equals}; {field, bits} = every bit of bits set in the (integer) field;
    {field, max, relative} = field (/ pT if relative) < max.
    """

    field: str
    min: float | None = None
    max: float | None = None
    equals: float | None = None
    bits: int | None = None
    relative: bool


@dataclass(frozen=True, kw_only=True)
class HeplinePhoton(ConfigNode):
    """The ``selection.objects.hepline.photon`` section."""

    collection: str
    id: Requirement | None
    #: FixedCutLoose-like, isoCalo/E_T < 0.065 and isoTrack/E_T < 0.05
    isolation: tuple[Requirement, ...]
    require: tuple[Requirement, ...]


@dataclass(frozen=True, kw_only=True)
class JetBtag(ConfigNode):
    """hepline b-tagging: the cut, the branch (Jet_btag_<tagger>) and the efficiencies come
    only from the taggers stage's working-point file.
    """

    source: Literal['working_point_file']


@dataclass(frozen=True, kw_only=True)
class HeplineJet(ConfigNode):
    """The ``selection.objects.hepline.jet`` section."""

    collection: str
    flavour: str | None
    id: Requirement | None
    #: hepline b-tagging: the cut, the branch (Jet_btag_<tagger>) and the efficiencies come only
    #: from the taggers stage's working-point file.
    btag: JetBtag


@dataclass(frozen=True, kw_only=True)
class HeplineElectron(ConfigNode):
    """The ``selection.objects.hepline.electron`` section."""

    collection: str
    id: Requirement | None
    isolation: tuple[Requirement, ...]
    require: tuple[Requirement, ...]


@dataclass(frozen=True, kw_only=True)
class HeplineMuon(ConfigNode):
    """The ``selection.objects.hepline.muon`` section."""

    collection: str
    id: Requirement | None
    isolation: tuple[Requirement, ...]
    require: tuple[Requirement, ...]


@dataclass(frozen=True, kw_only=True)
class ObjectsHepline(ConfigNode):
    """The ``selection.objects.hepline`` section."""

    weight: str | None
    event_number: str | None
    photon: HeplinePhoton
    jet: HeplineJet
    electron: HeplineElectron
    muon: HeplineMuon


@dataclass(frozen=True, kw_only=True)
class NanoaodPhoton(ConfigNode):
    """The ``selection.objects.nanoaod.photon`` section."""

    collection: str
    #: the photon ID in every era (null: the era's, eras.<era>.photon_id; the tight cut-based ID,
    #: isolation included)
    id: Requirement | None
    isolation: tuple[Requirement, ...]
    require: tuple[Requirement, ...]


@dataclass(frozen=True, kw_only=True)
class CmsBtagEfficienciesEntry(ConfigNode):
    """The ``cms_btag.efficiencies.*`` section."""

    b: float
    c: float
    light: float


@dataclass(frozen=True, kw_only=True)
class CmsBTagConfig(ConfigNode):
    """b-tagging from config (CMS NanoAOD): discriminant branch, working-point cuts and the
    per-flavour tagging efficiencies used by the scale-factor event weights.
    """

    source: Literal['config']
    #: the discriminant branch without Jet_ (null: the era's, eras.<era>.btag.variable)
    variable: str | None
    #: cut per working point (null: the era's, eras.<era>.btag.working_points; set both variable
    #: and working_points to use other ones in every era)
    working_points: Mapping[str, float] | None
    two_tag_wp: str
    one_tag_wp: str
    #: {wp: {b, c, light}} approximate MC tagging efficiencies (for SF weights)
    efficiencies: Mapping[str, CmsBtagEfficienciesEntry]


@dataclass(frozen=True, kw_only=True)
class NanoaodJet(ConfigNode):
    """The ``selection.objects.nanoaod.jet`` section."""

    collection: str
    flavour: str | None
    id: Requirement | None
    btag: CmsBTagConfig


@dataclass(frozen=True, kw_only=True)
class NanoaodElectron(ConfigNode):
    """The ``selection.objects.nanoaod.electron`` section."""

    collection: str
    id: Requirement | None
    isolation: tuple[Requirement, ...]
    require: tuple[Requirement, ...]


@dataclass(frozen=True, kw_only=True)
class NanoaodMuon(ConfigNode):
    """The ``selection.objects.nanoaod.muon`` section."""

    collection: str
    id: Requirement | None
    isolation: tuple[Requirement, ...]
    require: tuple[Requirement, ...]


@dataclass(frozen=True, kw_only=True)
class NanoaodEraBtag(ConfigNode):
    """The ``nanoaod_era.btag`` section."""

    variable: str
    working_points: Mapping[str, float] | None


@dataclass(frozen=True, kw_only=True)
class NanoaodEra(ConfigNode):
    """What one NanoAOD era spells its own way: the photon ID (cut-based tight) and the
    b-tagging discriminant with BTV's working points of one year of the era (null: none known
    here; set them for the year you analyse). Replace an era's entry whole.
    """

    photon_id: Requirement
    btag: NanoaodEraBtag


@dataclass(frozen=True, kw_only=True)
class NanoaodEras(ConfigNode):
    """Per era, the photon ID and the b-tagging. DeepJet (btagDeepFlavB) working points from
    BTV's btagging.json (cms-nanoAOD/jsonpog-integration): v5 2018 legacy re-reco, v9 2018 Ultra
    Legacy, v12 2022 (Summer22); other years need their own. v15 stores no Jet_jetId: the jet ID
    is computed from its inputs (selections.objects.run3_jet_id)
    """

    v5: NanoaodEra
    v9: NanoaodEra
    v12: NanoaodEra
    v15: NanoaodEra


@dataclass(frozen=True, kw_only=True)
class ObjectsNanoaod(ConfigNode):
    """CMS NanoAOD: one mapping for every era, with what the eras spell their own way in eras;
    collision data (no genWeight) is read without weight and truth flavour
    """

    #: the NanoAOD era (analysis.io.formats.NANOAOD_ERAS, docs/ingestion.md). auto: detected from
    #: the file's branches; a file no era signature matches is an error that asks for this key
    version: Literal['auto', 'v5', 'v9', 'v12', 'v15']
    eras: NanoaodEras
    weight: str | None
    event_number: str | None
    photon: NanoaodPhoton
    jet: NanoaodJet
    electron: NanoaodElectron
    muon: NanoaodMuon


@dataclass(frozen=True, kw_only=True)
class AtlasBTagConfig(ConfigNode):
    """b-tagging from config (ATLAS PHYSLITE): the tagger's b, c and light probabilities in the
    b-tagging container (reached through the jets' btaggingLink), combined into the
    discriminant D = ln(p_b / (f_c p_c + (1 - f_c) p_u)); the working-point cuts on D and the
    per-flavour tagging efficiencies used by the scale-factor event weights.
    """

    source: Literal['config']
    #: the b-tagging container of the jets (coffea PHYSLITESchema name)
    container: str
    #: the tagger whose <tagger>_pb, _pc, _pu the container stores (DL1dv01, GN2v00, ...)
    tagger: str
    #: f_c of the discriminant
    fraction_c: float
    #: cut on D per working point (b-jet efficiency in percent)
    working_points: Mapping[str, float]
    two_tag_wp: str
    one_tag_wp: str
    #: {wp: {b, c, light}} approximate MC tagging efficiencies (for SF weights)
    efficiencies: Mapping[str, CmsBtagEfficienciesEntry]


@dataclass(frozen=True, kw_only=True)
class PhysliteJet(ConfigNode):
    """The ``selection.objects.physlite.jet`` section."""

    collection: str
    flavour: str | None
    id: Requirement | None
    btag: AtlasBTagConfig


@dataclass(frozen=True, kw_only=True)
class PhysliteObject(ConfigNode):
    """The ``selection.objects.physlite.{photon,electron,muon}`` sections."""

    collection: str
    id: Requirement | None
    isolation: tuple[Requirement, ...]
    require: tuple[Requirement, ...]


@dataclass(frozen=True, kw_only=True)
class ObjectsPhyslite(ConfigNode):
    """ATLAS DAOD_PHYSLITE through coffea's PHYSLITESchema. Energies are MeV in the file and
    GeV in the selection: pt, the mass and the fields of relative requirements (isolation
    energies) are converted as they are read. Collision data (no EventInfo mcEventWeights) is
    read without weight and truth flavour.
    """

    #: ``<record>.<field>``; a list per event (mcEventWeights): its first entry, the nominal weight
    weight: str | None
    event_number: str | None
    photon: PhysliteObject
    jet: PhysliteJet
    electron: PhysliteObject
    muon: PhysliteObject


@dataclass(frozen=True, kw_only=True)
class SelectionObjects(ConfigNode):
    """How each input format spells the objects the selection uses (the "object mapping").
    """

    hepline: ObjectsHepline
    nanoaod: ObjectsNanoaod
    physlite: ObjectsPhyslite


@dataclass(frozen=True, kw_only=True)
class HhYybbPhotons(ConfigNode):
    """The ``selection.hh_yybb.photons`` section."""

    pt_min: float
    eta_max: float
    crack: tuple[float, ...] | None
    leading_pt_over_myy: float
    subleading_pt_over_myy: float
    myy_window: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class LeptonsElectron(ConfigNode):
    """The ``selection.hh_yybb.leptons.electron`` section."""

    pt_min: float
    eta_max: float
    crack: tuple[float, ...] | None


@dataclass(frozen=True, kw_only=True)
class LeptonsMuon(ConfigNode):
    """The ``selection.hh_yybb.leptons.muon`` section."""

    pt_min: float
    eta_max: float


@dataclass(frozen=True, kw_only=True)
class HhYybbLeptons(ConfigNode):
    """The ``selection.hh_yybb.leptons`` section."""

    electron: LeptonsElectron
    muon: LeptonsMuon
    #: leptons within this ΔR of a selected photon are removed before the veto
    photon_overlap_dr: float | None


@dataclass(frozen=True, kw_only=True)
class HhYybbJets(ConfigNode):
    """The ``selection.hh_yybb.jets`` section."""

    pt_min: float
    eta_max: float
    photon_overlap_dr: float | None
    min_jets: int
    #: at most this many central jets ("fewer than 6", against ttH)
    max_central_jets: int


@dataclass(frozen=True, kw_only=True)
class FlavourScaleFactor(ConfigNode):
    """The ``flavour_sf`` section."""

    nominal: float
    uncertainty: float


@dataclass(frozen=True, kw_only=True)
class BtagScaleFactors(ConfigNode):
    """data/MC scale factors per truth flavour (tau jets use c); up/down = nominal ±
    uncertainty
    """

    b: FlavourScaleFactor
    c: FlavourScaleFactor
    light: FlavourScaleFactor


@dataclass(frozen=True, kw_only=True)
class HhYybbBtag(ConfigNode):
    """The ``selection.hh_yybb.btag`` section."""

    #: a tagger of the working-point file (ip3d, mv2, rnnip, dl1)
    tagger: str
    #: 2-tag: two jets at this WP
    two_tag_wp: str
    #: 1-tag: (not 2-tag) one jet at this WP
    one_tag_wp: str
    #: the taggers stage's working_points.json (the CLI's --working-points overrides)
    working_points_file: str | None
    #: Use the working-point file's per-pT-bin efficiencies (efficiency_vs_pt, per WP and flavour)
    #: for truth tagging and the b-tag SF weights; false, or a file without them: the inclusive WP
    #: efficiencies. Bins with fewer than efficiency_map_min_tagged tagged test jets (efficiency ×
    #: jets) take the inclusive value; jets outside the edges take the nearest bin.
    efficiency_maps: bool
    #: Tagged test jets a pT bin of an efficiency map needs to be used (10: a statistical error of
    #: about 30 %); needs the map's per-bin jet counts
    efficiency_map_min_tagged: float
    #: Samples (datasets) b-tagged by truth tagging instead of a cut: every event enters the 1-tag
    #: and 2-tag categories once per possible choice of tagged jets, weighted by its probability
    #: from the per-flavour WP efficiencies (× SFs). For backgrounds with few MC events after the
    #: cut (the γγ continuum); needs truth flavour.
    truth_tag_samples: tuple[str, ...]
    #: data/MC scale factors per truth flavour (tau jets use c); up/down = nominal ± uncertainty
    scale_factors: BtagScaleFactors


@dataclass(frozen=True, kw_only=True)
class CategoriesLoose(ConfigNode):
    """The ``selection.hh_yybb.categories.loose`` section."""

    leading_jet_pt_min: float
    subleading_jet_pt_min: float
    mbb_window: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class CategoriesTight(ConfigNode):
    """The ``selection.hh_yybb.categories.tight`` section."""

    leading_jet_pt_min: float
    subleading_jet_pt_min: float
    mbb_window: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class HhYybbCategories(ConfigNode):
    """The ``selection.hh_yybb.categories`` section."""

    loose: CategoriesLoose
    tight: CategoriesTight
    #: m* = m_bbyy - m_bb - m_yy + offset
    mstar_offset: float
    #: low/high m* boundary
    mstar_split: float


@dataclass(frozen=True, kw_only=True)
class HhYybbResonant(ConfigNode):
    """The ``selection.hh_yybb.resonant`` section."""

    higgs_mass: float
    myy_half_window: float


@dataclass(frozen=True, kw_only=True)
class SystematicsPhotonEnergyResolution(ConfigNode):
    """up = extra Gaussian smearing that widens sigma_E/E (stochastic/sqrt(E) (+) constant)
    by relative_uncertainty; down = the up shift mirrored about the nominal histogram
    """

    stochastic: float
    constant: float
    relative_uncertainty: float
    seed: int


@dataclass(frozen=True, kw_only=True)
class HhYybbSystematics(ConfigNode):
    """The ``selection.hh_yybb.systematics`` section."""

    enabled: bool
    #: relative
    photon_energy_scale: float
    #: up = extra Gaussian smearing that widens sigma_E/E (stochastic/sqrt(E) (+) constant) by
    #: relative_uncertainty; down = the up shift mirrored about the nominal histogram
    photon_energy_resolution: SystematicsPhotonEnergyResolution
    #: relative
    jet_energy_scale: float


@dataclass(frozen=True, kw_only=True)
class Binning(ConfigNode):
    """Either regular {bins, range} or variable {edges}.
    """

    bins: int | None = None
    range: tuple[float, ...] | None = None
    edges: tuple[float, ...] | None = None
    label: str | None = None


@dataclass(frozen=True, kw_only=True)
class HhYybbHistograms(ConfigNode):
    """The ``selection.hh_yybb.histograms`` section."""

    lumi_fb: float
    #: overrides of analysis.stats.histograms.BINNING (m_yy, m_bb, m_star)
    binning: Mapping[str, Binning]


@dataclass(frozen=True, kw_only=True)
class SelectionHhYybb(ConfigNode):
    """HH -> yybb event selection (ATLAS 2018/2021-style), physics-reference §4.
    """

    #: preload: coffea's NanoEvents factory reads exactly the branches the selection needs for each
    #: chunk in one bulk uproot arrays() call, over a form restricted to them (fast); nanoevents:
    #: column by column through coffea's lazy NanoEvents, full form (same results, slower)
    read_mode: Literal['preload', 'nanoevents']
    #: how the selection runs (same histograms and cutflows; docs/hh_yybb.md, "Engines").
    #: reference: the readable coffea processor (selections/hh_yybb/reference.py), the definition
    #: of the selection. numba / numpy: the compiled engine (selections/hh_yybb/compiled.py;
    #: numba: one compiled loop per pass, ≈ 1 s of JIT start once per process; numpy: its
    #: vectorised twin), several times faster, and refused once the reference changes until it is
    #: verified again. auto: the compiled engine when usable (numba when the dataset holds at
    #: least numba_min_events events or the kernel is already loaded, else numpy), else the
    #: reference with a warning
    engine: Literal['reference', 'auto', 'numba', 'numpy']
    #: collision data: the certified-luminosity JSON (CMS golden-JSON format) whose luminosity
    #: blocks are kept (hepline select --lumi-mask overrides it); ignored for simulation
    lumi_mask: str | None
    #: dataset size from which engine auto uses numba (docs/benchmarks.md, break-even)
    numba_min_events: int
    #: entries per coffea chunk for this selection (null: runner.chunksize). Every chunk reads the
    #: Events tree's metadata again (≈ 35 ms of CPU for a hepline tree of ≈ 90 branches), so larger
    #: chunks run faster; the selection reads 26 branches, ≈ 0.6 kB of memory per event of the
    #: chunk (docs/hh_yybb.md, "Selection throughput")
    chunksize: int | None
    #: generation samples the workflow runs the selection on (others in the config are ignored)
    samples: tuple[str, ...]
    photons: HhYybbPhotons
    leptons: HhYybbLeptons
    jets: HhYybbJets
    btag: HhYybbBtag
    categories: HhYybbCategories
    resonant: HhYybbResonant
    systematics: HhYybbSystematics
    histograms: HhYybbHistograms


@dataclass(frozen=True, kw_only=True)
class SelectionConfig(ConfigNode):
    """Object mapping per input format, HH -> yybb cuts, systematics and histogramming.
    """

    SECTION: ClassVar[str] = "selection"

    #: How each input format spells the objects the selection uses (the "object mapping").
    objects: SelectionObjects
    #: HH -> yybb event selection (ATLAS 2018/2021-style), physics-reference §4.
    hh_yybb: SelectionHhYybb
