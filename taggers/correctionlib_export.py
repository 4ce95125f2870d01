"""The working points as a correctionlib JSON: cuts, MC efficiency maps and scale factors.

``working_points.json`` (:mod:`taggers.evaluate`) is hepline's documented file; this module
writes the same numbers as a correctionlib ``CorrectionSet`` (schema v2), which any analysis
framework reads with ``correctionlib.CorrectionSet.from_file(path)[name].evaluate(...)``.
Per tagger ``<t>`` (the keys of the file's ``taggers``):

* ``<t>_cut``: input ``working_point`` (string, ``"70"``) → the discriminant cut (a jet is
  tagged when ``<variable> > cut``);
* ``<t>_mc_eff``: inputs ``working_point``, ``flavor`` (int: 5 b, 4 c, 0 light, 15 τ; the
  HadronConeExclTruthLabelID, or CMS hadronFlavour for 0/4/5), ``pt`` (GeV) → the MC tagging
  efficiency of the test jets in the pT bin (``efficiency_vs_pt``); a bin without test jets
  takes the flavour's inclusive efficiency; pT beyond the edges takes the nearest bin
  (``flow: clamp``), as the HH selection does;
* ``<t>_sf``: inputs ``systematic`` (``central``, ``up``, ``down``), ``working_point``,
  ``flavor``, ``pt`` → the data/MC scale factor. hepline has no data to measure them: these
  are the configured ones, ``selection.hh_yybb.btag.scale_factors`` (nominal ± uncertainty
  per flavour, τ jets take c's), the same the HH selection applies; constant in pT.

:func:`correction_set` builds the set from the working-point dict, :func:`write_correctionlib`
writes it atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analysis.core.atomic import write_text

__all__ = ["CORRECTIONLIB_FILE", "FLAVOR_CODES", "SYSTEMATICS", "correction_set", "write_correctionlib"]

CORRECTIONLIB_FILE = "working_points.correctionlib.json"
#: flavour name -> the ``flavor`` input (HadronConeExclTruthLabelID)
FLAVOR_CODES: dict[str, int] = {"b": 5, "c": 4, "light": 0, "tau": 15}
SYSTEMATICS: tuple[str, ...] = ("central", "up", "down")


def _inclusive(point: Mapping[str, Any], flavour: str) -> float | None:
    """The inclusive MC efficiency of ``flavour`` at a working point of the file."""
    if flavour == "b":
        value = point.get("b_efficiency_measured", point.get("b_efficiency"))
    elif f"{flavour}_efficiency" in point:
        value = point[f"{flavour}_efficiency"]
    elif point.get(f"{flavour}_rejection"):
        value = 1.0 / float(point[f"{flavour}_rejection"])
    else:
        value = None
    return None if value is None else float(value)


def _scale_factors(sf: Any) -> dict[str, tuple[float, float]]:
    """``{flavour: (nominal, uncertainty)}`` of a ``BtagScaleFactors`` section or its dict."""
    d = sf.to_dict() if hasattr(sf, "to_dict") else dict(sf)
    out = {fl: (float(d[fl]["nominal"]), float(d[fl]["uncertainty"])) for fl in ("b", "c", "light")}
    out["tau"] = out["c"]
    return out


def correction_set(
    working_points: Mapping[str, Any],
    scale_factors: Any,
    *,
    description: str = "hepline b-tagging working points",
) -> Any:
    """The ``correctionlib.schemav2.CorrectionSet`` of a working-point dict.

    Args:
        working_points: the content of ``working_points.json`` (``{"taggers": {...}}``).
        scale_factors: ``selection.hh_yybb.btag.scale_factors`` (or its dict form
            ``{flavour: {"nominal", "uncertainty"}}``).
        description: the set's description.

    Returns:
        The validated correction set (pydantic model).
    """
    import correctionlib.schemav2 as cs

    sfs = _scale_factors(scale_factors)
    wp_input = cs.Variable(name="working_point", type="string", description="b-jet efficiency WP, e.g. '70'")
    fl_input = cs.Variable(name="flavor", type="int",
                           description="truth flavour: 5 b, 4 c, 0 light, 15 tau (HadronConeExclTruthLabelID)")
    pt_input = cs.Variable(name="pt", type="real", description="jet pT [GeV]")
    sys_input = cs.Variable(name="systematic", type="string", description="central, up or down")
    corrections = []
    for tagger, entry in working_points["taggers"].items():
        points: Mapping[str, Any] = entry["working_points"]
        variable = entry.get("variable")
        corrections.append(cs.Correction(
            name=f"{tagger}_cut", version=1,
            description=f"{tagger}: discriminant cut per working point (tagged: {variable} > cut)",
            inputs=[wp_input], output=cs.Variable(name="cut", type="real"),
            data=cs.Category(nodetype="category", input="working_point",
                             content=[cs.CategoryItem(key=wp, value=float(p["cut"])) for wp, p in points.items()]),
        ))
        maps = entry.get("efficiency_vs_pt") or {}
        edges = [float(x) for x in maps.get("pt_edges_gev", [0.0, float("inf")])]
        if len(edges) < 2 or edges[-1] == float("inf"):
            edges = [0.0, 1.0e9]
        per_wp = maps.get("working_points", {})
        eff_items = []
        for wp, point in points.items():
            fl_items = []
            for fl, code in FLAVOR_CODES.items():
                inclusive = _inclusive(point, fl)
                values = (per_wp.get(wp) or {}).get(fl)
                if inclusive is None and values is None:
                    continue
                n_bins = len(edges) - 1
                content = [inclusive if values is None or values[k] is None else float(values[k])
                           for k in range(n_bins)]
                if any(v is None for v in content):
                    continue
                fl_items.append(cs.CategoryItem(key=code, value=cs.Binning(
                    nodetype="binning", input="pt", edges=list[Any](edges), content=list[Any](content),
                    flow="clamp")))
            eff_items.append(cs.CategoryItem(key=wp, value=cs.Category(nodetype="category", input="flavor",
                                                                        content=fl_items)))
        corrections.append(cs.Correction(
            name=f"{tagger}_mc_eff", version=1,
            description=f"{tagger}: MC b-tagging efficiency per working point, flavour and jet pT "
                        "(test split; empty pT bins take the inclusive efficiency)",
            inputs=[wp_input, fl_input, pt_input], output=cs.Variable(name="efficiency", type="real"),
            data=cs.Category(nodetype="category", input="working_point", content=eff_items),
        ))
        sf_items = []
        for syst, sign in zip(SYSTEMATICS, (0.0, 1.0, -1.0), strict=True):
            per_fl = [cs.CategoryItem(key=code, value=sfs[fl][0] + sign * sfs[fl][1])
                      for fl, code in FLAVOR_CODES.items()]
            sf_items.append(cs.CategoryItem(key=syst, value=cs.Category(nodetype="category", input="flavor",
                                                                         content=per_fl)))
        corrections.append(cs.Correction(
            name=f"{tagger}_sf", version=1,
            description=f"{tagger}: data/MC scale factor (configured, not measured: "
                        "selection.hh_yybb.btag.scale_factors; tau uses c; the same for every "
                        "working point and pT)",
            inputs=[sys_input, wp_input, fl_input, pt_input], output=cs.Variable(name="sf", type="real"),
            data=cs.Category(nodetype="category", input="systematic", content=sf_items),
        ))
    return cs.CorrectionSet(schema_version=2, description=description, corrections=corrections)


def write_correctionlib(
    path: str | os.PathLike[str],
    working_points: Mapping[str, Any],
    scale_factors: Any,
    *,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write :func:`correction_set` of ``working_points`` to ``path`` (JSON, atomically).

    Returns:
        ``path``.
    """
    cset = correction_set(working_points, scale_factors)
    out = Path(path)
    write_text(out, cset.model_dump_json(exclude_unset=True, indent=1) + "\n", provenance=provenance)
    return out
