"""Optional features and the extras that install them (pyproject.toml ``[project.optional-dependencies]``).

The core install screens, explains and runs cohorts on every core. What only some users need
is an extra: ``dask`` (a Dask cluster, ``--scheduler``), ``plot`` (attrition charts,
``cohort --plot``), ``parquet`` (``--results out.parquet``). :func:`require` imports one of
them or raises :class:`MissingExtra` with the one line that says how to install it.

pyasp-screen is installed from its repository, not from PyPI, so the line installs the extra
from the project folder (:func:`install_command`): ``pip install 'pyasp-screen[web]'`` would
fetch whatever someone publishes under that name (a typosquatting risk).
"""

from __future__ import annotations

import importlib
import shlex
import sys
from pathlib import Path
from types import ModuleType


def project_root() -> Path | None:
    """The pyasp-screen repository this package runs from (editable install), or None."""
    root = Path(__file__).resolve().parent.parent
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if 'name = "pyasp-screen"' in text else None


def install_command(extra: str) -> str:
    """The one command that adds ``extra`` to the running environment, from the project folder.

    An editable install (``./dev``, ``pip install -e .``) knows its folder:
    ``/path/.venv/bin/python -m pip install -e '/path[web]'``, with this interpreter so the extra
    lands where pyasp-screen runs. Otherwise: ``pip install '.[web]'`` in the pyasp-screen folder.

    >>> "[web]" in install_command("web") and "pyasp-screen[" not in install_command("web")
    True
    """
    root = project_root()
    if root is None:
        return f"pip install '.[{extra}]' in the pyasp-screen folder"
    return f"{shlex.quote(sys.executable)} -m pip install -e {shlex.quote(f'{root}[{extra}]')}"


class MissingExtra(ImportError):
    """An optional feature whose extra is not installed; the message is one line naming it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``module`` imported, or MissingExtra: "FEATURE needs the EXTRA extra: <install_command>".

    >>> require("json", "none", "JSON").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{feature} needs the '{extra}' extra: {install_command(extra)}") from None
