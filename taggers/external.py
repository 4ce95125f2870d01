"""External discriminants: any b-tagging score and truth label of a supported file, as jets
that :mod:`taggers.performance` evaluates like hepline's own taggers.

For example ``Jet_btagDeepFlavB`` and ``Jet_hadronFlavour`` of a CMS NanoAOD file, the
decorated ``Jet_btag_dl1`` and ``Jet_hadronConeExclTruthLabelID`` of a hepline ntuple, or a
jets variable of a training-dataset-dumper HDF5 file (``GN2v01_pb`` with
``HadronConeExclTruthLabelID``). :func:`read_external` reads the discriminant, the label and
the jet pT and η (and an optional weight), keeps the jets in the tagging acceptance
(``taggers.jets``: pT > 20 GeV, |η| < 2.5) and returns an :class:`ExternalJets`;
:func:`external_predictions` turns it into the :class:`~taggers.models.Predictions` that
:func:`taggers.performance.evaluate_predictions` takes (:func:`taggers.evaluate.evaluate_external`
writes the working-point file from it).

ROOT files (hepline, NanoAOD, Delphes: :func:`analysis.io.ingest.read_arrays`): the branches
of one jet collection, ``<Coll>_<field>`` (or ``<Coll>.<field>``); pT and η are the
collection's ``pt``/``PT`` and ``eta``/``Eta`` unless named (GeV). HDF5 files: fields of the
``jets`` dataset; pT in MeV (converted). Either way a median jet pT outside 1–10⁴ GeV is
refused (:func:`taggers.features.check_pt_scale`).

Labels: the flavour codes of :data:`taggers.performance.FLAVOURS` (5 b, 4 c, 0 light,
15 τ), which CMS ``hadronFlavour`` (5, 4, 0) and ATLAS ``HadronConeExclTruthLabelID`` share;
jets with other codes are kept but belong to no flavour.

ATLAS PHYSLITE: ``discriminant`` names a tagger of the jets' b-tagging container
(``DL1dv01``, ``GN2v00``); its D = ln(p_b / (f_c p_c + (1 − f_c) p_u)) is evaluated with the
given f_c (:func:`analysis.io.views.physlite_btagging`, ``ftag_discriminant``), the jets'
pT converted from MeV.

The HH selection takes the working points of a hepline ntuple from the working-point file
(``--working-points``), and those of CMS NanoAOD and ATLAS PHYSLITE from the config
(``selection.objects.{nanoaod,physlite}.jet.btag``): :func:`selection_btag_config` turns an
external evaluation into that config section (the cuts, the 2-tag and 1-tag working points
and the MC ``efficiencies``), which :func:`taggers.evaluate.evaluate_external` writes as
``selection_btag.json`` for ``hepline select --set selection.objects.nanoaod.jet.btag=...``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.core.checks import check_finite
from analysis.core.config.taggers import TaggersJets
from analysis.core.errors import ConfigError, InputError, InputFileError
from taggers.features import TaggingDataset, check_pt_scale
from taggers.ftag import MEV_PER_GEV, is_hdf5
from taggers.models import BRANCH_PREFIX, Predictions

log = logging.getLogger(__name__)

__all__ = [
    "NANOAOD_BTAG_KEY",
    "PHYSLITE_BTAG_KEY",
    "ExternalJets",
    "external_name",
    "external_predictions",
    "read_external",
    "selection_btag_config",
]

#: the config sections of the HH selection's NanoAOD and PHYSLITE b-tagging (:func:`selection_btag_config`)
NANOAOD_BTAG_KEY = "selection.objects.nanoaod.jet.btag"
PHYSLITE_BTAG_KEY = "selection.objects.physlite.jet.btag"


@dataclass
class ExternalJets:
    """Jets with an external discriminant, in the tagging acceptance.

    Attributes:
        name: the tagger's name in the outputs (``working_points.json``: ``taggers.<name>``).
        variable: the discriminant's branch or field (the WP file's ``variable``).
        label_variable: the truth label's branch or field.
        discriminant, label, pt (GeV), eta, weight: per jet.
        sources: the files.
        jets_read: jets before the acceptance cut.
        formats: the format of each file (``hepline``, ``nanoaod``, ``delphes``, ...;
            ``hdf5`` for a dumper file).
    """

    name: str
    variable: str
    label_variable: str
    discriminant: np.ndarray
    label: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    weight: np.ndarray
    sources: list[str] = field(default_factory=list)
    jets_read: int = 0
    formats: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.discriminant.size)


def external_name(variable: str) -> str:
    """The default tagger name of a discriminant: ``Jet_btag_dl1`` → ``dl1`` (the decorated
    hepline branches, so that the HH selection finds ``Jet_btag_<tagger>``), else the field
    without its collection (``Jet_btagDeepFlavB`` → ``btagDeepFlavB``)."""
    if variable.startswith(BRANCH_PREFIX):
        return variable[len(BRANCH_PREFIX):]
    for sep in ("_", "."):
        if sep in variable:
            return variable.split(sep, 1)[1]
    return variable


def _collection(variable: str) -> tuple[str, str]:
    for sep in ("_", "."):
        if sep in variable:
            return variable.split(sep, 1)[0], sep
    return "", ""


def _root_branches(path: str) -> tuple[str, set[str]]:
    """The format and the events tree's branch names (TTree or RNTuple) of a ROOT file."""
    from analysis.io.ingest import inspect_file

    info = inspect_file(path)
    return info.format, set(info.branches)


def _pick(candidates: Sequence[str], have: set[str], path: str, what: str) -> str:
    for c in candidates:
        if c in have:
            return c
    raise InputFileError(path, f"no {what} branch (tried {', '.join(candidates)})")


def _read_root(path: str, names: dict[str, str | None]) -> dict[str, np.ndarray]:
    import awkward as ak

    from analysis.io.ingest import read_arrays

    wanted = [b for b in names.values() if b is not None]
    arrays = read_arrays(path, wanted)
    out: dict[str, np.ndarray] = {}
    n_jets = ak.num(arrays[names["discriminant"]], axis=1)
    for key, branch in names.items():
        if branch is None:
            continue
        col = arrays[branch]
        if col.ndim == 1:  # a per-event value (e.g. genWeight): one per jet
            col = ak.broadcast_arrays(col, arrays[names["discriminant"]])[0]
        if not np.array_equal(ak.to_numpy(ak.num(col, axis=1)), ak.to_numpy(n_jets)):
            raise InputFileError(path, f"{branch} is not a branch of the collection of {names['discriminant']}")
        out[key] = np.asarray(ak.to_numpy(ak.flatten(col)))
    return out


def _read_h5(path: str, names: dict[str, str | None]) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        if "jets" not in f:
            raise InputFileError(path, "no 'jets' dataset (not a dumper-format file)")
        jets = f["jets"]
        have = set(jets.dtype.names or ())
        for branch in names.values():
            if branch is not None and branch not in have:
                raise InputFileError(path, f"jets/{branch} is missing")
        fields = [b for b in names.values() if b is not None]
        data = jets.fields(fields)[()] if len(fields) > 1 else None
        if data is None:
            data = jets[()]
    return {key: np.asarray(data[branch]) for key, branch in names.items() if branch is not None}


def _read_physlite(path: str, branches: set[str], tagger: str, label: str, weight: str | None,
                   fraction_c: float | None) -> dict[str, np.ndarray]:
    """Per jet: the PHYSLITE tagger's discriminant, the label, pT (GeV), η and the weight."""
    import awkward as ak

    from analysis.io.formats import PHYSLITE_BTAGGING, require_physlite_btagging, to_gev
    from analysis.io.ingest import inspect_file, open_events
    from analysis.io.views import ftag_discriminant, object_view, physlite_btagging

    taggers = require_physlite_btagging(inspect_file(path))
    if tagger not in taggers:
        raise InputFileError(path, f"{PHYSLITE_BTAGGING} has no tagger {tagger!r} (it has: {', '.join(taggers)}); "
                                   "--discriminant names the tagger for PHYSLITE")
    if fraction_c is None:
        raise ConfigError(f"{path}: the discriminant of PHYSLITE tagger {tagger} needs its f_c (--fc)")
    if weight not in (None, "mcEventWeights"):
        raise ConfigError(f"{path}: --weight {weight}: PHYSLITE takes only mcEventWeights (the nominal "
                          "generator weight)")
    if f"AnalysisJetsAuxDyn.{label}" not in branches:
        raise InputFileError(path, f"missing branch AnalysisJetsAuxDyn.{label} (the jets' truth label)")
    events = open_events(path, format="physlite", mode="eager")
    jets = events.Jets
    bt = physlite_btagging(events, jets)
    d = ftag_discriminant(bt[f"{tagger}_pb"], bt[f"{tagger}_pc"], bt[f"{tagger}_pu"], float(fraction_c))
    # a jet whose link is invalid has no discriminant: the lowest value, never tagged
    flat_d = np.asarray(ak.to_numpy(ak.flatten(ak.fill_none(d, -np.inf))), dtype=np.float64)
    w_evt = object_view(events, "physlite").weight if weight is not None else np.ones(len(events))
    n_jets = np.asarray(ak.num(jets, axis=1), dtype=np.int64)
    return {
        "discriminant": np.where(np.isfinite(flat_d), flat_d, np.finfo(np.float64).min),
        "label": np.asarray(ak.to_numpy(ak.flatten(jets[label]))),
        "pt": np.asarray(ak.to_numpy(ak.flatten(to_gev(jets.pt))), dtype=np.float64),
        "eta": np.asarray(ak.to_numpy(ak.flatten(jets.eta)), dtype=np.float64),
        "weight": np.repeat(np.asarray(w_evt, dtype=np.float64), n_jets),
    }


def read_external(
    paths: Sequence[str | os.PathLike[str]],
    discriminant: str,
    label: str,
    acceptance: TaggersJets,
    *,
    name: str | None = None,
    weight: str | None = None,
    pt: str | None = None,
    eta: str | None = None,
    fraction_c: float | None = None,
) -> ExternalJets:
    """Read an external discriminant and truth label per jet, in the tagging acceptance.

    Args:
        paths: ROOT files of a supported format, or dumper-format HDF5 files.
        discriminant: its branch (``Jet_btagDeepFlavB``) or HDF5 jets field; for ATLAS
            PHYSLITE a tagger of the jets' b-tagging container (``DL1dv01``, ``GN2v00``),
            whose D = ln(p_b / (f_c p_c + (1 − f_c) p_u)) is evaluated
            (:func:`analysis.io.views.physlite_btagging`, ``ftag_discriminant``).
        label: the truth-flavour branch or field (``Jet_hadronFlavour``; PHYSLITE: a field
            of ``Jets``, ``HadronConeExclTruthLabelID``).
        acceptance: ``taggers.jets`` (pT, |η| cuts, GeV).
        name: the tagger's name (default :func:`external_name`).
        weight: a per-jet or per-event weight branch (default: unit weights; PHYSLITE: only
            ``mcEventWeights``, the nominal generator weight).
        pt, eta: the jet pT (GeV in ROOT files, MeV in HDF5) and η branches (default: the
            discriminant's collection's; PHYSLITE: the jets', MeV converted).
        fraction_c: f_c of a PHYSLITE tagger's discriminant (required for PHYSLITE).

    Returns:
        The :class:`ExternalJets`.

    Raises:
        InputError: no files. InputFileError: a missing branch, a branch of another
            collection, jet pT on the wrong scale, a PHYSLITE file without the tagger.
            ConfigError: a PHYSLITE tagger without ``fraction_c``. NonFiniteInputError:
            NaN/inf in the discriminant, pT or η.
    """
    if not paths:
        raise InputError("external discriminant: no input files")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("discriminant", "label", "pt", "eta", "weight")}
    sources, formats = [], []
    for p in paths:
        path = os.fspath(p)
        sources.append(path)
        if is_hdf5(path):
            formats.append("hdf5")
            names: dict[str, str | None] = {"discriminant": discriminant, "label": label, "pt": pt or "pt",
                                            "eta": eta or "eta", "weight": weight}
            cols = _read_h5(path, names)
            cols["pt"] = np.asarray(cols["pt"], np.float64) / MEV_PER_GEV
            check_pt_scale(cols["pt"], source=path, variable=f"jets/{names['pt']}", file_unit="MeV")
        else:
            fmt, have = _root_branches(path)
            formats.append(fmt)
            if fmt == "physlite":
                names = {"discriminant": discriminant, "label": label, "pt": "Jets.pt", "eta": "Jets.eta",
                         "weight": weight}
                cols = _read_physlite(path, have, discriminant, label, weight, fraction_c)
            else:
                coll, sep = _collection(discriminant)
                names = {
                    "discriminant": discriminant,
                    "label": label,
                    "pt": pt or _pick([f"{coll}{sep}pt", f"{coll}{sep}PT"], have, path, "jet pT"),
                    "eta": eta or _pick([f"{coll}{sep}eta", f"{coll}{sep}Eta"], have, path, "jet eta"),
                    "weight": weight,
                }
                cols = _read_root(path, names)
            check_pt_scale(np.asarray(cols["pt"], np.float64), source=path, variable=str(names["pt"]))
        for key in ("discriminant", "pt", "eta"):
            check_finite(np.asarray(cols[key], np.float64), str(names[key]), source=path, entry_name="jet")
        if weight is not None:
            check_finite(np.asarray(cols["weight"], np.float64), weight, source=path, entry_name="jet")
        n = len(cols["discriminant"])
        parts["discriminant"].append(np.asarray(cols["discriminant"], np.float64))
        parts["label"].append(np.asarray(cols["label"]).astype(np.int32))
        parts["pt"].append(np.asarray(cols["pt"], np.float64))
        parts["eta"].append(np.asarray(cols["eta"], np.float64))
        parts["weight"].append(np.asarray(cols["weight"], np.float64) if weight is not None else np.ones(n))
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    keep = (cat["pt"] > acceptance.pt_min_gev) & (np.abs(cat["eta"]) < acceptance.abs_eta_max)
    log.info("%s: %d of %d jets in the acceptance", discriminant, int(keep.sum()), keep.size)
    return ExternalJets(
        name=name or external_name(discriminant), variable=discriminant, label_variable=label,
        discriminant=cat["discriminant"][keep], label=cat["label"][keep].astype(np.int32),
        pt=cat["pt"][keep], eta=cat["eta"][keep], weight=cat["weight"][keep],
        sources=sources, jets_read=int(keep.size), formats=formats,
    )


def external_predictions(jets: ExternalJets) -> Predictions:
    """The :class:`~taggers.models.Predictions` of the external tagger (no tracks)."""
    n = len(jets)
    ds = TaggingDataset(
        jets={"pt": jets.pt.astype(np.float32), "eta": jets.eta.astype(np.float32), "label": jets.label,
              "weight": jets.weight.astype(np.float32)},
        tracks={"valid": np.zeros((n, 0), dtype=bool)},
        meta={"sources": list(jets.sources), "external": {"variable": jets.variable, "label": jets.label_variable}},
    )
    return Predictions(dataset=ds, discriminants={jets.name: np.asarray(jets.discriminant, np.float64)})


def selection_btag_config(
    entry: Mapping[str, Any],
    discriminant: str,
    *,
    fmt: str = "nanoaod",
    two_tag_wp: str,
    one_tag_wp: str,
    collection: str = "Jet",
    fraction_c: float | None = None,
    container: str | None = None,
) -> tuple[str, dict[str, Any]] | None:
    """The HH selection's b-tagging config section of an external evaluation: the measured
    cuts and MC efficiencies instead of the era's (NanoAOD) or the calibration's (PHYSLITE).

    Args:
        entry: the tagger's entry of the working-point file (``taggers.<name>``:
            ``working_points.<wp>`` with ``cut``, ``b_efficiency_measured``,
            ``c_efficiency``/``c_rejection``, ``light_efficiency``/``light_rejection``).
        discriminant: the evaluated branch, ``<collection>_<field>`` (NanoAOD:
            ``Jet_btagDeepFlavB``), or the tagger (PHYSLITE: ``DL1dv01``).
        fmt: ``nanoaod`` or ``physlite``.
        two_tag_wp, one_tag_wp: the working points of the 2-tag and 1-tag categories (names of
            ``entry``'s working points; ``selection.hh_yybb.btag``'s by default).
        collection: the selection's NanoAOD jet collection (``selection.objects.nanoaod.jet.collection``).
        fraction_c, container: PHYSLITE: the f_c of the evaluated discriminant and the
            b-tagging container.

    Returns:
        ``(key, section)``: :data:`NANOAOD_BTAG_KEY` with ``{"source": "config", "variable",
        "working_points", "two_tag_wp", "one_tag_wp", "efficiencies"}``, or
        :data:`PHYSLITE_BTAG_KEY` with ``{"source", "container", "tagger", "fraction_c",
        "working_points", ...}`` (every working point of ``entry``); None for another format,
        a NanoAOD discriminant that is not a branch of ``collection``, or a category's working
        point that was not evaluated.
    """
    points = entry.get("working_points") or {}
    if two_tag_wp not in points or one_tag_wp not in points:
        return None

    def efficiency(point: Mapping[str, Any], flavour: str) -> float:
        if point.get(f"{flavour}_efficiency") is not None:
            return float(point[f"{flavour}_efficiency"])
        if point.get(f"{flavour}_rejection_lower_limit"):
            return 0.0  # no jet of the flavour passed
        rej = point.get(f"{flavour}_rejection")
        return 1.0 / float(rej) if rej else 0.0

    common = {
        "working_points": {wp: float(p["cut"]) for wp, p in points.items()},
        "two_tag_wp": two_tag_wp,
        "one_tag_wp": one_tag_wp,
        "efficiencies": {
            wp: {"b": float(p.get("b_efficiency_measured", p.get("b_efficiency"))),
                 "c": efficiency(p, "c"), "light": efficiency(p, "light")}
            for wp, p in points.items()
        },
    }
    if fmt == "nanoaod":
        prefix = f"{collection}_"
        if not discriminant.startswith(prefix):
            return None
        return NANOAOD_BTAG_KEY, {"source": "config", "variable": discriminant[len(prefix):], **common}
    if fmt == "physlite" and fraction_c is not None and container is not None:
        return PHYSLITE_BTAG_KEY, {"source": "config", "container": container, "tagger": discriminant,
                                   "fraction_c": float(fraction_c), **common}
    return None
