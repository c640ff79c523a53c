"""Optional features and the extras that install them (pyproject.toml ``[project.optional-dependencies]``).

The core install screens, explains and runs cohorts on every core. What only some users need
is an extra: ``dask`` (a Dask cluster, ``--scheduler``), ``plot`` (attrition charts,
``cohort --plot``), ``parquet`` (``--results out.parquet``). :func:`require` imports one of
them or raises :class:`MissingExtra` with the one line that says how to install it.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """An optional feature whose extra is not installed; the message is one line naming it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``module`` imported, or MissingExtra: "FEATURE needs the EXTRA extra: pip install ...".

    >>> require("json", "none", "JSON").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{feature} needs the '{extra}' extra: pip install 'pyasp-screen[{extra}]'") from None
