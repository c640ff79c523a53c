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
from rich.markup import escape
from rich.table import Table

from pyasp_screen.engine.screening import Screened
from pyasp_screen.inputs.record import RecordError
from pyasp_screen.knowledge.kb import KnowledgeBase

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


def short_explanation(scopes) -> dict:
    """The shortest sufficient reason and the missing-data summary of the overall verdict
    (screen --explain)."""
    e = scopes[0]
    out = {"verdict": e.verdict}
    if e.verdict == "ineligible" and e.sufficient_reasons:
        out["shortest_reason"] = e.sufficient_reasons[0].findings
        out["criteria"] = e.sufficient_reasons[0].criteria
    if e.missing:
        out["to_measure"] = {goal: [" + ".join(r.findings) for r in rs[:5]] for goal, rs in e.missing.items()}
    return out


def write_json(outcomes: list[Screened | RecordError], kb: KnowledgeBase, out: IO[str],
               explanations: dict | None = None) -> None:
    results = []
    for o in outcomes:
        if isinstance(o, Screened):
            d = result_dict(o, kb)
            if explanations is not None:
                d["explanation"] = short_explanation(explanations[id(o)])
            results.append(d)
    doc = {
        "pyasp_screen_output": OUTPUT_VERSION,
        "knowledge_base": kb_header(kb),
        "summary": summary(outcomes, kb),
        "results": results,
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


def write_csv(outcomes: Iterable[Screened | RecordError], kb: KnowledgeBase, out: IO[str],
              explanations: dict | None = None) -> None:
    writer = csv.writer(out, lineterminator="\n")
    extra = ["shortest_reason", "to_measure"] if explanations is not None else []
    writer.writerow(csv_header(kb) + extra)
    for o in outcomes:
        row = csv_row(o, kb)
        if explanations is not None:
            if isinstance(o, Screened):
                e = short_explanation(explanations[id(o)])
                row += [" + ".join(e.get("shortest_reason", [])),
                        " | ".join(f"{g}: {'; '.join(v)}" for g, v in e.get("to_measure", {}).items())]
            else:
                row += ["", ""]
        writer.writerow(row)


def _styled(word: str) -> str:
    style = STATUS_STYLE.get(word)
    return f"[{style}]{word}[/]" if style else word


def population_label(kb: KnowledgeBase, pop: str) -> str:
    """The short name of a population: "SSc" from "systemic sclerosis (SSc)"."""
    text = kb.populations.get(pop, "")
    if "(" in text and text.endswith(")"):
        return text[text.rindex("(") + 1:-1]
    return pop.upper()


def write_table(outcomes: list[Screened | RecordError], kb: KnowledgeBase, console: Console,
                details: bool, explanations: dict | None = None) -> None:
    """A row per patient; with ``details``, every criterion of every patient."""
    screened = [o for o in outcomes if isinstance(o, Screened)]
    if details:
        for s in screened:
            _patient_table(s, kb, console)
    elif screened:
        from rich import box

        table = Table(title=f"{kb.name} v{kb.version}: {len(screened)} patient(s) screened",
                      title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                      collapse_padding=True)
        wide = console.width >= 120
        table.add_column("patient", overflow="fold", min_width=14)
        if wide:
            table.add_column("file", overflow="fold")
        table.add_column("overall", no_wrap=True)
        for pop in kb.populations:
            table.add_column(population_label(kb, pop), no_wrap=True)
        table.add_column("excluded by", overflow="fold")
        table.add_column("unknown", justify="right", no_wrap=True, min_width=7)
        if explanations is not None:
            table.add_column("shortest reason / to measure", overflow="fold")
        for s in screened:
            r = s.result
            failing = [c.id for c in kb.criteria
                       if (c.kind == "inclusion" and r.statuses.get(c.id) == "not_met")
                       or (c.kind == "exclusion" and r.statuses.get(c.id) == "met")]
            unknown = sum(1 for c in kb.criteria if r.statuses.get(c.id) == "unknown")
            cells = [escape(r.patient)] + ([escape(s.file.rsplit("/", 1)[-1])] if wide else []) + [_styled(r.overall),
                     *[_styled(r.verdicts.get(p, "undetermined")) for p in kb.populations],
                     ", ".join(failing) or "-", str(unknown)]
            if explanations is not None:
                e = short_explanation(explanations[id(s)])
                text = " + ".join(e.get("shortest_reason", []))
                if "to_measure" in e:
                    text = "; ".join(f"{g}: {', '.join(v[:2])}" for g, v in e["to_measure"].items())
                cells.append(escape(text))
            table.add_row(*cells)
        console.print(table)
    for o in outcomes:
        if isinstance(o, RecordError):
            console.print(f"[red]rejected[/] {escape(str(o))}", highlight=False, soft_wrap=True)
    s = summary(outcomes, kb)
    console.print(f"{s['screened']} screened ({s['overall']['eligible']} eligible, "
                  f"{s['overall']['ineligible']} ineligible, {s['overall']['undetermined']} undetermined), "
                  f"{s['rejected']} rejected", highlight=False)


def _patient_table(s: Screened, kb: KnowledgeBase, console: Console) -> None:
    r = s.result
    verdicts = ", ".join(f"{population_label(kb, p)} {_styled(r.verdicts.get(p, 'undetermined'))}"
                         for p in kb.populations)
    console.print(f"\n[bold]{escape(r.patient)}[/] ({escape(s.file)}): overall {_styled(r.overall)}; {verdicts}",
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
    for f in s.findings.findings:
        if f.name in ("crcl", "prednisone_equivalent") or f.name.endswith("_x_uln"):
            console.print(f"  value: {escape(f.text)}", highlight=False, soft_wrap=True)
    for note in s.findings.notes:
        console.print(f"  note: {escape(note)}", highlight=False, soft_wrap=True)
    for nd in s.findings.not_done:
        console.print(f"  not done: {escape(nd)}", highlight=False)
    for c in r.contradictions:
        console.print(f"  [red]knowledge-base contradiction[/]: {c} both holds and fails", highlight=False)


# ---------------------------------------------------------------------------------------
# Explanations (pyasp-screen explain)
# ---------------------------------------------------------------------------------------

def _criteria_refs(kb: KnowledgeBase, ids: list[str]) -> list[dict]:
    sentences = {c.id: c.sentence for c in kb.criteria}
    return [{"id": i, "sentence": sentences.get(i, "")} for i in ids]


def explanation_dict(s: Screened, scopes, kb: KnowledgeBase) -> dict:
    """One patient's explanations as plain data (docs/explanations.md)."""
    out = {"patient": s.result.patient, "file": s.file, "overall": s.result.overall,
           "verdicts": {p: s.result.verdicts.get(p, "undetermined") for p in kb.populations},
           "explanations": []}
    for e in scopes:
        item = {"scope": e.scope, "verdict": e.verdict, "complete": e.complete}
        if e.verdict in ("eligible", "ineligible"):
            item["sufficient_reasons"] = [
                {"findings": r.findings, "sources": r.sources, "criteria": _criteria_refs(kb, r.criteria)}
                for r in e.sufficient_reasons]
            item["near_misses"] = [
                {"findings": r.findings, "sources": r.sources, "criteria": _criteria_refs(kb, r.criteria),
                 "values": r.values, "outcome": r.outcome} for r in e.near_misses]
        else:
            item["missing"] = {goal: [{"findings": r.findings, "values": r.values,
                                       "criteria": _criteria_refs(kb, r.criteria)} for r in rs]
                               for goal, rs in e.missing.items()}
            item["cannot_change_outcome"] = e.useless
        out["explanations"].append(item)
    return out


def _scope_name(scope: str, kb: KnowledgeBase | None = None) -> str:
    return "Overall" if scope == "overall" else (population_label(kb, scope) if kb else scope.upper())


def write_explanation_text(s: Screened, scopes, kb: KnowledgeBase, out: IO[str]) -> None:
    """Plain sentences, one scope (overall, then each population) after the other."""
    r = s.result
    verdicts = ", ".join(f"{population_label(kb, p)} {r.verdicts.get(p, 'undetermined')}" for p in kb.populations)
    out.write(f"Patient {r.patient} ({s.file}): {r.overall} overall ({verdicts}).\n")
    sentences = {c.id: c.sentence for c in kb.criteria}

    cited: list[str] = []

    def crit(ids):
        cited.extend(i for i in ids if i not in cited)
        return ", ".join(ids)

    for e in scopes:
        out.write(f"\n{_scope_name(e.scope, kb)}: {e.verdict}\n")
        if e.verdict in ("eligible", "ineligible"):
            what = "excluded" if e.verdict == "ineligible" else "eligible"
            out.write(f"  Why {what} (sufficient reasons, smallest first; each alone settles it):\n")
            first = e.sufficient_reasons[0].findings if e.sufficient_reasons else []
            for k, reason in enumerate(e.sufficient_reasons, 1):
                # long reasons (an eligible patient's) differ by a finding or two: say how
                if k > 1 and len(first) > 4:
                    gone = [f for f in first if f not in reason.findings]
                    new = [f for f in reason.findings if f not in first]
                    out.write(f"   {k}. as 1, with {' + '.join(new) or 'nothing'} instead of "
                              f"{' + '.join(gone) or 'nothing'}\n")
                    continue
                out.write(f"   {k}. {' + '.join(reason.findings)}\n")
                if reason.criteria:
                    out.write(f"      decides {crit(reason.criteria)}\n")
            label = ("Near misses (what would have to change)" if e.verdict == "ineligible"
                     else "What would most easily lose it")
            out.write(f"  {label}:\n")
            for k, nm in enumerate(e.near_misses, 1):
                change = "; ".join(nm.values) if nm.values else "they were unknown"
                if len(nm.findings) == 1:
                    change = change.replace(f"{nm.findings[0]} were unknown", "it were unknown")
                out.write(f"   {k}. {' + '.join(nm.findings)}: {nm.outcome} if {change}, all else equal\n")
            if not e.near_misses:
                out.write("   none: no change of recorded findings alone would do it\n")
        else:
            for goal in ("ineligible", "eligible"):
                reasons = e.missing.get(goal, [])
                out.write(f"  What would settle it as {goal} (each line alone; measure or record):\n")
                for k, m in enumerate(reasons, 1):  # each value names its finding
                    out.write(f"   {k}. {'; '.join(m.values) or ' + '.join(m.findings)}\n")
                    if m.criteria:
                        out.write(f"      decides {crit(m.criteria)}\n")
                if not reasons:
                    out.write("   nothing left unknown could do it\n")
            if e.useless:
                out.write("  Unknown, but cannot change the outcome (no need to order them):\n")
                for label in e.useless:
                    out.write(f"   - {label}\n")
        if not e.complete:
            out.write("  (more explanations exist: raise --max to list them)\n")
    if cited:
        out.write("\nCriteria cited (registry sentences):\n")
        for i in cited:
            out.write(f'  {i}: "{sentences.get(i, "")}"\n')


# ---------------------------------------------------------------------------------------
# Cohorts (pyasp-screen cohort) and protocol versions (pyasp-screen diff)
# ---------------------------------------------------------------------------------------

def write_cohort_table(summary, kb: KnowledgeBase, console: Console) -> None:
    d = summary.as_dict()
    console.print(f"[bold]{escape(kb.name)} v{escape(kb.version)}[/]: {d['screened']} screened, "
                  f"{d['rejected']} rejected", highlight=False)
    t = Table(title="verdicts", title_justify="left")
    t.add_column("")
    for v in ("eligible", "ineligible", "undetermined"):
        t.add_column(v, justify="right")
    t.add_row("overall", *[str(d["overall"][v]) for v in ("eligible", "ineligible", "undetermined")])
    for pop in kb.populations:
        t.add_row(population_label(kb, pop), *[str(d["populations"][pop][v])
                                                for v in ("eligible", "ineligible", "undetermined")])
    console.print(t)
    t = Table(title="criteria (only failing: the patient's one failing criterion in that population; "
                    "gain: ... and every other criterion met)", title_justify="left")
    for col in ("criterion", "kind", "met", "not met", "unknown", "only failing", "gain"):
        t.add_column(col, justify="left" if col in ("criterion", "kind") else "right")
    for c in d["criteria"]:
        t.add_row(c["id"], c["kind"], str(c["met"]), str(c["not_met"]), str(c["unknown"]),
                  " ".join(f"{population_label(kb, p)} {n}" for p, n in c["only_failing"].items()),
                  " ".join(f"{population_label(kb, p)} {n}" for p, n in c["gain"].items()))
    console.print(t)
    for pop in kb.populations:
        t = Table(title=f"attrition, {population_label(kb, pop)} (protocol order)", title_justify="left")
        for col in ("criterion", "excluded here", "remaining", "remaining with every criterion so far met"):
            t.add_column(col, justify="left" if col == "criterion" else "right")
        t.add_row("(screened)", "", str(d["screened"]), str(d["screened"]))
        for row in d["attrition"][pop]:
            t.add_row(row["criterion"], str(row["excluded"]), str(row["remaining"]), str(row["all_met_so_far"]))
        console.print(t)
    if summary.rejected_count:
        console.print(f"[red]{summary.rejected_count} record(s) rejected:[/]")
        for e in summary.rejected:
            console.print(f"  {escape(str(e))}", highlight=False, soft_wrap=True)
        if summary.rejected_count > len(summary.rejected):
            console.print(f"  ... and {summary.rejected_count - len(summary.rejected)} more "
                          "(every one is in the --results file)", highlight=False)


def write_cohort_csv(summary, kb: KnowledgeBase, out: IO[str]) -> None:
    """One row per criterion: counts, only-failing and gain per population, attrition."""
    d = summary.as_dict()
    w = csv.writer(out, lineterminator="\n")
    pops = list(kb.populations)
    w.writerow(["criterion", "population", "kind", "met", "not_met", "unknown"]
               + [f"only_failing_{p}" for p in pops] + [f"gain_{p}" for p in pops]
               + [f"remaining_{p}" for p in pops])
    remaining = {p: {r["criterion"]: r["remaining"] for r in d["attrition"][p]} for p in pops}
    for c in d["criteria"]:
        w.writerow([c["id"], c["population"], c["kind"], c["met"], c["not_met"], c["unknown"]]
                   + [c["only_failing"].get(p, "") for p in pops] + [c["gain"].get(p, "") for p in pops]
                   + [remaining[p].get(c["id"], "") for p in pops])


def diff_dict(changes, directions, n, kb_a: KnowledgeBase, kb_b: KnowledgeBase) -> dict:
    return {
        "before": kb_header(kb_a), "after": kb_header(kb_b), "compared": n,
        "changed": len(changes),
        "directions": [{"before": a, "after": b, "patients": k} for (a, b), k in sorted(directions.items())],
        "patients": [{"patient": c.patient, "file": c.file, "before": c.before, "after": c.after,
                      "criteria": [{"id": i, "before": x, "after": y} for i, x, y in c.criteria]}
                     for c in changes],
    }


def write_diff_text(doc: dict, out: IO[str]) -> None:
    a, b = doc["before"], doc["after"]
    def name(h):
        extra = ", ".join(f"{k}={v}" for k, v in h["parameters_changed"].items())
        return f"{h['name']} v{h['version']}" + (f" ({extra})" if extra else "")
    out.write(f"{name(a)} -> {name(b)}: {doc['compared']} patients compared, {doc['changed']} change verdict\n")
    out.write("overall verdict, before -> after:\n")
    for d in doc["directions"]:
        mark = "" if d["before"] == d["after"] else "  *"
        out.write(f"  {d['before']:>12} -> {d['after']:<12} {d['patients']:>6}{mark}\n")
    for p in doc["patients"]:
        changed = ", ".join(f"{s}: {p['before'][s]} -> {p['after'][s]}" for s in p["before"]
                            if p["before"][s] != p["after"].get(s))
        out.write(f"\n{p['patient']} ({p['file']}): {changed}\n")
        for c in p["criteria"]:
            out.write(f"  {c['id']}: {c['before']} -> {c['after']}\n")
