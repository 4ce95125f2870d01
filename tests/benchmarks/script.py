"""Running a benchmark module as a script (``python -m tests.benchmarks.<module>``)."""

from __future__ import annotations

import importlib
from typing import NoReturn

__all__ = ["run_module_main"]


def run_module_main(module: str) -> NoReturn:
    """Exit with ``module.main()`` of the importable module, for a benchmark module's
    ``if __name__ == "__main__":`` block.

    Run with ``python -m``, a module's code is a second module named ``__main__``. A coffea
    processor class defined there is not importable, so coffea's runner, which pickles the
    processor for every chunk (``cloudpickle``), pickles the class and every function it
    reaches by value: ≈ 105 kB and ≈ 19 ms of CPU per chunk for the HH selection instead of
    15 kB and 0.25 ms (docs/hh_yybb.md). Going through the importable module makes the class
    the module's own, pickled by reference.
    """
    raise SystemExit(importlib.import_module(module).main())
