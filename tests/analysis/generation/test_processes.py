"""Process cards, the RPV SLHA spectrum and the LHE writer, checked by running Pythia.

Every Pythia run here switches MPI and hadronisation off (the hard-process cross-section and
the decay record do not depend on them) and generates a few hundred events at most.
"""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest

pythia8mc = pytest.importorskip("pythia8mc")

from analysis.generation.lhe import (  # noqa: E402
    HIGGS_MASS_GEV,
    LHEEvent,
    toy_gg_to_hh_events,
    write_lhe,
)
from analysis.generation.processes import (  # noqa: E402
    BR_H_YY,
    BR_HH_BBYY,
    ProcessCard,
    ProcessConfigError,
    hh_bbyy_filter,
    higgs_decay_counts,
    process_card,
    pythia_branching_ratio,
)
from analysis.core.config import ConfigError, SampleConfig  # noqa: E402
from analysis.generation.slha import rpv_gluino_slha  # noqa: E402

FAST = ("PartonLevel:MPI = off", "HadronLevel:all = off")


def run_pythia(card: ProcessCard, workdir, n: int, *, seed: int = 4711, extra=FAST,
               beams: bool = True):
    """Initialise Pythia like the driver does and return (events, sigmaGen in pb, pythia)."""
    p = pythia8mc.Pythia("", False)
    base = ["Next:numberCount = 0", "Print:quiet = on", "Random:setSeed = on",
            f"Random:seed = {seed}", *extra]
    if beams:
        base.insert(0, "Beams:eCM = 13000")
    for line in base + card.materialise(workdir):
        assert p.readString(line), f"Pythia rejected {line!r}"
    assert p.init(), "Pythia init failed"
    events = p.nextBatch(n)
    return events, p.infoPython().sigmaGen() * 1e9, p


def normalised_sigma(card: ProcessCard, sigma_gen_pb: float) -> float:
    """Cross-section of the kept events, in pb: (xsec or sigmaGen) x branching."""
    return (card.xsec_pb if card.xsec_pb is not None else sigma_gen_pb) * card.branching


# ---------------------------------------------------------------------------------------------
# card construction


def sample_config(fields: dict) -> SampleConfig:
    """A sample section with the schema defaults for what ``fields`` leaves out.

    Not validated against the schema, so that the checks of ``process_card`` itself (values
    the schema would also refuse) can be tested.
    """
    base = {"run_number": 0, "shards": 1, "events_per_shard": 1, "seed_offset": 0, "decay": "none"}
    return SampleConfig(**{**base, **fields, "extra_settings": tuple(fields.get("extra_settings", ()))})


ALL_SAMPLES = {name: sample_config(fields) for name, fields in {
    "ttbar": {"process": "ttbar"},
    "xhh_300": {"process": "x_hh_yybb", "mass_gev": 300, "xsec_pb": 1.0},
    "yy": {"process": "yy_continuum", "mhat_min_gev": 90},
    "gamma_jet": {"process": "gamma_jet", "pthat_min_gev": 20},
    "ggh_yy": {"process": "h_yy", "production": "ggH"},
    "tth_yy": {"process": "h_yy", "production": "ttH"},
    "zh_yy": {"process": "h_yy", "production": "ZH"},
    "rpv": {"process": "rpv_gluino", "gluino_mass_gev": 1400, "neutralino_mass_gev": 850},
    "qcd_400_800": {"process": "qcd_multijet", "pthat_min_gev": 400, "pthat_max_gev": 800},
    "qcd_800_inf": {"process": "qcd_multijet", "pthat_min_gev": 800},
    "hh_lhe": {"process": "lhe", "lhe_file": "hh.lhe", "xsec_pb": 0.03105, "decay": "hh_yybb"},
}.items()}


@pytest.mark.parametrize("name", sorted(ALL_SAMPLES))
def test_every_process_builds_a_card(name):
    card = process_card(ALL_SAMPLES[name], name=name)
    assert isinstance(card, ProcessCard)
    assert card.settings and all(isinstance(s, str) and "=" in s for s in card.settings)
    assert not any(s.split("=")[0].strip() in {"Beams:eCM", "Random:seed", "PartonLevel:MPI"}
                   for s in card.settings)
    assert card.branching > 0
    assert card.xsec_pb is None or card.xsec_pb > 0
    assert isinstance(card.filter_description, str) and card.filter_description


def test_card_contents_follow_the_sample():
    xhh = process_card(ALL_SAMPLES["xhh_300"])
    assert "35:m0 = 300" in xhh.settings and "HiggsBSM:gg2H2 = on" in xhh.settings
    assert xhh.xsec_pb == 1.0
    assert xhh.branching == pytest.approx(2 * 0.5809 * 0.00227)
    assert xhh.event_filter is hh_bbyy_filter

    yy_default = process_card(sample_config({"process": "yy_continuum"}))
    assert "PhaseSpace:mHatMin = 90" in yy_default.settings
    assert "PhaseSpace:mHatMin = 120" in process_card(
        sample_config({"process": "yy_continuum", "mhat_min_gev": 120})).settings

    qcd = process_card(ALL_SAMPLES["qcd_400_800"])
    assert {"PhaseSpace:pTHatMin = 400", "PhaseSpace:pTHatMax = 800"} <= set(qcd.settings)
    assert not any("pTHatMax" in s for s in process_card(ALL_SAMPLES["qcd_800_inf"]).settings)

    rpv = process_card(ALL_SAMPLES["rpv"])
    assert "SLHA:file = {workdir}/rpv.slha" in rpv.settings and "rpv.slha" in rpv.files

    tth = process_card(ALL_SAMPLES["tth_yy"])
    assert {"HiggsSM:gg2Httbar = on", "HiggsSM:qqbar2Httbar = on"} <= set(tth.settings)

    extra = ["25:m0 = 125.0", "Top:gg2ttbar = off"]
    card = process_card(sample_config({"process": "ttbar", "extra_settings": extra}))
    assert list(card.settings[-2:]) == extra          # applied last

    lhe_plain = process_card(sample_config({"process": "lhe", "lhe_file": "a.lhe", "xsec_pb": 2.0}))
    assert lhe_plain.event_filter is None and lhe_plain.branching == 1.0
    assert lhe_plain.xsec_pb == 2.0


def test_materialise_writes_files_and_fills_placeholder(tmp_path):
    card = process_card(ALL_SAMPLES["rpv"])
    settings = card.materialise(tmp_path / "job")
    slha_line = [s for s in settings if s.startswith("SLHA:file")]
    assert slha_line == [f"SLHA:file = {(tmp_path / 'job').resolve()}/rpv.slha"]
    assert (tmp_path / "job" / "rpv.slha").read_text() == card.files["rpv.slha"]
    assert not any("{workdir}" in s for s in settings)


@pytest.mark.parametrize(
    ("sample", "key"),
    [
        ({"process": "x_hh_yybb", "xsec_pb": 1.0}, "mass_gev"),
        ({"process": "x_hh_yybb", "mass_gev": 500}, "xsec_pb"),
        ({"process": "x_hh_yybb", "mass_gev": 200, "xsec_pb": 1.0}, "mass_gev"),
        ({"process": "h_yy"}, "production"),
        ({"process": "h_yy", "production": "VBF"}, "production"),
        ({"process": "rpv_gluino", "neutralino_mass_gev": 850}, "gluino_mass_gev"),
        ({"process": "rpv_gluino", "gluino_mass_gev": 1400}, "neutralino_mass_gev"),
        ({"process": "rpv_gluino", "gluino_mass_gev": 800, "neutralino_mass_gev": 850},
         "neutralino_mass_gev"),
        ({"process": "qcd_multijet", "pthat_max_gev": 800}, "pthat_min_gev"),
        ({"process": "qcd_multijet", "pthat_min_gev": 800, "pthat_max_gev": 400},
         "pthat_max_gev"),
        ({"process": "qcd_multijet", "pthat_min_gev": 400, "pthat_bias_power": -1}, "pthat_bias_power"),
        ({"process": "qcd_multijet", "pthat_min_gev": 0, "pthat_bias_power": 4}, "pthat_min_gev"),
        ({"process": "gamma_jet"}, "pthat_min_gev"),
        ({"process": "lhe", "xsec_pb": 0.031}, "lhe_file"),
        ({"process": "lhe", "lhe_file": "x.lhe"}, "xsec_pb"),
        ({"process": "lhe", "lhe_file": "x.lhe", "xsec_pb": 0.03, "decay": "4b"}, "decay"),
        ({"process": "no_such_process"}, "process"),
    ],
)
def test_missing_or_bad_keys_raise_naming_key_and_sample(sample, key):
    with pytest.raises(ProcessConfigError) as err:
        process_card(sample_config(sample), name="my_sample_17")
    assert err.value.key == key
    assert err.value.sample == "my_sample_17"
    assert f"'{key}'" in str(err.value) and "my_sample_17" in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, ConfigError)


def test_error_without_name_describes_the_sample():
    with pytest.raises(ProcessConfigError, match=r"run_number=450300.*'mass_gev'"):
        process_card(sample_config({"process": "x_hh_yybb", "xsec_pb": 1.0, "run_number": 450300}))


# ---------------------------------------------------------------------------------------------
# Pythia runs: every process initialises, generates and gives a plausible cross-section


def _ids(events):
    return events.prt.id


@pytest.mark.parametrize(
    ("name", "n", "lo_pb", "hi_pb"),
    [
        ("ttbar", 200, 400.0, 700.0),                 # LO ~ 520 pb
        ("yy", 300, 30.0, 120.0),                     # ffbar + gg -> yy, mHat > 90 GeV
        ("gamma_jet", 300, 5.0e4, 5.0e5),             # pTHat > 20 GeV
        ("ggh_yy", 300, 0.02, 0.15),                  # LO ggH x B(yy) (N3LO: 48.6 pb x B)
        ("tth_yy", 100, 3.0e-4, 2.0e-3),              # LO ttH x B(yy)
        ("zh_yy", 300, 5.0e-4, 3.0e-3),               # LO ZH x B(yy)
        ("rpv", 100, 0.005, 0.03),                    # 1400/850: ~0.013 pb
        ("qcd_400_800", 200, 800.0, 5000.0),
        ("qcd_800_inf", 200, 15.0, 120.0),
    ],
)
def test_process_generates_with_plausible_sigma(name, n, lo_pb, hi_pb, tmp_path):
    sample = ALL_SAMPLES[name]
    card = process_card(sample, name=name)
    events, sigma_gen, _ = run_pythia(card, tmp_path, n)
    assert len(events) == n
    assert card.event_filter is None
    sigma = normalised_sigma(card, sigma_gen)
    assert lo_pb < sigma < hi_pb, f"{name}: sigma x B = {sigma:.4g} pb"

    ids, info = _ids(events), events.info
    if name == "ttbar":
        assert ak.all(ak.any(ids == 6, axis=1) & ak.any(ids == -6, axis=1))
    elif name == "yy":
        assert ak.all(info.mHat >= 90.0 - 1e-6)
        assert ak.all(ak.sum((ids == 22) & (events.prt.status == -23), axis=1)
                      + ak.sum((ids == 22) & (events.prt.status == 23), axis=1) >= 2)
    elif name == "gamma_jet":
        assert ak.all(np.sqrt(info.pT2Hat) >= 20.0 - 1e-6)
    elif name.endswith("_yy"):                        # h_yy: every Higgs decays to yy
        n_h, n_bb, n_yy = higgs_decay_counts(events)
        assert np.all(n_h == 1) and np.all(n_yy == 1) and np.all(n_bb == 0)
        assert card.branching == pytest.approx(BR_H_YY / pythia_branching_ratio(25, (22, 22)))
        if name == "tth_yy":
            assert ak.all(ak.any(ids == 6, axis=1))
        if name == "zh_yy":
            assert ak.all(ak.any(ids == 23, axis=1))
    elif name == "rpv":
        assert ak.all(ak.sum(ids == 1000021, axis=1) >= 2)
        _check_rpv_decays(events)
    elif name.startswith("qcd"):
        pt_hat = np.sqrt(ak.to_numpy(info.pT2Hat))
        assert np.all(pt_hat >= sample.pthat_min_gev - 1e-6)
        if sample.pthat_max_gev is not None:
            assert np.all(pt_hat <= sample.pthat_max_gev + 1e-6)


def _check_rpv_decays(events):
    """Every neutralino last copy decays to three quarks u d s (or the antiquarks)."""
    prt = events.prt
    ids, d1, d2 = prt.id, prt.daughter1, prt.daughter2
    last_chi = (ids == 1000022) & (d1 > 0) & (ids[d1] != 1000022)
    n_chi = ak.to_numpy(ak.sum(last_chi, axis=1))
    assert np.all(n_chi == 2)
    first, last = ak.flatten(d1[last_chi]), ak.flatten(d2[last_chi])
    assert np.all(ak.to_numpy(last - first) == 2)            # three daughters
    products = np.stack([ak.to_numpy(ak.flatten(ids[d1[last_chi] + k])) for k in range(3)])
    assert np.all(np.sort(np.abs(products), axis=0).T == [1, 2, 3])
    signs = np.sign(products)
    assert np.all(signs == signs[0])                          # u d s or u~ d~ s~, never mixed


def test_pthat_bias_fills_the_tail_and_the_weights_undo_it(tmp_path):
    """qcd_multijet with pthat_bias_power: more events at high pT-hat, each with weight
    (pthat_min / pT-hat)^power, so the weighted spectrum is the unbiased one."""
    hard_only = ("PartonLevel:all = off", "HadronLevel:all = off")
    plain = process_card(ALL_SAMPLES["qcd_400_800"])
    biased = process_card(ALL_SAMPLES["qcd_400_800"].replace(pthat_bias_power=4))
    assert {"PhaseSpace:bias2Selection = on", "PhaseSpace:bias2SelectionPow = 4",
            "PhaseSpace:bias2SelectionRef = 400"} <= set(biased.settings)
    n = 4000
    ev_p, sigma_p, _ = run_pythia(plain, tmp_path / "p", n, extra=hard_only)
    ev_b, sigma_b, _ = run_pythia(biased, tmp_path / "b", n, extra=hard_only, seed=4712)
    from analysis.generation.pythia import event_weights

    w_p, w_b = event_weights(ev_p), event_weights(ev_b)
    pt_p, pt_b = np.sqrt(ak.to_numpy(ev_p.info.pT2Hat)), np.sqrt(ak.to_numpy(ev_b.info.pT2Hat))
    assert np.all(w_p == 1.0)
    # (to 1e-3: the weight and the stored pT2Hat differ from the exact relation by up to
    # 1.2e-4 on this sample)
    assert np.allclose(w_b, (400.0 / pt_b) ** 4, rtol=1e-3)
    # the tail above 700 GeV: ~4x more events generated, the same weighted fraction
    raw_p, raw_b = (pt_p > 700).mean(), (pt_b > 700).mean()
    assert raw_b > 3 * raw_p
    frac_b = w_b[pt_b > 700].sum() / w_b.sum()
    err = math.hypot(math.sqrt(raw_p * (1 - raw_p) / n), frac_b * math.sqrt(1.0 / max((pt_b > 700).sum(), 1)))
    assert abs(frac_b - raw_p) < 4 * err
    assert sigma_b == pytest.approx(sigma_p, rel=0.1)  # sigmaGen is the unbiased cross-section


def test_h_yy_normalisation_is_production_times_physical_branching(tmp_path):
    """sigmaGen with the forced decay contains Pythia's B(H->yy); the card corrects it."""
    hard_only = ("PartonLevel:all = off", "HadronLevel:all = off")
    card = process_card(ALL_SAMPLES["ggh_yy"])
    _, sigma_forced, _ = run_pythia(card, tmp_path / "a", 3000, extra=hard_only)
    inclusive = process_card(sample_config({"process": "h_yy", "production": "ggH",
                                            "extra_settings": ["25:onMode = on"]}))
    _, sigma_incl, _ = run_pythia(inclusive, tmp_path / "b", 3000, extra=hard_only)
    assert sigma_forced < 0.01 * sigma_incl                  # Pythia did fold in its B(yy)
    reported = normalised_sigma(card, sigma_forced)
    assert reported == pytest.approx(sigma_incl * BR_H_YY, rel=0.05)
    # with an external production cross-section the physical B(H->yy) applies directly
    ext = process_card(sample_config({"process": "h_yy", "production": "ggH", "xsec_pb": 48.6}))
    assert ext.xsec_pb == 48.6 and ext.branching == pytest.approx(BR_H_YY)


# ---------------------------------------------------------------------------------------------
# X -> HH -> bb yy filter


def _reference_hh_modes(events):
    """Per event: sorted list of (|daughter ids|) of the last-copy Higgs bosons (plain loops)."""
    out = []
    for ev in events.prt.to_list():
        modes = []
        for q in ev:
            if q["id"] == 25 and q["daughter1"] > 0 and ev[q["daughter1"]]["id"] != 25:
                modes.append(tuple(sorted(ev[k]["id"] for k in
                                          range(q["daughter1"], q["daughter2"] + 1))))
        out.append(sorted(modes))
    return out


def _pair_mass(events, mask_daughters):
    p = events.prt.p
    e, px, py, pz = (ak.sum(getattr(p, c)[mask_daughters], axis=1) for c in ("e", "px", "py", "pz"))
    return np.sqrt(np.maximum(ak.to_numpy(e**2 - px**2 - py**2 - pz**2), 0.0))


def test_x_hh_filter_keeps_half_and_only_bbyy(tmp_path):
    card = process_card(ALL_SAMPLES["xhh_300"], name="xhh_300")
    events, _, _ = run_pythia(card, tmp_path, 400, seed=99)
    keep = card.event_filter(events)
    assert isinstance(keep, np.ndarray) and keep.dtype == bool and keep.shape == (400,)
    # 50/50 forced decays -> P(one bb, one yy) = 1/2; binomial sd = 0.025
    assert 0.40 < keep.mean() < 0.60

    modes = _reference_hh_modes(events)
    bbyy = [(-5, 5), (22, 22)]
    assert np.array_equal(keep, np.array([m == bbyy for m in modes]))
    rejected = {tuple(m) for m, k in zip(modes, keep, strict=True) if not k}
    assert rejected == {((-5, 5), (-5, 5)), ((22, 22), (22, 22))}   # both 4b and 4y seen

    # kept events: the H->yy photons and H->bb quarks each reconstruct m_H
    prt = events.prt
    ids, mothers = prt.id, prt.mother1
    from_h = (ids[mothers] == 25) & (mothers > 0)
    kept = events[keep]
    fk = from_h[keep]
    m_yy = _pair_mass(kept, fk & (kept.prt.id == 22))
    m_bb = _pair_mass(kept, fk & (abs(kept.prt.id) == 5))
    assert np.allclose(m_yy, HIGGS_MASS_GEV, atol=0.5)
    assert np.allclose(m_bb, HIGGS_MASS_GEV, atol=0.5)

    # the filter must be vectorised: an empty batch works and gives an empty mask
    assert hh_bbyy_filter(events[:0]).shape == (0,)


# ---------------------------------------------------------------------------------------------
# RPV SLHA spectrum


def _slha_blocks(text):
    """{BLOCK name: [row tokens, ...]} of an SLHA text (comments stripped)."""
    blocks, current = {}, None
    for line in text.splitlines():
        body = line.split("#")[0].split()
        if not body:
            continue
        if body[0].upper() == "BLOCK":
            current = body[1].upper()
            blocks[current] = []
        elif body[0].upper() == "DECAY":
            current = None
        elif current is not None:
            blocks[current].append(body)
    return blocks


def _slha_decay_tables(text):
    """{pdg: (width, [[BR, NDA, ids...], ...])} from the DECAY blocks of an SLHA text."""
    tables, current = {}, None
    for line in text.splitlines():
        body = line.split("#")[0].split()
        if not body:
            continue
        if body[0].upper() == "DECAY":
            current = int(body[1])
            tables[current] = (float(body[2]), [])
        elif body[0].upper() == "BLOCK":
            current = None
        elif current is not None:
            tables[current][1].append(body)
    return tables


def test_rpv_slha_has_all_blocks_and_consistent_decays():
    text = rpv_gluino_slha(1400, 850)
    blocks = _slha_blocks(text)
    need = {"MODSEL", "SMINPUTS", "MINPAR", "EXTPAR", "MASS", "NMIX", "UMIX", "VMIX", "STOPMIX",
            "SBOTMIX", "STAUMIX", "ALPHA", "HMIX", "GAUGE", "YU", "YD", "YE", "AU", "AD", "AE",
            "RVLAMUDD"}
    assert need <= set(blocks)
    assert ["4", "1"] in blocks["MODSEL"]                     # R-parity violation switched on
    assert [1, 1, 2] == [int(x) for x in blocks["RVLAMUDD"][0][:3]]
    assert float(blocks["RVLAMUDD"][0][3]) > 0                # lambda''_112: u d s
    masses = {int(r[0]): float(r[1]) for r in blocks["MASS"]}
    nmix = np.array([[0.0] * 4 for _ in range(4)])
    for i, j, v in blocks["NMIX"]:
        nmix[int(i) - 1, int(j) - 1] = float(v)
    assert np.allclose(nmix @ nmix.T, np.eye(4))               # orthogonal mixing
    sparticles = [1000001, 2000001, 1000002, 2000002, 1000003, 2000003, 1000004, 2000004,
                  1000005, 2000005, 1000006, 2000006, 1000011, 2000011, 1000012, 1000013,
                  2000013, 1000014, 1000015, 2000015, 1000016, 1000021, 1000022, 1000023,
                  1000025, 1000035, 1000024, 1000037]
    assert set(sparticles) <= set(masses)
    assert masses[1000021] == 1400 and masses[1000022] == 850
    assert all(masses[p] >= 5000 for p in sparticles if p not in (1000021, 1000022))
    # decay tables: BRs sum to one, gluino -> chi10 q q~, chi10 -> u d s (+ c.c.)
    tables = _slha_decay_tables(text)
    assert set(tables) == {1000021, 1000022}
    for pdg, (width, rows) in tables.items():
        assert 0 < width < 1.0                                # narrow and prompt
        assert math.isclose(sum(float(r[0]) for r in rows), 1.0, rel_tol=1e-6)
        assert all(int(r[1]) == 3 == len(r) - 2 for r in rows)
        if pdg == 1000021:
            assert all(int(r[2]) == 1000022 and int(r[3]) == -int(r[4]) for r in rows)
            assert {abs(int(r[3])) for r in rows} == {1, 2, 3, 4, 5}
        else:
            assert sorted(tuple(sorted(map(int, r[2:]))) for r in rows) == [(-3, -2, -1),
                                                                           (1, 2, 3)]
    with pytest.raises(ValueError):
        rpv_gluino_slha(800, 850)


# ---------------------------------------------------------------------------------------------
# LHE writer + Pythia round trip


def test_toy_events_are_physical():
    events = toy_gg_to_hh_events(50, np.random.default_rng(5))
    assert len(events) == 50 and all(isinstance(e, LHEEvent) for e in events)
    for ev in events:
        g1, g2, h1, h2 = ev.particles
        assert (g1.pdg_id, g2.pdg_id, h1.pdg_id, h2.pdg_id) == (21, 21, 25, 25)
        assert (g1.status, g2.status, h1.status, h2.status) == (-1, -1, 1, 1)
        assert (h1.mother1, h1.mother2) == (1, 2)
        for k in ("px", "py", "pz", "e"):
            assert getattr(g1, k) + getattr(g2, k) == pytest.approx(
                getattr(h1, k) + getattr(h2, k), abs=1e-8)
        for h in (h1, h2):
            assert math.sqrt(h.e**2 - h.px**2 - h.py**2 - h.pz**2) == pytest.approx(125.0)
        assert g1.px == g1.py == 0 and g1.pz > 0 > g2.pz and g1.e == g1.pz
        # colour singlet: g1's colour is g2's anticolour and vice versa; no shared tag
        assert g1.col == g2.acol and g1.acol == g2.col and g1.col != g1.acol
        assert h1.col == h1.acol == 0
        assert 0 < g1.e / 6500.0 < 1 and 0 < g2.e / 6500.0 < 1


def _read_lhe_higgs(path):
    """(n_events, 2, 4) array of outgoing Higgs (px, py, pz, e) from a LHE file."""
    out = []
    block = None
    for line in open(path):
        s = line.strip()
        if s == "<event>":
            block = []
        elif s == "</event>":
            rows = [r.split() for r in block[1:]]
            assert int(block[0].split()[0]) == len(rows)
            out.append([[float(x) for x in r[6:10]] for r in rows if r[0] == "25" and r[1] == "1"])
            block = None
        elif block is not None:
            block.append(s)
    return np.array(out)


def test_lhe_round_trip_through_pythia(tmp_path):
    path = tmp_path / "gg_hh.lhe"
    toy = toy_gg_to_hh_events(20, np.random.default_rng(2024))
    write_lhe(path, toy, sqrt_s_gev=13000.0, xsec_pb=0.03105)
    text = path.read_text()
    assert text.startswith('<LesHouchesEvents version="1.0">')
    assert text.count("<event>") == 20 and text.rstrip().endswith("</LesHouchesEvents>")
    init = text.split("<init>")[1].split("</init>")[0].split("\n")
    assert init[1].split()[:4] == ["2212", "2212", "6.5000000000e+03", "6.5000000000e+03"]
    assert init[1].split()[8] == "3"                               # IDWTUP

    lhe_h = _read_lhe_higgs(path)
    assert lhe_h.shape == (20, 2, 4)
    expected = np.array([[[h.px, h.py, h.pz, h.e] for h in ev.particles[2:]] for ev in toy])
    assert np.allclose(lhe_h, expected, rtol=1e-9, atol=1e-7)

    card = process_card(sample_config({"process": "lhe", "lhe_file": str(path), "xsec_pb": 0.03105,
                                       "decay": "hh_yybb"}), name="hh_lhe")
    assert card.branching == pytest.approx(BR_HH_BBYY) and card.xsec_pb == 0.03105
    events, sigma_gen, p = run_pythia(card, tmp_path / "job", 25, beams=False)
    assert len(events) == 20                                       # all of the file, no more
    assert p.infoPython().atEndOfFile()
    assert sigma_gen == pytest.approx(0.03105, rel=1e-6)           # XSECUP passed through

    # the hard-process Higgs bosons (first copies, |status| 22) equal the LHE momenta
    prt = events.prt
    first_h = prt[(prt.id == 25) & (abs(prt.status) == 22)]
    assert ak.all(ak.num(first_h) == 2)
    got = np.stack([np.stack([ak.to_numpy(first_h.p[c][:, i]) for c in ("px", "py", "pz", "e")],
                             axis=-1) for i in range(2)], axis=1)
    assert np.allclose(got, lhe_h, rtol=1e-6, atol=1e-5)
    # incoming gluons carry the LHE momentum fractions
    x1 = np.array([ev.meta["x1"] for ev in toy])
    assert np.allclose(ak.to_numpy(events.info.x1), x1, rtol=1e-6)

    # the forced decays and the bb yy filter act on LHE input too
    n_h, n_bb, n_yy = higgs_decay_counts(events)
    assert np.all(n_h == 2) and np.all(n_bb + n_yy == 2)
    keep = card.event_filter(events)
    assert np.array_equal(keep, (n_bb == 1) & (n_yy == 1))
    assert 0 < keep.sum() < 20


# ---------------------------------------------------------------------------------------------
# the shipped configuration and the cross-section diagnostic


def test_every_sample_of_the_default_config_builds_a_card(config):
    for name, spec in config.generation.samples.items():
        card = process_card(spec, name=name)
        assert card.settings and card.branching > 0, name


def test_measure_samples_prints_a_table(config, capsys):
    from analysis.generation.processes import (
        CrossSectionMeasurement,
        cross_section_table,
        measure_samples,
    )
    from tests.fixtures.paths import DEFAULT_CONFIG

    rows = measure_samples(config.generation, ["ttbar"], n_events=50)
    assert len(rows) == 1 and isinstance(rows[0], CrossSectionMeasurement)
    r = rows[0]
    assert r.sample == "ttbar" and r.events == r.kept == 50 and r.filter_efficiency == 1.0
    assert r.sigma_pb == pytest.approx(r.sigma_gen_pb) and 200 < r.sigma_pb < 1000
    assert cross_section_table(rows).splitlines()[1].split()[:4] == ["ttbar", "ttbar", "50", "50"]
    with pytest.raises(ConfigError, match="nosuch"):
        measure_samples(config.generation, ["nosuch"])
    from analysis.cli import main as hepline

    assert hepline(["xsec", str(DEFAULT_CONFIG), "ttbar", "-n", "20"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("ttbar")
