"""Stage 6 of the pipeline: results for people (table) and programs (JSON, CSV).

The JSON shape is documented in docs/output.md and by docs/schema/screen-output.schema.json;
the CSV has one row per patient and one column per criterion. Both are stable: keys and
columns come in protocol order, and a rejected record is reported, never dropped.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable
from typing import IO

from rich.console import Console
from rich.table import Table

from pyasp_screen.kb import KnowledgeBase
from pyasp_screen.record import RecordError
from pyasp_screen.screening import Screened

OUTPUT_VERSION = "1"
STATUS_STYLE = {"met": "green", "not_met": "red", "unknown": "yellow",
                "eligible": "bold green", "ineligible": "bold red", "undetermined": "bold yellow"}


def kb_header(kb: KnowledgeBase) -> dict:
    changed = {p.name: p.display() for p in kb.parameters.values() if p.value != p.default}
    return {"name": kb.name, "version": kb.version, "title": kb.title,
            "parameters_changed": changed}


def result_dict(s: Screened, kb: KnowledgeBase) -> dict:
    """One patient's result as plain data (the ``results[]`` item of docs/output.md)."""
    r = s.result
    criteria = []
    for c in kb.criteria:
        criteria.append({
            "id": c.id, "population": c.population, "kind": c.kind,
            "status": r.statuses.get(c.id, "unknown"),
            "components": {part: r.statuses.get(part, "unknown") for part in c.components},
        })
    return {
        "patient": r.patient,
        "file": s.file,
        "overall": r.overall,
        "verdicts": {pop: r.verdicts.get(pop, "undetermined") for pop in kb.populations},
        "criteria": criteria,
        "findings": [f.text for f in s.findings.findings if f.name not in ("patient",)],
        "not_done": s.findings.not_done,
        "notes": s.findings.notes,
        "contradictions": r.contradictions,
    }


def error_dict(e: RecordError) -> dict:
    return {"file": e.file, "patient": e.patient, "field": e.field, "reason": e.reason,
            "message": str(e)}


def summary(outcomes: list[Screened | RecordError], kb: KnowledgeBase) -> dict:
    screened = [o for o in outcomes if isinstance(o, Screened)]
    overall = Counter(o.result.overall for o in screened)
    per_pop = {pop: dict(Counter(o.result.verdicts.get(pop, "undetermined") for o in screened))
               for pop in kb.populations}
    return {"screened": len(screened), "rejected": len(outcomes) - len(screened),
            "overall": {k: overall.get(k, 0) for k in ("eligible", "ineligible", "undetermined")},
            "populations": {pop: {k: c.get(k, 0) for k in ("eligible", "ineligible", "undetermined")}
                            for pop, c in per_pop.items()}}


def write_json(outcomes: list[Screened | RecordError], kb: KnowledgeBase, out: IO[str]) -> None:
    doc = {
        "pyasp_screen_output": OUTPUT_VERSION,
        "knowledge_base": kb_header(kb),
        "summary": summary(outcomes, kb),
        "results": [result_dict(o, kb) for o in outcomes if isinstance(o, Screened)],
        "errors": [error_dict(o) for o in outcomes if isinstance(o, RecordError)],
    }
    json.dump(doc, out, indent=2, ensure_ascii=False)
    out.write("\n")


def csv_header(kb: KnowledgeBase) -> list[str]:
    return (["patient", "file", "overall"] + [f"verdict_{p}" for p in kb.populations]
            + kb.criterion_ids() + ["error"])


def csv_row(o: Screened | RecordError, kb: KnowledgeBase) -> list[str]:
    if isinstance(o, RecordError):
        return ([o.patient or "", o.file, "rejected"] + [""] * len(kb.populations)
                + [""] * len(kb.criteria) + [str(o)])
    r = o.result
    return ([r.patient, o.file, r.overall] + [r.verdicts.get(p, "undetermined") for p in kb.populations]
            + [r.statuses.get(c, "unknown") for c in kb.criterion_ids()] + [""])


def write_csv(outcomes: Iterable[Screened | RecordError], kb: KnowledgeBase, out: IO[str]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_header(kb))
    for o in outcomes:
        writer.writerow(csv_row(o, kb))


def _styled(word: str) -> str:
    style = STATUS_STYLE.get(word)
    return f"[{style}]{word}[/]" if style else word


def write_table(outcomes: list[Screened | RecordError], kb: KnowledgeBase, console: Console,
                details: bool) -> None:
    """A row per patient; with ``details``, every criterion of every patient."""
    screened = [o for o in outcomes if isinstance(o, Screened)]
    if details:
        for s in screened:
            _patient_table(s, kb, console)
    elif screened:
        table = Table(title=f"{kb.name} v{kb.version}: {len(screened)} patient(s) screened",
                      title_justify="left")
        table.add_column("patient", overflow="fold")
        table.add_column("overall")
        for pop in kb.populations:
            table.add_column(pop.upper())
        table.add_column("not met (inclusion) / met (exclusion)", overflow="fold")
        table.add_column("unknown", justify="right")
        for s in screened:
            r = s.result
            failing = [c.id for c in kb.criteria
                       if (c.kind == "inclusion" and r.statuses.get(c.id) == "not_met")
                       or (c.kind == "exclusion" and r.statuses.get(c.id) == "met")]
            unknown = sum(1 for c in kb.criteria if r.statuses.get(c.id) == "unknown")
            table.add_row(r.patient, _styled(r.overall),
                          *[_styled(r.verdicts.get(p, "undetermined")) for p in kb.populations],
                          ", ".join(failing) or "-", str(unknown))
        console.print(table)
    for o in outcomes:
        if isinstance(o, RecordError):
            console.print(f"[red]rejected[/] {o}", highlight=False, soft_wrap=True)
    s = summary(outcomes, kb)
    console.print(f"{s['screened']} screened ({s['overall']['eligible']} eligible, "
                  f"{s['overall']['ineligible']} ineligible, {s['overall']['undetermined']} undetermined), "
                  f"{s['rejected']} rejected", highlight=False)


def _patient_table(s: Screened, kb: KnowledgeBase, console: Console) -> None:
    r = s.result
    verdicts = ", ".join(f"{p.upper()} {_styled(r.verdicts.get(p, 'undetermined'))}" for p in kb.populations)
    console.print(f"\n[bold]{r.patient}[/] ({s.file}): overall {_styled(r.overall)}; {verdicts}",
                  highlight=False)
    table = Table(show_header=True, box=None, pad_edge=False)
    table.add_column("criterion")
    table.add_column("kind")
    table.add_column("status")
    table.add_column("components", overflow="fold")
    for c in kb.criteria:
        parts = ", ".join(f"{p.split('.', 1)[1]} {_styled(r.statuses.get(p, 'unknown'))}"
                          for p in c.components)
        table.add_row(c.id, c.kind, _styled(r.statuses.get(c.id, "unknown")), parts)
    console.print(table)
    for note in s.findings.notes:
        console.print(f"  note: {note}", highlight=False, soft_wrap=True)
    for nd in s.findings.not_done:
        console.print(f"  not done: {nd}", highlight=False)
    for c in r.contradictions:
        console.print(f"  [red]knowledge-base contradiction[/]: {c} both holds and fails", highlight=False)
