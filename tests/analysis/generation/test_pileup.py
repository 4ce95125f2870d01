"""Presampled pile-up (analysis.generation.pileup), vertex reconstruction and track-to-vertex
association (analysis.generation.vertexing), the JVT inputs, and their bad inputs."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import uproot

from analysis.core.config import Config
from analysis.core.errors import ConfigError, InputFileError
from analysis.generation.jets import jvt_inputs
from analysis.generation.pileup import (
    PileupLibrary,
    library_hash,
    load_pileup,
    overlay,
    read_library,
    write_library,
)
from analysis.generation.record import FlatRecord
from analysis.generation.tracking import Tracks
from analysis.generation.vertexing import reconstruct_vertices


def _with_pileup(config: Config, tmp_path: Path, **pileup: object) -> Config:
    section = {"mu": 3.0, "library_events": 40, "library": str(tmp_path / "minbias.h5"), **pileup}
    return config.replace(generation=config.generation.replace(
        pileup=config.generation.pileup.replace(**section)))


def _hand_library(n_events: int = 5, per_event: int = 4, gen_hash: str = "x") -> PileupLibrary:
    n = n_events * per_event
    rng = np.random.default_rng(1)
    px, py, pz = rng.normal(0, 1, (3, n)).astype(np.float32)
    e = np.sqrt(px**2 + py**2 + pz**2 + 0.0195).astype(np.float32)
    return PileupLibrary(
        offsets=np.arange(0, n + 1, per_event, dtype=np.int64),
        pdg_id=np.full(n, 211, dtype=np.int32), px=px, py=py, pz=pz, e=e,
        vx=np.zeros(n, np.float32), vy=np.zeros(n, np.float32), vz=np.zeros(n, np.float32),
        library_hash=gen_hash, sigma_inel_mb=79.0, sigma_inel_err_mb=0.5,
    )


def _hard_record(n_events: int, per_event: int) -> FlatRecord:
    """A toy hard-scatter record: per event a mother (status -23) and its daughters."""
    n = n_events * per_event
    offsets = np.arange(0, n + 1, per_event, dtype=np.int64)
    event = np.repeat(np.arange(n_events), per_event)
    first = offsets[:-1][event]
    is_mother = np.arange(n) == first
    return FlatRecord(
        n_events=n_events, offsets=offsets, event=event,
        pdg_id=np.where(is_mother, 23, 211).astype(np.int64),
        status=np.where(is_mother, -22, 1).astype(np.int64),
        mother1=np.where(is_mother, -1, first).astype(np.int64),
        daughter1=np.where(is_mother, first + 1, -1).astype(np.int64),
        daughter2=np.where(is_mother, first + per_event - 1, -1).astype(np.int64),
        px=np.full(n, 5.0), py=np.full(n, 1.0), pz=np.full(n, 2.0), e=np.full(n, 6.0),
        m=np.full(n, 0.1), vx=np.zeros(n), vy=np.zeros(n), vz=np.zeros(n),
    )


# --------------------------------------------------------------------------- library


def test_library_hash_follows_what_the_events_depend_on(config: Config, tmp_path: Path) -> None:
    cfg = _with_pileup(config, tmp_path)
    h = library_hash(cfg.generation)
    assert h == library_hash(_with_pileup(config, tmp_path, mu=35.0).generation)  # not on mu
    assert h == library_hash(_with_pileup(config, tmp_path, library="elsewhere.h5").generation)
    assert h != library_hash(_with_pileup(config, tmp_path, seed=7).generation)
    assert h != library_hash(_with_pileup(config, tmp_path, library_events=41).generation)
    assert h != library_hash(cfg.replace(generation=cfg.generation.replace(sqrt_s_gev=13600.0)).generation)


def test_negative_mu_is_a_config_error() -> None:
    import yaml

    from analysis.core.config import config_from_dict

    raw = yaml.safe_load((Path(__file__).parents[3] / "workflows/config/default.yaml").read_text())
    raw["generation"]["pileup"] = {"mu": 2.5}
    assert config_from_dict(raw).generation.pileup.mu == 2.5
    raw["generation"]["pileup"] = {"mu": -1.0}
    with pytest.raises(ConfigError, match=r"bad\.yaml.*generation\.pileup\.mu"):
        config_from_dict(raw, source="bad.yaml")


def test_write_and_read_a_minimum_bias_library(config: Config, tmp_path: Path) -> None:
    cfg = _with_pileup(config, tmp_path)
    res = write_library(cfg, progress=False)
    assert res.path == tmp_path / "minbias.h5" and res.path.is_file()
    assert res.n_events == 40 and res.n_particles > 40 * 10  # tens of charged+neutral per event
    assert 60.0 < res.sigma_inel_mb < 100.0  # Pythia's sigma_inel at 13 TeV, ~79 mb
    lib = load_pileup(cfg)
    assert lib is not None and lib.n_events == 40 and lib.library_hash == res.library_hash
    assert np.all(np.diff(lib.offsets) >= 0) and lib.offsets[-1] == lib.n_particles
    assert not np.isin(np.abs(lib.pdg_id), (12, 14, 16)).any()
    eta = np.arcsinh(lib.pz / np.hypot(lib.px, lib.py))
    assert np.abs(eta).max() <= cfg.generation.pileup.eta_max + 1e-3
    # no pile-up: no library needed, none read
    assert load_pileup(_with_pileup(config, tmp_path, mu=0.0, library=str(tmp_path / "none.h5"))) is None


def test_missing_library_names_the_file_and_the_fix(config: Config, tmp_path: Path) -> None:
    cfg = _with_pileup(config, tmp_path)
    with pytest.raises(InputFileError, match=r"minbias\.h5.*missing.*hepline pileup-library"):
        load_pileup(cfg)


def test_library_of_another_configuration_is_refused(config: Config, tmp_path: Path) -> None:
    path = tmp_path / "minbias.h5"
    with h5py.File(path, "w") as f:
        f.attrs["library_hash"] = "0123456789abcdef"
    with pytest.raises(InputFileError, match="another configuration"):
        read_library(path, _with_pileup(config, tmp_path).generation)
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(InputFileError, match="not a readable pile-up library"):
        read_library(bad, config.generation)


# --------------------------------------------------------------------------- overlay


def test_overlay_adds_poisson_mu_interactions_at_their_own_vertices() -> None:
    n, per = 400, 3
    rec = _hard_record(n, per)
    hard_vtx = np.zeros((n, 3))
    lib = _hand_library()
    out, inter = overlay(rec, hard_vtx, lib, 4.0, np.random.default_rng(5), np.array([0.01, 0.01, 45.0]))
    assert inter.n_pileup.mean() == pytest.approx(4.0, abs=0.3)
    assert out.n_events == n and out.offsets[-1] == out.size == n * per + 4 * int(inter.n_pileup.sum())
    # per event: the hard scatter first (interaction 0), then the pile-up (1..nPU)
    for ev in (0, 1, n - 1):
        part = out.interaction[out.offsets[ev]:out.offsets[ev + 1]]
        assert np.all(part[:per] == 0) and np.all(part[per:] >= 1)
        assert part.max(initial=0) == inter.n_pileup[ev]
    # mother/daughter links still point at the hard-scatter particles they did
    moms = np.flatnonzero(out.pdg_id == 23)
    assert np.all(out.pdg_id[out.daughter1[moms]] == 211)
    assert np.all(out.mother1[out.daughter1[moms]] == moms)
    assert np.all(out.mother1[out.interaction > 0] == -1)
    # each pile-up particle sits at its interaction's vertex, spread along the beam
    pu_z = inter.z[inter.index > 0]
    assert np.std(pu_z) == pytest.approx(45.0, rel=0.1)
    some = np.flatnonzero(out.interaction > 0)[:50]
    first = np.searchsorted(inter.event, out.event[some])
    assert np.allclose(out.vz[some], inter.z[first + out.interaction[some]])


def test_overlay_without_pileup_is_the_identity() -> None:
    rec = _hard_record(5, 3)
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    out, inter = overlay(rec, np.zeros((5, 3)), None, 35.0, rng, np.array([0.01, 0.01, 45.0]))
    assert out is rec and np.all(inter.n_pileup == 0) and rng.bit_generator.state == state


# --------------------------------------------------------------------------- vertexing


def _tracks(event: np.ndarray, z0: np.ndarray, pt: np.ndarray, interaction: np.ndarray,
            d0: np.ndarray | None = None) -> Tracks:
    n = event.size
    return Tracks(
        event=event, pt=pt, eta=np.zeros(n), phi=np.zeros(n), charge=np.ones(n, np.int8),
        d0=np.zeros(n) if d0 is None else d0, z0=z0, d0_err=np.full(n, 0.02),
        z0_err=np.full(n, 0.05), grade=np.zeros(n, np.int8), origin=np.full(n, 2, np.int8),
        gen_pdg_id=np.full(n, 211, np.int32), particle=np.arange(n), interaction=interaction,
    )


def test_vertices_primary_choice_and_association(config: Config) -> None:
    from analysis.generation.pileup import Interactions

    # event 0: hard scatter at z=10 (hard tracks), pile-up at z=-30 (soft); a displaced
    # hard track (|d0| = 3 mm) is not in the fit but is associated by z; a fake far away
    # event 1: the pile-up vertex has the larger sum pT^2 and becomes the primary vertex
    ev = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    z0 = np.array([10.0, 10.05, 9.95, -30.0, -30.05, 10.02, 200.0, 5.0, 5.02, -20.0, -20.03])
    pt = np.array([40.0, 30.0, 20.0, 1.0, 1.2, 5.0, 2.0, 1.0, 1.1, 50.0, 40.0])
    inter = np.array([0, 0, 0, 1, 1, 0, -1, 0, 0, 1, 1])
    d0 = np.array([0, 0, 0, 0, 0, 3.0, 0, 0, 0, 0, 0])
    interactions = Interactions(event=np.array([0, 0, 1, 1]), index=np.array([0, 1, 0, 1]),
                                x=np.zeros(4), y=np.zeros(4), z=np.array([10.0, -30.0, 5.0, -20.0]),
                                n_pileup=np.array([1, 1]))
    det = config.detector
    v = reconstruct_vertices(_tracks(ev, z0, pt, inter, d0), interactions, 2,
                             np.random.default_rng(0), det.vertexing, det.pv_resolution_mm)
    assert list(v.n_vertices) == [2, 2]
    assert v.pv[0, 2] == pytest.approx(10.0, abs=0.1) and v.pv[1, 2] == pytest.approx(-20.0, abs=0.1)
    assert list(v.pv_interaction) == [0, 1]
    assert list(v.track_vertex) == [0, 0, 0, 1, 1, 0, -1, 1, 1, 0, 0]
    # vertices are ordered by decreasing sum pT^2 within each event
    assert v.sum_pt2[0] > v.sum_pt2[1] and v.sum_pt2[2] > v.sum_pt2[3]


def test_close_vertices_merge_and_soft_ones_are_lost(config: Config) -> None:
    from analysis.generation.pileup import Interactions

    det = config.detector
    ev = np.zeros(5, dtype=np.int64)
    gap = det.vertexing.merge_distance_mm / 2
    z0 = np.array([0.0, 0.01, gap, gap + 0.01, 50.0])
    inter = np.array([0, 0, 1, 1, 2])
    interactions = Interactions(event=np.zeros(3, np.int64), index=np.arange(3), x=np.zeros(3),
                                y=np.zeros(3), z=np.array([0.0, gap, 50.0]), n_pileup=np.array([2]))
    v = reconstruct_vertices(_tracks(ev, z0, np.full(5, 2.0), inter), interactions, 1,
                             np.random.default_rng(0), det.vertexing, det.pv_resolution_mm)
    assert list(v.n_vertices) == [1]  # two merged; the one-track interaction gives none
    assert v.n_tracks[0] == 4


def test_jvt_inputs() -> None:
    # jet 0: all tracks from the PV; jet 1: half the pT from pile-up; jet 2: no tracks
    track_jet = np.array([0, 0, 1, 1, -1, -1])
    track_pt = np.array([10.0, 5.0, 4.0, 4.0, 1.0, 1.0])
    track_vtx = np.array([0, 0, 0, 1, 1, 2])
    corr, rpt = jvt_inputs(np.array([30.0, 40.0, 20.0]), track_jet, track_pt, track_vtx,
                           np.zeros(6, dtype=np.int64), 1, 0.01)
    assert corr[0] == 1.0 and corr[2] == -1.0
    # 3 pile-up tracks in the event: 4 / (4 + 4 / (0.01 * 3))
    assert corr[1] == pytest.approx(4.0 / (4.0 + 4.0 / 0.03))
    assert rpt == pytest.approx([15.0 / 30.0, 4.0 / 40.0, 0.0])


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_shard_with_pileup(config: Config, tmp_path: Path) -> None:
    """ttbar with ⟨μ⟩ = 10: Poisson pile-up, several vertices, the hard scatter chosen as
    primary vertex, pile-up tracks tagged by their vertex and hard jets with high corrJVF."""
    from analysis.generation.produce import produce_shard

    cfg = _with_pileup(config, tmp_path, mu=10.0, library_events=200)
    with pytest.raises(InputFileError, match="missing"):
        produce_shard(cfg, "ttbar", 0, tmp_path / "x.root", n_events=10, progress=False)
    write_library(cfg, progress=False)
    out = tmp_path / "ttbar_pu.root"
    res = produce_shard(cfg, "ttbar", 0, out, n_events=200, progress=False)
    assert res.metadata.pileup_mu == 10.0 and res.metadata.pileup_library_hash == library_hash(cfg.generation)
    with uproot.open(out) as f:
        a = f["Events"].arrays(["Pileup_nPU", "PV_npvs", "PV_z", "GenVtx_z", "Track_vtxIdx",
                                "Jet_corrJVF", "Jet_rpt", "Jet_genJetIdx", "Jet_pt", "Jet_eta"])
    npu = a.Pileup_nPU.to_numpy()
    assert npu.mean() == pytest.approx(10.0, abs=1.0) and npu.var() == pytest.approx(10.0, rel=0.4)
    assert 3.0 < a.PV_npvs.to_numpy().mean() <= 11.0
    assert np.mean(np.abs(a.PV_z.to_numpy() - a.GenVtx_z.to_numpy()) < 0.1) > 0.95
    vtx = np.concatenate(a.Track_vtxIdx.to_list())
    assert 0.2 < np.mean(vtx > 0) < 0.9 and np.mean(vtx == 0) > 0.1
    central = (np.abs(a.Jet_eta) < 2.4) & (a.Jet_pt > 30)
    hs = np.concatenate(a.Jet_corrJVF[central & (a.Jet_genJetIdx >= 0)].to_list())
    pu = np.concatenate(a.Jet_corrJVF[central & (a.Jet_genJetIdx < 0)].to_list())
    assert np.median(hs) > 0.8
    if pu.size >= 10:
        assert np.median(pu) < np.median(hs)


def test_cli_refuses_negative_mu_and_a_missing_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main

    cfg = str(Path(__file__).parents[3] / "workflows/config/default.yaml")
    args = ["generate", "--config", cfg, "--sample", "ttbar", "--shard", "0", "--events", "5",
            "--output", str(tmp_path / "t.root"), "--quiet"]
    assert main([*args, "--mu", "-1"]) == 2
    assert "--mu" in capsys.readouterr().err
    assert main([*args, "--mu", "2", "--pileup-library", str(tmp_path / "none.h5")]) == 2
    err = capsys.readouterr().err
    assert "none.h5" in err and "pile-up library missing" in err
    assert not (tmp_path / "t.root").exists()
