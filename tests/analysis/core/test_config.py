"""analysis.core.config: section validation and its per-process memo."""

from __future__ import annotations

import pytest

from analysis.core import config as C
def test_validated_section_is_memoised_but_returned_as_a_copy():
    C._SECTION_CACHE.clear()
    raw = {"hh_yybb": {"chunksize": 1234}}
    first = C.validate_section("selection", raw)
    assert first["hh_yybb"]["chunksize"] == 1234 and "photons" in first["hh_yybb"]  # defaults filled
    assert len(C._SECTION_CACHE) == 1
    first["hh_yybb"]["chunksize"] = -1  # a caller mutating its copy changes nothing later
    second = C.validate_section("selection", raw)
    assert second["hh_yybb"]["chunksize"] == 1234 and second is not first
    assert second == C._validate_section("selection", raw, source="x")  # same as validating again
    other = C.validate_section("selection", {"hh_yybb": {"chunksize": 99}})
    assert other["hh_yybb"]["chunksize"] == 99 and len(C._SECTION_CACHE) == 2


def test_invalid_section_raises_every_time():
    bad = {"hh_yybb": {"engine": "fast"}}
    for _ in range(2):
        with pytest.raises(C.ConfigError, match="engine"):
            C.validate_section("selection", bad)
    assert not any(k[1] == '{"hh_yybb":{"engine":"fast"}}' for k in C._SECTION_CACHE)
