"""How much of the public API is typed: the share of public functions that are fully
annotated, in modules that mypy checks cleanly (docs/benchmarks.md, "Layout")::

    python -m tests.benchmarks.api_typing            # a table and the totals
    python -m tests.benchmarks.api_typing --json

A *public function* is a function or method named in a public module's ``__all__`` (methods
of the classes there, without a leading underscore). It is *typed* when every parameter but
``self``/``cls`` and the return value carry an annotation (``__init__`` needs no return
annotation, as for mypy), and *mypy-clean* when, in
addition, mypy (the ``[tool.mypy]`` settings of ``pyproject.toml``) reports no error in its
module. Packages without ``__all__`` count nothing.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import subprocess
import sys
from collections import Counter
from typing import Any

from tests.fixtures.paths import REPO
from tests.test_public_api import PUBLIC


def _typed(func: Any) -> bool:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return True  # builtins and C functions: typed by their stubs
    params = [p for n, p in sig.parameters.items() if n not in ("self", "cls")]
    returns = sig.return_annotation is not inspect.Signature.empty or func.__name__ == "__init__"
    return returns and all(p.annotation is not inspect.Parameter.empty for p in params)


def public_functions() -> dict[str, list[tuple[str, bool]]]:
    """``{module: [(qualified name, typed)]}`` over the public API."""
    out: dict[str, list[tuple[str, bool]]] = {}
    for name in PUBLIC:
        module = importlib.import_module(name)
        rows = []
        for attr in getattr(module, "__all__", None) or []:
            obj = getattr(module, attr)
            if inspect.isfunction(obj) and obj.__module__ == name:
                rows.append((attr, _typed(obj)))
            elif inspect.isclass(obj) and obj.__module__ == name:
                for meth_name, meth in vars(obj).items():
                    if meth_name.startswith("_") and meth_name != "__init__":
                        continue
                    fn = meth.__func__ if isinstance(meth, (classmethod, staticmethod)) else meth
                    if isinstance(fn, property):
                        fn = fn.fget
                    if inspect.isfunction(fn) and fn.__module__ == name:
                        rows.append((f"{attr}.{meth_name}", _typed(fn)))
        out[name] = rows
    return out


def mypy_errors() -> Counter[str]:
    """mypy errors per module (the project's settings)."""
    res = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True, check=False)
    errors: Counter[str] = Counter()
    for line in res.stdout.splitlines():
        m = re.match(r"^([\w/]+)\.py:\d+: error:", line)
        if m:
            errors[m.group(1).replace("/", ".").removesuffix(".__init__")] += 1
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the per-module rows as JSON")
    args = parser.parse_args(argv)
    funcs = public_functions()
    errors = mypy_errors()
    rows = []
    for module, items in funcs.items():
        if not items:
            continue
        typed = sum(t for _, t in items)
        rows.append({"module": module, "public_functions": len(items), "typed": typed,
                     "mypy_errors": errors.get(module, 0),
                     "mypy_clean_typed": typed if errors.get(module, 0) == 0 else 0})
    total = sum(r["public_functions"] for r in rows)
    typed = sum(r["typed"] for r in rows)
    clean = sum(r["mypy_clean_typed"] for r in rows)
    summary = {"public_functions": total, "typed": typed, "mypy_clean_typed": clean,
               "typed_share": typed / total if total else None,
               "mypy_clean_share": clean / total if total else None,
               "mypy_errors": sum(errors.values())}
    if args.json:
        print(json.dumps({"modules": rows, "summary": summary}, indent=2))  # noqa: T201
    else:
        print("| module | public functions | typed | mypy errors |\n|---|---:|---:|---:|")  # noqa: T201
        for r in rows:
            print(f"| {r['module']} | {r['public_functions']} | {r['typed']} | {r['mypy_errors']} |")  # noqa: T201
        print(f"\n{typed}/{total} public functions typed ({summary['typed_share']:.1%}); "  # noqa: T201
              f"{clean}/{total} typed and in mypy-clean modules ({summary['mypy_clean_share']:.1%}); "
              f"{summary['mypy_errors']} mypy errors in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
