"""The ``detector`` section: the parametric ATLAS-like detector (tracking, vertexing,
calorimeter, objects; docs/detector.md).

Frozen typed views of the validated section (:mod:`analysis.core.config.node`); the
schema in ``schema/`` holds the defaults and limits, and ``tests/analysis/core/test_config_types.py``
keeps these classes in step with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from analysis.core.config.node import ConfigNode

__all__ = [
    "BeamSpot",
    "CaloLayer",
    "CalorimeterConfig",
    "DetectorConfig",
    "EmFraction",
    "HadronicInteractions",
    "ImpactParameterResolution",
    "JetReconstruction",
    "LeptonReconstruction",
    "MaterialConfig",
    "PhotonEnergyResolution",
    "PhotonPositionResolution",
    "PhotonReconstruction",
    "PhotonShowerShapes",
    "PrimaryVertexResolution",
    "PtResolution",
    "ScatteringTail",
    "TrackingConfig",
    "VertexingConfig",
]


@dataclass(frozen=True, kw_only=True)
class BeamSpot(ConfigNode):
    """The ``detector.beam_spot_mm`` section: the luminous region (mm)."""

    sigma_x: float
    sigma_y: float
    sigma_z: float


@dataclass(frozen=True, kw_only=True)
class PrimaryVertexResolution(ConfigNode):
    """The ``detector.pv_resolution_mm`` section (mm)."""

    xy: float
    z: float


@dataclass(frozen=True, kw_only=True)
class MaterialConfig(ConfigNode):
    """The ``detector.material`` section: radiation lengths versus |η| (linear interpolation)."""

    eta: tuple[float, ...]
    inner_detector_x0: tuple[float, ...]
    calorimeter_front_x0: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class ImpactParameterResolution(ConfigNode):
    """The ``resolution`` section."""

    a_mm: float
    b_mm_gev: float


@dataclass(frozen=True, kw_only=True)
class PtResolution(ConfigNode):
    """The ``detector.tracking.pt_resolution`` section."""

    constant: float
    linear_per_gev: float


@dataclass(frozen=True, kw_only=True)
class ScatteringTail(ConfigNode):
    """The ``detector.tracking.scattering_tail`` section: single hard scatters (power-law tail)."""

    fraction: float
    min_sigma: float
    power: float
    max_sigma: float


@dataclass(frozen=True, kw_only=True)
class HadronicInteractions(ConfigNode):
    """The ``detector.tracking.hadronic_interactions`` section: nuclear interactions in the material."""

    radii_mm: tuple[float, ...]
    #: Nuclear interaction lengths of each layer at eta = 0 (scaled by 1/sin theta).
    interaction_lengths: tuple[float, ...]
    #: Mean number of charged secondaries per interaction (1 + Poisson).
    charged_multiplicity: float
    #: Range (uniform) of the parent's momentum shared by the charged secondaries.
    momentum_fraction: tuple[float, ...]
    #: Mean transverse momentum of a secondary relative to the parent (exponential).
    pt_rel_gev: float


@dataclass(frozen=True, kw_only=True)
class TrackingConfig(ConfigNode):
    """The ``detector.tracking`` section."""

    pt_min_gev: float
    eta_max: float
    efficiency: float
    #: eta-phi cell size that defines the local track density
    density_cell: float
    #: efficiency lost per extra particle in the cell
    density_efficiency_loss: float
    shared_probability_per_neighbour: float
    full_efficiency_radius_mm: float
    #: no track beyond: fewer than 7 silicon hits are left
    max_production_radius_mm: float
    innermost_layer_radius_mm: float
    next_layer_radius_mm: float
    missing_innermost_probability: float
    d0_resolution: ImpactParameterResolution
    z0sintheta_resolution: ImpactParameterResolution
    grade_resolution_scale: tuple[float, ...]
    #: Tracks with a badly fitted hit pattern, smeared tail_scale times wider.
    tail_fraction: float
    tail_scale: float
    scattering_tail: ScatteringTail
    hadronic_interactions: HadronicInteractions
    pt_resolution: PtResolution
    #: fake tracks per reconstructed track
    fake_rate: float
    fake_d0_sigma_mm: float


@dataclass(frozen=True, kw_only=True)
class VertexingConfig(ConfigNode):
    """The ``detector.vertexing`` section: vertex finding, primary-vertex choice, track association."""

    min_tracks: int
    #: Tracks further than this from the beam line in d0 stay out of the vertex fits.
    fit_d0_max_mm: float
    #: Fitted vertices closer than this in z are merged (and their tracks pooled).
    merge_distance_mm: float
    #: Track-to-vertex association window in |dz0 sin theta| (mm).
    association_z0sintheta_mm: float


@dataclass(frozen=True, kw_only=True)
class CaloLayer(ConfigNode):
    """The ``calo_layer`` section."""

    #: a in sigma/E = a/sqrt(E) (+) b, sqrt(GeV)
    stochastic: float
    constant: float
    noise_gev: float


@dataclass(frozen=True, kw_only=True)
class EmFraction(ConfigNode):
    """The ``detector.calorimeter.em_fraction`` section: π⁰ fraction of hadron showers (Groom)."""

    e0_gev: float
    exponent: float
    sigma: float


@dataclass(frozen=True, kw_only=True)
class CalorimeterConfig(ConfigNode):
    """The ``detector.calorimeter`` section."""

    eta_max: float
    n_eta: int
    n_phi: int
    radius_mm: float
    ecal: CaloLayer
    hcal: CaloLayer
    #: Mean share of a hadron's signal in the ECAL layer (fluctuating by 0.15).
    hadron_em_fraction: float
    #: Non-compensation: the non-EM part of a hadron shower responds 1/e_over_h of the EM part.
    e_over_h: float
    em_fraction: EmFraction
    tower_threshold_gev: float
    #: Towers must also exceed this many sigma of their noise (electronic and pile-up).
    noise_threshold_sigma: float
    #: Out-of-time pile-up noise per tower layer and per sqrt(<mu>) (GeV).
    oot_pileup_noise_gev: float


@dataclass(frozen=True, kw_only=True)
class PhotonEnergyResolution(ConfigNode):
    """The ``detector.photons.energy_resolution`` section (η- and material-dependent)."""

    stochastic: float
    material_per_x0: float
    constant_barrel: float
    constant_endcap: float
    noise_gev: float
    converted_scale: float


@dataclass(frozen=True, kw_only=True)
class PhotonPositionResolution(ConfigNode):
    """The ``detector.photons.position_resolution`` section: the cluster position."""

    eta: float
    phi: float


@dataclass(frozen=True, kw_only=True)
class PhotonShowerShapes(ConfigNode):
    """The ``detector.photons.shower_shapes`` section: leakage and lateral-width cuts of tight ID."""

    ring_dr: float
    leakage_max: float
    ring_fraction_max: float


@dataclass(frozen=True, kw_only=True)
class PhotonReconstruction(ConfigNode):
    """The ``detector.photons`` section."""

    pt_min_gev: float
    eta_max: float
    crack: tuple[float, ...]
    cluster_dr: float
    strip_deta: float
    second_photon_fraction: float
    id_efficiency: float
    isolation_dr: float
    energy_resolution: PhotonEnergyResolution
    position_resolution: PhotonPositionResolution
    shower_shapes: PhotonShowerShapes


@dataclass(frozen=True, kw_only=True)
class LeptonReconstruction(ConfigNode):
    """The ``detector.leptons`` section."""

    pt_min_gev: float
    electron_eta_max: float
    muon_eta_max: float
    electron_efficiency: float
    muon_efficiency: float


@dataclass(frozen=True, kw_only=True)
class JetReconstruction(ConfigNode):
    """The ``detector.jets`` section."""

    radius: float
    pt_min_gev: float
    eta_max: float
    genjet_pt_min_gev: float
    label_dr: float
    label_hadron_pt_min_gev: float
    #: Raw (EM-scale) jets below this are dropped before calibration.
    clustering_pt_min_gev: float
    #: Patch size of the pile-up density rho (median pT per unit area).
    rho_patch: float
    rho_eta_max: float
    #: Jet energy scale knots (pile-up-subtracted EM-scale energy, GeV).
    jes_energy_gev: tuple[float, ...]
    #: The MC-derived jet energy scale factor at each knot.
    jes_factor: tuple[float, ...]
    #: k of corrJVF = pT(PV) / (pT(PV) + pT(PU) / (k n_PU tracks)).
    corrjvf_k: float


@dataclass(frozen=True, kw_only=True)
class DetectorConfig(ConfigNode):
    """The ``detector`` section."""

    SECTION: ClassVar[str] = "detector"

    magnetic_field_t: float
    beam_spot_mm: BeamSpot
    pv_resolution_mm: PrimaryVertexResolution
    material: MaterialConfig
    tracking: TrackingConfig
    vertexing: VertexingConfig
    calorimeter: CalorimeterConfig
    photons: PhotonReconstruction
    leptons: LeptonReconstruction
    jets: JetReconstruction
