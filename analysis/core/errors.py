"""The errors hepline reports to a user: one family, each naming the file and the field.

Every known failure of bad input, configuration or model files raises a subclass of
:class:`HeplineError`. The ``hepline`` command prints such an error as one line
(``hepline: error: <message>``) and exits with code 2; ``--debug`` adds the traceback.
Anything else is a bug and keeps its traceback.

::

    HeplineError
    ├── ConfigError          a config file, key or value (the key path and the schema's complaint)
    ├── InputError           bad input data (the file and the branch, key or feature)
    │   ├── InputFileError   a file that cannot be used at all (missing, corrupt, wrong format)
    │   └── NonFiniteInputError   NaN/inf where a finite value is needed
    ├── ModelMismatchError   a model, normaliser or working-point file from another training
    ├── WorkingPointError    a working-point file that does not hold what a stage needs
    └── ProvenanceError      an output without a provenance record

The classes also derive from the built-in exception a caller would expect (``ValueError``,
``LookupError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import os

__all__ = [
    "ConfigError",
    "HeplineError",
    "InputError",
    "InputFileError",
    "ModelMismatchError",
    "NonFiniteInputError",
    "ProvenanceError",
    "WorkingPointError",
]


class HeplineError(Exception):
    """A known failure, reported to the user in one line (file and field) with exit code 2."""


class ConfigError(HeplineError, ValueError):
    """A configuration file is missing, unreadable or does not match the schema."""


class InputError(HeplineError, ValueError):
    """Bad input data: the message names the file and the branch, key or feature."""


class InputFileError(InputError):
    """An input file that cannot be used: missing, unreadable, corrupt, empty, truncated or
    not in the expected layout.

    ``str(err)`` is ``"<path>: <reason>"``; ``err.path`` and ``err.reason`` hold the parts.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # picklable for process pools
        return (type(self), (self.path, self.reason))


class NonFiniteInputError(InputError):
    """NaN or inf in an input where a finite value is needed (file, field and first entry)."""


class ModelMismatchError(HeplineError, ValueError):
    """A model, normaliser or working-point file that does not belong to the data or the
    other models it is used with (another training, architecture or feature set)."""


class WorkingPointError(HeplineError, ValueError):
    """A working-point file that lacks a tagger, working point or efficiency a stage needs."""


class ProvenanceError(HeplineError, LookupError):
    """An output file without a readable provenance record."""
