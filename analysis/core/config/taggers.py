"""The ``taggers`` and ``tagger_models`` sections: the flavour-tagging dataset, IP2D/IP3D, SV1,
working points and the MV2/RNNIP/DL1 hyper-parameters.

Frozen typed views of the validated section (:mod:`analysis.core.config.node`); the
schema in ``schema/`` holds the defaults and limits, and ``tests/analysis/core/test_config_types.py``
keeps these classes in step with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from analysis.core.config.node import ConfigNode

__all__ = [
    "TaggerModelsConfig",
    "TaggerModelsDl1",
    "TaggerModelsMv2",
    "TaggerModelsRnnip",
    "TaggersConfig",
    "TaggersDecoration",
    "TaggersDiscriminantFc",
    "TaggersEvaluation",
    "TaggersFlavours",
    "TaggersIp2d",
    "TaggersIp3d",
    "TaggersJets",
    "TaggersReweighting",
    "TaggersSplit",
    "TaggersSv1",
    "TaggersTracks",
    "TemplateSmoothing",
]


@dataclass(frozen=True, kw_only=True)
class TaggerModelsMv2(ConfigNode):
    """XGBoost BDT, b against light + c (tau jets are not used).
    """

    #: maximum number of boosting rounds
    n_estimators: int
    max_depth: int
    learning_rate: float
    #: Fraction of c jets in the (weighted) background of the training; c jets are reweighted to it
    #: (physics reference: 7-10%).
    c_fraction: float
    subsample: float
    colsample_bytree: float
    min_child_weight: float
    #: Stop when the validation log-loss has not improved for this many rounds (0 = off).
    early_stopping_rounds: int
    seed: int


@dataclass(frozen=True, kw_only=True)
class TaggerModelsRnnip(ConfigNode):
    """Recurrent IP tagger (ATL-PHYS-PUB-2017-003) on the track sequence.
    """

    lstm_units: int
    #: track-grade embedding size
    embedding_dim: int
    dropout: float
    batch_size: int
    learning_rate: float
    max_epochs: int
    #: epochs without validation improvement before stopping
    patience: int
    #: smallest validation-loss decrease counted as an improvement
    min_delta: float
    #: number of track grades; the padding index is n_grades
    n_grades: int
    #: weight classes to equal (weighted) totals in the loss
    class_weights: bool
    seed: int


@dataclass(frozen=True, kw_only=True)
class TaggerModelsDl1(ConfigNode):
    """Dense network on the high-level tagger outputs (+ RNNIP outputs). The default layers
    are a scaled-down version of the paper's [256, 128, 60, 48, 36, 24, 12, 6].
    """

    layers: tuple[int, ...]
    dropout: float
    batch_size: int
    learning_rate: float
    max_epochs: int
    patience: int
    min_delta: float
    class_weights: bool
    seed: int


@dataclass(frozen=True, kw_only=True)
class TaggerModelsConfig(ConfigNode):
    """Hyper-parameters of the MV2 BDT, the RNNIP LSTM and the DL1 dense network.
    """

    SECTION: ClassVar[str] = "tagger_models"

    #: XGBoost BDT, b against light + c (tau jets are not used).
    mv2: TaggerModelsMv2
    #: Recurrent IP tagger (ATL-PHYS-PUB-2017-003) on the track sequence.
    rnnip: TaggerModelsRnnip
    #: Dense network on the high-level tagger outputs (+ RNNIP outputs). The default layers are a
    #: scaled-down version of the paper's [256, 128, 60, 48, 36, 24, 12, 6].
    dl1: TaggerModelsDl1


@dataclass(frozen=True, kw_only=True)
class TaggersJets(ConfigNode):
    """The ``taggers.jets`` section."""

    pt_min_gev: float
    abs_eta_max: float


@dataclass(frozen=True, kw_only=True)
class TaggersTracks(ConfigNode):
    """The ``taggers.tracks`` section."""

    pt_min_gev: float
    abs_d0_max_mm: float
    abs_z0sintheta_max_mm: float
    #: track grades that pass the selection
    grades: tuple[int, ...]
    #: number of grade values (grades are 0 .. n_grades-1)
    n_grades: int
    #: tracks kept per jet, the largest |sd0| first
    n_max: int


@dataclass(frozen=True, kw_only=True)
class TaggersSplit(ConfigNode):
    """jets go to a split by event % modulus; the residue lists must be disjoint
    """

    modulus: int
    train: tuple[int, ...]
    validation: tuple[int, ...]
    test: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class TaggersFlavours(ConfigNode):
    """The ``taggers.flavours`` section."""

    #: HadronConeExclTruthLabelID values that must be in the training set
    required: tuple[Literal[0, 4, 5, 15], ...]


@dataclass(frozen=True, kw_only=True)
class TaggersReweighting(ConfigNode):
    """The ``taggers.reweighting`` section."""

    method: Literal['reweight', 'resample', 'none']
    target_flavour: Literal[0, 4, 5, 15]
    #: flavours brought to the target flavour's (pT, |eta|) spectrum
    flavours: tuple[Literal[0, 4, 5, 15], ...]
    pt_edges_gev: tuple[float, ...]
    abs_eta_edges: tuple[float, ...]
    #: splits that get the weights (the test split keeps the natural spectra)
    apply_to: tuple[Literal['train', 'validation', 'test'], ...]


@dataclass(frozen=True, kw_only=True)
class TemplateSmoothing(ConfigNode):
    """Template smoothing: a Gaussian kernel of kernel_sigma_bins (in bin-index units, 0 =
    off) applied along every axis, then a floor of floor_fraction times the mean bin content
    added to every bin (no empty bin), then normalisation to 1 per flavour and grade.
    """

    kernel_sigma_bins: float
    floor_fraction: float


@dataclass(frozen=True, kw_only=True)
class TaggersIp2d(ConfigNode):
    """The ``taggers.ip2d`` section."""

    sd0_edges: tuple[float, ...]
    smoothing: TemplateSmoothing


@dataclass(frozen=True, kw_only=True)
class TaggersIp3d(ConfigNode):
    """The ``taggers.ip3d`` section."""

    sd0_edges: tuple[float, ...]
    sz0_edges: tuple[float, ...]
    smoothing: TemplateSmoothing


@dataclass(frozen=True, kw_only=True)
class TaggersSv1(ConfigNode):
    """The ``taggers.sv1`` section."""

    #: tracks enter vertexing with |d0|/sigma(d0) above this
    track_min_abs_sd0: float
    track_min_pt_gev: float
    #: two-track vertex fit chi2 (1 degree of freedom)
    two_track_chi2_max: float
    #: 3-D distance to the PV over its error
    two_track_min_significance: float
    max_lxy_mm: float
    #: flight direction must point into the jet hemisphere
    require_forward: bool
    k0s_mass_gev: float
    k0s_window_gev: float
    lambda_mass_gev: float
    lambda_window_gev: float
    #: opposite-charge pairs below this m_ee are vetoed
    conversion_mass_max_gev: float
    material_radii_mm: tuple[float, ...]
    material_window_mm: float
    #: tracks of the merged vertex with a larger chi2 contribution are removed, worst first
    merged_track_chi2_max: float
    #: helix re-linearisations of each vertex fit
    fit_iterations: int


@dataclass(frozen=True, kw_only=True)
class TaggersDiscriminantFc(ConfigNode):
    """c-fraction f_c per tagger in D = ln(p_b / (f_c p_c + (1 - f_c) p_u)). MV2 (a single
    BDT score) has none.
    """

    ip2d: float
    ip3d: float
    rnnip: float
    dl1: float


@dataclass(frozen=True, kw_only=True)
class TaggersEvaluation(ConfigNode):
    """taggers.evaluate (test split only)
    """

    #: denominator of the ROC ratio panels and of the rejection ratios
    reference_tagger: Literal['ip2d', 'ip3d', 'mv2', 'rnnip', 'dl1']
    #: N in the binomial errors sigma_eps = sqrt(eps (1 - eps) / N): the Kish effective count (sum
    #: w)^2 / sum w^2 of the flavour's jets, or their plain number (equal for unit weights)
    error_count: Literal['kish', 'unweighted']
    pt_edges_gev: tuple[float, ...]
    abs_eta_edges: tuple[float, ...]
    #: bins of the discriminant histograms (range: 0.1 to 99.9 % quantiles of all test jets, plus
    #: flow bins)
    discriminant_bins: int
    #: [first, last, step] of the b-efficiency grid on which ROC curves are stored and plotted
    roc_b_efficiency: tuple[float, ...]
    #: Poisson-bootstrap replicas of the test split for the error of rejection ratios (correlated
    #: taggers, cut re-derived in each replica); 0 = off
    bootstrap: int
    #: batch of the torch vs ONNX Runtime inference timing
    benchmark_batch_size: int


@dataclass(frozen=True, kw_only=True)
class TaggersDecoration(ConfigNode):
    """taggers.decorate
    """

    #: value of every Jet_btag_* and Jet_rnnip_* branch for jets outside the tagging acceptance
    #: (taggers.jets); below every discriminant (|D| <= 23, MV2 logit <= 16.2)
    sentinel: float
    #: events read, decorated and written at once
    chunk_events: int
    rnnip_backend: Literal['torch', 'onnx']


@dataclass(frozen=True, kw_only=True)
class TaggersConfig(ConfigNode):
    """Jet and track selection, dataset split and reweighting, IP2D/IP3D, SV1, working
    points.
    """

    SECTION: ClassVar[str] = "taggers"

    #: name of the generation sample the taggers are trained and calibrated on
    sample: str
    jets: TaggersJets
    tracks: TaggersTracks
    #: jets go to a split by event % modulus; the residue lists must be disjoint
    split: TaggersSplit
    flavours: TaggersFlavours
    reweighting: TaggersReweighting
    ip2d: TaggersIp2d
    ip3d: TaggersIp3d
    sv1: TaggersSv1
    #: fixed-cut b-jet efficiencies
    working_points: tuple[float, ...]
    #: c-fraction f_c per tagger in D = ln(p_b / (f_c p_c + (1 - f_c) p_u)). MV2 (a single BDT
    #: score) has none.
    discriminant_fc: TaggersDiscriminantFc
    #: MV2 inputs (jet columns written by taggers.prepare: pt, abs_eta, the IP2D/IP3D log-ratios
    #: and the SV1 features). DL1 reads these plus rnnip_features.
    high_level_features: tuple[str, ...]
    #: RNNIP outputs appended to high_level_features as DL1 inputs
    rnnip_features: tuple[Literal['rnnip_pb', 'rnnip_pc', 'rnnip_pu', 'rnnip_ptau'], ...]
    #: torch intra-op threads (and XGBoost / ONNX Runtime threads) of the tagger stages; one thread
    #: per process is fastest for these small networks on a CPU (docs/taggers-models.md)
    threads: int
    #: taggers.evaluate (test split only)
    evaluation: TaggersEvaluation
    #: taggers.decorate
    decoration: TaggersDecoration
    #: samples whose ntuples get decorated (taggers_decorate rule); null = every sample of
    #: generation.samples except the RPV-gluino and QCD-multijet ones
    decorate_samples: tuple[str, ...] | None
