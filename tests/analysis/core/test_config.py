"""analysis.core.config: section validation."""

from __future__ import annotations

import pytest

from analysis.core import config as C


def test_a_section_validated_alone_gets_its_defaults():
    first = C.validate_section("selection", {"hh_yybb": {"chunksize": 1234}})
    assert first["hh_yybb"]["chunksize"] == 1234 and "photons" in first["hh_yybb"]


def test_an_invalid_section_names_the_key_in_one_line():
    with pytest.raises(C.ConfigError, match="engine") as err:
        C.validate_section("selection", {"hh_yybb": {"engine": "fast"}})
    assert "\n" not in str(err.value)
