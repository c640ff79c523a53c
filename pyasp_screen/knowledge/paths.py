"""Where the bundled knowledge bases live: inside the installed package, or the source tree's kb/."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def builtin_kb_root() -> Path:
    """The folder holding the bundled knowledge bases (and their shared library, lib/): inside
    the installed package (the wheel carries kb/ as pyasp_screen/kb), or the source tree's kb/
    when running from a checkout."""
    packaged = resources.files("pyasp_screen") / "kb"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "kb"
