"""selections.hh_yybb.packed: the PackedSelection subclass gives coffea's answers and errors."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from coffea.analysis_tools import PackedSelection as CoffeaPackedSelection

from selections.hh_yybb.packed import PackedSelection


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64"])
def test_same_words_and_requirements_as_coffea(dtype: str) -> None:
    rng = np.random.default_rng(7)
    n_masks = {"uint16": 16, "uint32": 20, "uint64": 40}[dtype]
    masks = {f"cut{i}": rng.random(1001) < rng.uniform(0.05, 0.95) for i in range(n_masks)}
    ours, theirs = PackedSelection(dtype=dtype), CoffeaPackedSelection(dtype=dtype)
    ours.add_multiple(masks)
    theirs.add_multiple(masks)
    assert isinstance(ours, CoffeaPackedSelection)
    assert ours.names == theirs.names
    np.testing.assert_array_equal(ours._data, theirs._data)
    assert ours._data.dtype == np.dtype(dtype)
    names = list(masks)
    for k in range(1, n_masks + 1, 3):
        np.testing.assert_array_equal(ours.all(*names[:k]), theirs.all(*names[:k]))
        np.testing.assert_array_equal(ours.all(*names[:k]), np.logical_and.reduce([masks[n] for n in names[:k]]))
    req = {names[0]: True, names[1]: False, names[-1]: True}
    np.testing.assert_array_equal(ours.require(**req), theirs.require(**req))
    np.testing.assert_array_equal(ours.any(*names[2:5]), theirs.any(*names[2:5]))
    assert ours.cutflow(*names[:4]).result().nevcutflow == theirs.cutflow(*names[:4]).result().nevcutflow


def test_mixed_inputs_fall_back_to_coffea() -> None:
    sel = PackedSelection()
    sel.add("a", np.array([True, False, True]))
    sel.add("b", ak.Array([True, None, False]), fill_value=True)  # option type: coffea's path
    sel.add("c", np.ma.masked_array([True, True, False], mask=[False, True, False]))
    np.testing.assert_array_equal(sel.all("a", "b"), [True, False, False])
    np.testing.assert_array_equal(sel.all("c"), [True, False, False])


def test_errors_are_coffea_errors() -> None:
    sel = PackedSelection(dtype="uint16")
    sel.add("a", np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="already exists"):
        sel.add("a", np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="different shape"):
        sel.add("b", np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="Expected a boolean array"):
        sel.add("c", np.ones(4, dtype=np.int32))
    for i in range(15):
        sel.add(f"x{i}", np.zeros(4, dtype=bool))
    with pytest.raises(RuntimeError, match="Exhausted all slots"):
        sel.add("full", np.ones(4, dtype=bool))


def test_plain_numpy_masks_skip_the_masked_ufunc(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("coffea's masked add was used for a plain numpy mask")

    monkeypatch.setattr(CoffeaPackedSelection, "add", refuse)
    sel = PackedSelection(dtype="uint64")
    sel.add_multiple({"a": np.array([True, False]), "b": np.array([True, True])})
    np.testing.assert_array_equal(sel.all("a", "b"), [True, False])


def test_packed_dtype_is_the_narrowest_that_fits() -> None:
    from selections.hh_yybb.packed import packed_dtype

    assert [packed_dtype(n) for n in (1, 16, 17, 32, 33, 64)] == ["uint16", "uint16", "uint32", "uint32",
                                                                 "uint64", "uint64"]
    with pytest.raises(ValueError, match="at most 64"):
        packed_dtype(65)
