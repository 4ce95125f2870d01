"""The ``calo`` and ``rpv`` sections: the whole-detector CNN and the cut-based RPV multijet search.

Frozen typed views of the validated section (:mod:`analysis.core.config.node`); the
schema in ``schema/`` holds the defaults and limits, and ``tests/analysis/core/test_config_types.py``
keeps these classes in step with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from analysis.core.config.node import ConfigNode

__all__ = [
    "CaloAugment",
    "CaloClaim",
    "CaloConfig",
    "CaloEvaluation",
    "CaloImage",
    "CaloModel",
    "CaloNormalisation",
    "CaloPointCloud",
    "CaloSplit",
    "CaloTraining",
    "RpvConfig",
    "RpvCuts",
    "RpvLargeRJets",
    "RpvPreselection",
]


@dataclass(frozen=True, kw_only=True)
class CaloImage(ConfigNode):
    """eta x phi images with channels ECAL energy, HCAL energy (GeV) and track multiplicity.
    phi always spans [-pi, pi). The default eta range, 64 bins over [-3.2, 3.2), puts
    exactly one 0.1 x 2pi/64 calorimeter tower in each pixel.
    """

    n_eta: int
    n_phi: int
    eta_min: float
    eta_max: float
    #: what to do with an event that has no tower inside the image
    empty_events: Literal['raise', 'skip']
    #: events read from ROOT per step while building images
    read_chunk_events: int
    compression: Literal['gzip', 'lzf', 'none']
    compression_level: int
    #: HDF5 chunk length (entries) of the pixel index/value datasets
    pixel_chunk: int


@dataclass(frozen=True, kw_only=True)
class CaloSplit(ConfigNode):
    """events go to a split by event % modulus; the residue lists must be disjoint
    """

    modulus: int
    train: tuple[int, ...]
    validation: tuple[int, ...]
    test: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class CaloNormalisation(ConfigNode):
    """per-channel, fitted on the training split only and stored with the model. Zero stays
    zero (sparsity is kept): v -> f(v) / s_c with f = identity (linear) or log(1 + v)
    (log1p, v in GeV or tracks), s_c the RMS of f(v) over all training pixels, empty ones
    included.
    """

    transform: Literal['linear', 'log1p']


@dataclass(frozen=True, kw_only=True)
class CaloModel(ConfigNode):
    """n_conv x [conv 3x3, ReLU, max-pool 2, dropout] -> dense -> ReLU -> dropout -> 2
    logits
    """

    filters: int
    n_conv: int
    dense: int
    dropout: float
    #: pad the phi axis periodically in the convolutions (the paper pads with zeros)
    circular_phi: bool
    #: the network sees the images with factor x factor pixels summed (64 x 64 files give a 32 x
    #: 32 network at 2); the image files keep their grid
    input_rebin: Literal[1, 2, 4]


@dataclass(frozen=True, kw_only=True)
class CaloPointCloud(ConfigNode):
    """the point-cloud comparator (selections.rpv.cnn.pointcloud, "low-level inputs"): a
    DeepSets / particle-flow network over the non-zero pixels of the image files (one point
    per tower and per track-count pixel), per-point MLP, sum and mean pooling, MLP, 2 logits.
    Trained like the CNN (calo.training: seed, threads, min_delta, augmentation, storage cap)
    with its own rate, batch and epochs
    """

    phi_layers: tuple[int, ...]
    f_layers: tuple[int, ...]
    dropout: float
    learning_rate: float
    batch_size: int
    max_epochs: int
    patience: int


@dataclass(frozen=True, kw_only=True)
class CaloClaim(ConfigNode):
    """the cnn_claim workflow target (workflows/rules/cnn_claim.smk, selections.rpv.claim):
    networks trained per seed and evaluated together against the cut-based search
    """

    #: training seeds of every network (the CNN claim needs at least 3)
    seeds: tuple[int, ...]
    networks: tuple[Literal['cnn', 'point_cloud'], ...]
    #: events read per image file for the side-by-side throughput
    bench_events: int
    #: timed training batches per network in the throughput measurement
    bench_batches: int


@dataclass(frozen=True, kw_only=True)
class CaloAugment(ConfigNode):
    """random per-image augmentation of the training split
    """

    phi_roll: bool
    phi_flip: bool
    eta_flip: bool


@dataclass(frozen=True, kw_only=True)
class CaloTraining(ConfigNode):
    """The ``calo.training`` section."""

    #: null: the top-level seed
    seed: int | None
    learning_rate: float
    batch_size: int
    max_epochs: int
    patience: int
    min_delta: float
    #: torch CPU threads (null: torch's default)
    threads: int | None
    #: cap on the events read from each sample's image file (development runs)
    max_events_per_sample: int | None
    #: where the loader keeps the sparse training set: on the training device (auto: when it is
    #: CUDA and the set fits in a quarter of the free memory) or in host memory
    storage: Literal['auto', 'device', 'cpu']
    #: random per-image augmentation of the training split
    augment: CaloAugment


@dataclass(frozen=True, kw_only=True)
class CaloEvaluation(ConfigNode):
    """The ``calo.evaluation`` section."""

    batch_size: int
    #: bootstrap replicas for the TPR ratio error (0: binomial only)
    bootstrap: int
    score_bins: int
    #: events per class shown in the example-image plot
    example_images: int
    #: expected CLs limits on sigma(signal) with analysis.stats.limits (pyhf)
    limits: bool
    #: background efficiencies (besides the cut-based one) at which the networks' TPR is compared
    #: with the cut-based TPR (2.2e-4: the published cut-based working point)
    fpr_targets: tuple[float, ...]
    #: a TPR ratio whose background efficiency rests on fewer effective background events (sum
    #: w)^2 / sum w^2 than this is reported as "insufficient statistics (N)", not as a number
    min_effective_events: float
    #: CNN score bins for the limit are built from the top score down so that each holds at least
    #: this many background MC events, doubling from bin to bin
    limit_min_background_events: int


@dataclass(frozen=True, kw_only=True)
class CaloConfig(ConfigNode):
    """Sparse eta-phi images, the CNN, its training and its evaluation against the cut-based
    search.
    """

    SECTION: ClassVar[str] = "calo"

    #: eta x phi images with channels ECAL energy, HCAL energy (GeV) and track multiplicity. phi
    #: always spans [-pi, pi). The default eta range, 64 bins over [-3.2, 3.2), puts exactly one
    #: 0.1 x 2pi/64 calorimeter tower in each pixel.
    image: CaloImage
    #: events go to a split by event % modulus; the residue lists must be disjoint
    split: CaloSplit
    #: per-channel, fitted on the training split only and stored with the model. Zero stays zero
    #: (sparsity is kept): v -> f(v) / s_c with f = identity (linear) or log(1 + v) (log1p, v in
    #: GeV or tracks), s_c the RMS of f(v) over all training pixels, empty ones included.
    normalisation: CaloNormalisation
    #: n_conv x [conv 3x3, ReLU, max-pool 2, dropout] -> dense -> ReLU -> dropout -> 2 logits
    model: CaloModel
    #: the point-cloud comparator (selections.rpv.cnn.pointcloud, "low-level inputs"): a DeepSets
    #: / particle-flow network over the non-zero pixels of the image files (one point per tower
    #: and per track-count pixel), per-point MLP, sum and mean pooling, MLP, 2 logits. Trained like
    #: the CNN (calo.training: seed, threads, min_delta, augmentation, storage cap) with its own
    #: rate, batch and epochs
    point_cloud: CaloPointCloud
    #: the cnn_claim workflow target (workflows/rules/cnn_claim.smk, selections.rpv.claim):
    #: networks trained per seed and evaluated together against the cut-based search
    claim: CaloClaim
    training: CaloTraining
    evaluation: CaloEvaluation


@dataclass(frozen=True, kw_only=True)
class RpvLargeRJets(ConfigNode):
    """anti-kt jets clustered from the calorimeter towers (massless 4-vectors, E = eEM +
    eHad)
    """

    radius: float
    pt_min_gev: float
    abs_eta_max: float
    #: towers with E = eEM + eHad at or below this are not clustered
    tower_e_min_gev: float
    #: untrimmed by default: the samples have no pile-up, which trimming exists to remove; true is
    #: rejected until a trimmed variant is validated
    trimming: Literal[False]


@dataclass(frozen=True, kw_only=True)
class RpvCuts(ConfigNode):
    """The ``rpv.cuts`` section."""

    presel_n_jets_min: int
    leading_pt_min_gev: float
    sr_n_jets_min: int
    abs_deta12_max: float
    #: sum of the 4 leading jet masses, events with exactly 4 jets
    mj_min_4j_gev: float
    #: sum of the 4 leading jet masses, events with >= 5 jets
    mj_min_5j_gev: float


@dataclass(frozen=True, kw_only=True)
class RpvPreselection(ConfigNode):
    """write-time multijet preselection of the rpv samples (selections.rpv.preselection): only
    events with >= n_jets_min large-R jets (rpv.large_r_jets) and a leading one above
    leading_pt_min_gev are written, and the weighted efficiency is folded into the shard's
    cross-section. It must contain the cut-based signal region (n_jets_min <=
    cuts.presel_n_jets_min, leading_pt_min_gev <= cuts.leading_pt_min_gev; checked)
    """

    #: generate the rpv signal and background samples with `hepline rpv generate` (the
    #: preselection applied) instead of `hepline generate` in the workflow
    enabled: bool
    n_jets_min: int
    leading_pt_min_gev: float


@dataclass(frozen=True, kw_only=True)
class RpvConfig(ConfigNode):
    """RPV gluino vs QCD multijet samples, luminosity and the large-R-jet cut-based
    selection.
    """

    SECTION: ClassVar[str] = "rpv"

    #: generation samples labelled signal (label 1)
    signal_samples: tuple[str, ...]
    #: generation samples labelled background (label 0); QCD slices combine by sigma
    background_samples: tuple[str, ...]
    #: integrated luminosity (fb^-1) for event yields (the ATLAS 2015+2016 search)
    lumi_fb: float
    #: anti-kt jets clustered from the calorimeter towers (massless 4-vectors, E = eEM + eHad)
    large_r_jets: RpvLargeRJets
    cuts: RpvCuts
    #: write-time multijet preselection of the rpv samples (selections.rpv.preselection): only
    #: events with >= n_jets_min large-R jets (rpv.large_r_jets) and a leading one above
    #: leading_pt_min_gev are written, and the weighted efficiency is folded into the shard's
    #: cross-section. It must contain the cut-based signal region (n_jets_min <=
    #: cuts.presel_n_jets_min, leading_pt_min_gev <= cuts.leading_pt_min_gev; checked)
    preselection: RpvPreselection
