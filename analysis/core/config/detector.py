"""The ``detector`` section: the parametric ATLAS-like detector (tracking, calorimeter, objects).

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
    "ImpactParameterResolution",
    "JetReconstruction",
    "LeptonReconstruction",
    "PhotonReconstruction",
    "PrimaryVertexResolution",
    "PtResolution",
    "TrackingConfig",
]


@dataclass(frozen=True, kw_only=True)
class BeamSpot(ConfigNode):
    """The ``detector.beam_spot_mm`` section."""

    sigma_x: float
    sigma_y: float
    sigma_z: float


@dataclass(frozen=True, kw_only=True)
class PrimaryVertexResolution(ConfigNode):
    """The ``detector.pv_resolution_mm`` section."""

    xy: float
    z: float


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
    tail_fraction: float
    tail_scale: float
    pt_resolution: PtResolution
    #: fake tracks per reconstructed track
    fake_rate: float
    fake_d0_sigma_mm: float
    #: radiation lengths crossed at eta=0 inside r < 300 mm
    material_x0_central: float


@dataclass(frozen=True, kw_only=True)
class CaloLayer(ConfigNode):
    """The ``calo_layer`` section."""

    #: a in sigma/E = a/sqrt(E) (+) b, sqrt(GeV)
    stochastic: float
    constant: float
    noise_gev: float


@dataclass(frozen=True, kw_only=True)
class CalorimeterConfig(ConfigNode):
    """The ``detector.calorimeter`` section."""

    eta_max: float
    n_eta: int
    n_phi: int
    radius_mm: float
    ecal: CaloLayer
    hcal: CaloLayer
    hadron_em_fraction: float
    tower_threshold_gev: float


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


@dataclass(frozen=True, kw_only=True)
class DetectorConfig(ConfigNode):
    """The ``detector`` section."""

    SECTION: ClassVar[str] = "detector"

    magnetic_field_t: float
    beam_spot_mm: BeamSpot
    pv_resolution_mm: PrimaryVertexResolution
    tracking: TrackingConfig
    calorimeter: CalorimeterConfig
    photons: PhotonReconstruction
    leptons: LeptonReconstruction
    jets: JetReconstruction
