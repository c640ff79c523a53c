"""The facts a record becomes (``pyasp-screen screen --facts``): what the knowledge base reads.

One block per record, valid ASP: each fact with, as a comment, what it says in words and the
record fields it came from, so that a protocol author sees exactly what a rule can match (and
can run the knowledge base on it with the clingo command line, kb/lib/show.lp).
"""

from __future__ import annotations

from typing import TextIO

from pyasp_screen.engine.screening import Screened
from pyasp_screen.inputs.record import RecordError


def write_facts(outcomes: list, out: TextIO) -> None:
    """Every screened record's facts; a rejected record as a comment saying why."""
    for o in outcomes:
        if isinstance(o, RecordError):
            out.write(f"% rejected: {o}\n\n")
            continue
        assert isinstance(o, Screened)
        f = o.findings
        out.write(f"% patient {f.patient} ({o.file})\n")
        for note in f.notes:
            out.write(f"% note: {note}\n")
        for finding in f.findings:
            comment = finding.text + (f" [{', '.join(finding.sources)}]" if finding.sources else "")
            out.write(f"{finding.fact}.   % {' '.join(comment.split())}\n")
        out.write("\n")
