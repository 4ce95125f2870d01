"""The ``generation`` section: samples (Pythia process cards), batches, ROOT compression and
the presampled pile-up.

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
    "CompressionConfig",
    "GenerationConfig",
    "PileupConfig",
    "SampleConfig",
]


@dataclass(frozen=True, kw_only=True)
class CompressionConfig(ConfigNode):
    """The ``generation.compression`` section."""

    algorithm: Literal['zlib', 'lz4', 'zstd', 'lzma', 'none']
    level: int


@dataclass(frozen=True, kw_only=True)
class PileupConfig(ConfigNode):
    """The ``generation.pileup`` section: presampled minimum-bias overlay (docs/detector.md)."""

    #: <mu>: mean number of inelastic pile-up interactions per bunch crossing (Poisson per
    #: event); 0 switches pile-up off and needs no library.
    mu: float
    #: The minimum-bias library (HDF5, `hepline pileup-library`); a relative path is under
    #: output_dir.
    library: str
    #: Minimum-bias events in the library.
    library_events: int
    #: Pythia seed of the library; independent of the base seed.
    seed: int
    #: Pythia readString lines of the minimum-bias process.
    settings: tuple[str, ...]
    #: Final-state particles beyond this |eta| are not stored.
    eta_max: float


@dataclass(frozen=True, kw_only=True)
class SampleConfig(ConfigNode):
    """The ``sample`` section."""

    process: Literal['ttbar', 'x_hh_yybb', 'yy_continuum', 'gamma_jet', 'h_yy', 'rpv_gluino', 'qcd_multijet', 'lhe']
    run_number: int
    shards: int
    events_per_shard: int
    seed_offset: int
    #: X mass for x_hh_yybb
    mass_gev: float | None = None
    #: h_yy production mode
    production: Literal['ggH', 'ttH', 'ZH'] | None = None
    gluino_mass_gev: float | None = None
    neutralino_mass_gev: float | None = None
    pthat_min_gev: float | None = None
    pthat_max_gev: float | None = None
    #: qcd_multijet only: sample pT-hat with an extra (pT-hat / pthat_min_gev)^power bias (Pythia
    #: PhaseSpace:bias2Selection); every event carries the weight 1/bias, so the σ-weighted
    #: distributions are unchanged while the high-pT-hat tail gets more events.
    pthat_bias_power: float | None = None
    mhat_min_gev: float | None = None
    lhe_file: str | None = None
    decay: Literal['hh_yybb', 'none']
    #: External cross-section (pb) before branching; overrides Pythia's sigmaGen.
    xsec_pb: float | None = None
    #: Additional Pythia readString lines.
    extra_settings: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class GenerationConfig(ConfigNode):
    """The ``generation`` section."""

    SECTION: ClassVar[str] = "generation"

    sqrt_s_gev: float
    #: Events per Pythia nextBatch call, per detector pass and per ROOT basket.
    batch_size: int
    #: Events per ROOT basket (batches are buffered until this many are pending).
    basket_events: int
    multiparton_interactions: bool
    #: Multiplies every sample's events_per_shard (rounded), for scaling studies without a second
    #: copy of the config: snakemake --config 'generation={event_scale: 4}'.
    event_scale: float
    compression: CompressionConfig
    pileup: PileupConfig
    samples: Mapping[str, SampleConfig]
