"""Input checks shared by every stage: one policy for NaN and inf.

hepline's policy for non-finite inputs is an error, never a silent drop: a stage that finds
NaN or inf where it needs a finite value raises :class:`~analysis.core.errors.NonFiniteInputError`
naming the source (a file, or the in-memory set), the field and the first entry that holds
one. :func:`check_finite` is the one implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import awkward as ak
import numpy as np

from analysis.core.errors import InputError, NonFiniteInputError

__all__ = ["check_finite", "check_finite_lists"]


def check_finite(
    values: np.ndarray,
    field: str | Sequence[str],
    *,
    source: str = "<memory>",
    mask: np.ndarray | None = None,
    entry: np.ndarray | None = None,
    entry_name: str = "entry",
) -> None:
    """Raise :class:`NonFiniteInputError` if ``values`` holds NaN or inf.

    Args:
        values: the array to check. With ``field`` a single name, every element belongs to
            that field; with ``field`` a sequence of names, the last axis holds those fields
            (e.g. ``(n_jets, n_tracks, n_features)``) and the first field with a bad value
            is named.
        field: the field name (a branch, feature or column), or the names along the last axis.
        source: what the values come from (a file path, or a description such as
            ``"training set"``); the message starts with it.
        mask: only entries where it is True count (shape ``values.shape`` for one field,
            ``values.shape[:-1]`` for several).
        entry: an identifier per element of the first axis (e.g. event numbers) used to name
            the first bad entry; default: its index.
        entry_name: what an entry is called in the message (``"event"``, ``"jet"``).

    Raises:
        NonFiniteInputError: ``"<source>: <field> holds N NaN/inf value(s), the first in
        <entry_name> <id>"``.
        InputError: ``field`` names do not match the last axis.
    """
    arr = np.asarray(values)
    if isinstance(field, str):
        bad = ~np.isfinite(arr)
        if mask is not None:
            bad &= np.asarray(mask, dtype=bool)
        if bad.any():
            _raise(bad, field, source, entry, entry_name)
        return
    names = list(field)
    if arr.shape[-1] != len(names):
        raise InputError(f"{source}: {arr.shape[-1]} features but {len(names)} names")
    bad = ~np.isfinite(arr)
    if mask is not None:
        bad &= np.asarray(mask, dtype=bool)[..., None]
    if bad.any():
        column = int(np.flatnonzero(bad.reshape(-1, len(names)).any(axis=0))[0])
        _raise(bad[..., column], names[column], source, entry, entry_name)


def check_finite_lists(values: Any, field: str, *, source: str, entry: np.ndarray, entry_name: str = "entry") -> None:
    """:func:`check_finite` on a jagged array, one list per entry (the objects of each event):
    the message names the entry (``entry[i]`` for list ``i``) of the first bad object."""
    counts = np.asarray(ak.to_numpy(ak.num(values, axis=1)), dtype=np.int64)
    check_finite(np.asarray(ak.to_numpy(ak.flatten(values)), dtype=np.float64), field, source=source,
                 entry=np.repeat(np.asarray(entry), counts), entry_name=entry_name)


def _raise(bad: np.ndarray, field: str, source: str, entry: np.ndarray | None, entry_name: str) -> None:
    first = int(np.argwhere(bad)[0][0])
    ident = int(entry[first]) if entry is not None else first
    raise NonFiniteInputError(
        f"{source}: {field} holds {int(bad.sum())} NaN/inf value(s), the first in {entry_name} {ident}"
    )
