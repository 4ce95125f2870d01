"""Certified-luminosity masks for collision data (the CMS "golden JSON" format).

A golden JSON maps each run number (a string) to the luminosity-block ranges certified
good, ``{"297050": [[12, 137], [193, 776]], ...}`` (inclusive ranges). :func:`load_lumi_mask`
checks the file and builds coffea's :class:`coffea.lumi_tools.LumiMask` on it: a callable
``mask(run, luminosityBlock) -> bool array`` (numpy in, numpy out; awkward in, awkward out)::

    mask = load_lumi_mask("Cert_294927-306462_13TeV_EOY2017ReReco_Collisions17_JSON.txt")
    good = events[mask(events.run, events.luminosityBlock)]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from coffea.lumi_tools import LumiMask

from analysis.core.errors import InputFileError

__all__ = ["LumiMask", "load_lumi_mask", "read_lumi_json"]


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def read_lumi_json(path: str | os.PathLike[str]) -> dict[int, list[tuple[int, int]]]:
    """The certified ranges of a golden JSON file: ``{run: [(first, last), ...]}``.

    Raises:
        InputFileError: one line naming the file and the problem: missing or unreadable,
            not valid JSON (with line and column), not an object of run → ranges, a run
            number that is not an integer, or a range that is not ``[first, last]`` with
            ``1 <= first <= last``.
    """
    p = Path(path)
    name = os.fspath(path)
    if not p.is_file():
        raise InputFileError(name, "lumi mask file not found" if not p.exists() else "lumi mask is not a regular file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputFileError(name, f"lumi mask is not a text file ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise InputFileError(name, f"lumi mask is not valid JSON ({exc.msg}: line {exc.lineno} "
                                   f"column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise InputFileError(name, "lumi mask is not a JSON object of run number -> luminosity-block ranges")
    out: dict[int, list[tuple[int, int]]] = {}
    for run, ranges in data.items():
        try:
            run_number = int(run)
        except ValueError:
            raise InputFileError(name, f"lumi mask key {run!r} is not a run number") from None
        if not isinstance(ranges, list):
            raise InputFileError(name, f"lumi mask run {run}: expected a list of [first, last] "
                                       f"luminosity-block ranges, got {type(ranges).__name__}")
        pairs = []
        for r in ranges:
            if not (isinstance(r, list) and len(r) == 2 and all(map(_is_int, r)) and 1 <= r[0] <= r[1]):
                raise InputFileError(name, f"lumi mask run {run}: range {r!r} is not [first, last] "
                                           "with 1 <= first <= last")
            pairs.append((int(r[0]), int(r[1])))
        out[run_number] = pairs
    return out


def load_lumi_mask(path: str | os.PathLike[str]) -> LumiMask:
    """coffea's :class:`~coffea.lumi_tools.LumiMask` of a golden JSON file, checked first.

    The result is called as ``mask(run, luminosityBlock)`` and gives True for the certified
    pairs. It is picklable (futures and dask workers).

    Raises:
        InputFileError: the file is missing or not a valid golden JSON (:func:`read_lumi_json`).
    """
    read_lumi_json(path)
    return LumiMask(os.fspath(path))
