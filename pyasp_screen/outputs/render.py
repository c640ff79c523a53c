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
from pyasp_screen.explain.summary import derived_values, short_answer
from pyasp_screen.inputs.record import RecordError
from pyasp_screen.knowledge.kb import KnowledgeBase

OUTPUT_VERSION = "3"  # 3: explain names every reason, what it does not try, the knowledge base's choices (docs/output.md)
STATUS_STYLE = {"met": "green", "not_met": "red", "unknown": "yellow",
                "eligible": "bold green", "ineligible": "bold red", "undetermined": "bold yellow"}


def kb_header(kb: KnowledgeBase) -> dict:
    changed = {p.name: p.display() for p in kb.parameters.values() if p.value != p.default}
    return {"name": kb.name, "version": kb.version, "title": kb.title,
            "parameters_changed": changed}


def kb_title(kb: KnowledgeBase) -> str:
    """"ct1190b v1", with every parameter changed from the protocol's default named: a
    printed report must not look like a protocol-default run."""
    changed = parameters_line(kb_header(kb)["parameters_changed"])
    return f"{kb.name} v{kb.version}" + (f" ({changed[0].lower()}{changed[1:]})" if changed else "")


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
        "screening_date": s.findings.screening_date.isoformat() if s.findings.screening_date else None,
        "deceased": any(f.name == "deceased" for f in s.findings.findings),
        "overall": r.overall,
        "verdicts": {pop: r.verdicts.get(pop, "undetermined") for pop in kb.populations},
        "criteria": criteria,
        "findings": [f.text for f in s.findings.findings if f.name not in ("patient",)],
        "derived": derived_values(kb, s.findings),
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


def short_explanation(summary: dict) -> dict:
    """The answer of the overall verdict in brief (screen --explain; docs/output.md): the
    one-line ``answer``; for an ineligible patient the shortest sufficient reason and its
    criteria; for an undetermined one what to measure or record, in order; for an eligible
    one the thinnest margins."""
    a = summary["answer"]
    out = {"verdict": a["verdict"], "answer": short_answer(summary)}
    if a["verdict"] == "ineligible" and a.get("reason"):
        out["shortest_reason"] = a["reason"]["findings"]
        out["criteria"] = a["reason"]["criteria"]
    if a["verdict"] == "undetermined":
        out["to_measure"] = [{"text": f"{st['action']} {st['text']}", "criteria": st["criteria"]}
                             for st in a.get("to_measure", [])]
    if a["verdict"] == "eligible":
        out["thinnest_margins"] = [m["text"] for m in a.get("thinnest_margins", [])[:3]]
    return out


def json_text(doc: dict) -> str:
    """The JSON text every ``--format json`` prints (and the web API returns): indented by
    two, UTF-8 characters as they are, one final newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def screen_document(outcomes: list[Screened | RecordError], kb: KnowledgeBase,
                    explanations: dict | None = None) -> dict:
    """The ``screen --format json`` document (docs/output.md): header, summary, one result
    per screened patient, one error per rejected record. ``explanations`` maps
    ``id(Screened)`` to its summary (screen --explain)."""
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
    return doc


def write_json(outcomes: list[Screened | RecordError], kb: KnowledgeBase, out: IO[str],
               explanations: dict | None = None) -> None:
    out.write(json_text(screen_document(outcomes, kb, explanations)))


def csv_header(kb: KnowledgeBase) -> list[str]:
    return (["patient", "file", "screening_date", "deceased", "overall"] + [f"verdict_{p}" for p in kb.populations]
            + kb.criterion_ids() + ["error"])


def csv_row(o: Screened | RecordError, kb: KnowledgeBase) -> list[str]:
    if isinstance(o, RecordError):
        return ([o.patient or "", o.file, "", "", "rejected"] + [""] * len(kb.populations)
                + [""] * len(kb.criteria) + [str(o)])
    r = o.result
    when = o.findings.screening_date.isoformat() if o.findings.screening_date else ""
    deceased = "yes" if any(f.name == "deceased" for f in o.findings.findings) else "no"
    return ([r.patient, o.file, when, deceased, r.overall] + [r.verdicts.get(p, "undetermined") for p in kb.populations]
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
                        " | ".join(st["text"] for st in e.get("to_measure", []))]
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
    """A row per patient; with ``details``, every criterion of every patient. The answer
    (with ``explanations``) comes right after the verdicts; the file column only where the
    file name says more than the patient ID."""
    screened = [o for o in outcomes if isinstance(o, Screened)]
    changed = parameters_line(kb_header(kb)["parameters_changed"], _parameter_details(kb))
    if changed:
        console.print(escape(f"*** {changed}. ***"), highlight=False, soft_wrap=True)
    if details:
        for s in screened:
            _patient_table(s, kb, console)
    elif screened:
        from rich import box

        n = len(screened)
        table = Table(title=escape(f"{kb.name} v{kb.version}: {n} patient{'s' if n != 1 else ''} pre-screened "
                                   "against the registry criteria"),
                      title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                      collapse_padding=True)
        def stem(path: str) -> str:
            name = path.rsplit("/", 1)[-1]
            return name.rsplit(".", 1)[0] if "." in name else name
        show_file = any(stem(s.file).lower() != s.result.patient.lower() for s in screened)
        table.add_column("patient", overflow="fold", min_width=14)
        if show_file:
            table.add_column("file", overflow="fold")
        # records screened as of different dates (each its latest clinical date, when no
        # --screening-date is given): the date of each, not silently
        dates = {s.findings.screening_date for s in screened}
        if len(dates) > 1:
            table.add_column("screening date", no_wrap=True)
        table.add_column("overall", no_wrap=True)
        for pop in kb.populations:
            table.add_column(population_label(kb, pop), no_wrap=True)
        if explanations is not None:
            table.add_column("answer (the reason, what to get, or the value closest to a threshold)",
                             overflow="fold", ratio=1)
        else:
            table.add_column("not met", overflow="fold")
            table.add_column("criteria unknown", justify="right", no_wrap=True)
        for s in screened:
            r = s.result
            deceased = " (deceased)" if any(f.name == "deceased" for f in s.findings.findings) else ""
            cells = [escape(r.patient)] + ([escape(s.file.rsplit("/", 1)[-1])] if show_file else []) + (
                [str(s.findings.screening_date or "")] if len(dates) > 1 else []) + [
                _styled(r.overall) + deceased, *[_styled(r.verdicts.get(p, "undetermined")) for p in kb.populations]]
            if explanations is not None:
                cells.append(escape(short_answer(explanations[id(s)])))
            else:
                failing = excluded_by(s, kb)
                by_pop = [f"{population_label(kb, p)}: {', '.join(c for c in failing if _pop_of(kb, c) in (p, 'all'))}"
                          for p in kb.populations if any(_pop_of(kb, c) in (p, "all") for c in failing)]
                unknown = sum(1 for c in kb.criteria if r.statuses.get(c.id) == "unknown"
                              and (c.population == "all" or r.verdicts.get(c.population) == "undetermined"))
                cells += ["; ".join(by_pop) or "-", str(unknown)]
            table.add_row(*cells)
        console.print(table)
        pops = " or ".join(population_label(kb, p) for p in kb.populations)
        console.print(escape(f"overall: eligible if eligible for {pops}; undetermined: the record does not yet "
                             "decide it (a missing result or list)."
                             + ("" if explanations is not None else
                                " not met: the criteria excluding the patient, by population; criteria unknown: "
                                "those the record cannot decide yet, in populations still undetermined.")),
                      highlight=False, soft_wrap=True)
    for o in outcomes:
        if isinstance(o, RecordError):
            console.print(f"[red]rejected[/] {escape(str(o))}", highlight=False, soft_wrap=True)
    s = summary(outcomes, kb)
    rejected = (f"{s['rejected']} record{'s' if s['rejected'] != 1 else ''} could not be read (listed above)"
                if s["rejected"] else "every record was read")
    console.print(f"{s['screened']} pre-screened ({s['overall']['eligible']} eligible, "
                  f"{s['overall']['ineligible']} ineligible, {s['overall']['undetermined']} undetermined); "
                  f"{rejected}", highlight=False)


def _pop_of(kb: KnowledgeBase, cid: str) -> str:
    return next((c.population for c in kb.criteria if c.id == cid), "all")


def _parameter_details(kb: KnowledgeBase) -> list[dict]:
    from pyasp_screen.explain.summary import parameter_view

    return [parameter_view(kb, p.name) for p in kb.parameters.values() if p.value != p.default]


def excluded_by(s: Screened, kb: KnowledgeBase) -> list[str]:
    """The criteria that exclude a patient: those failing in each population the patient
    is ineligible for; none for an eligible patient (the other population's failures do not
    exclude anyone who is eligible for one)."""
    r = s.result
    if r.overall == "eligible":
        return []
    return [c.id for c in kb.criteria
            if (c.population == "all" or r.verdicts.get(c.population) == "ineligible")
            and ((c.kind == "inclusion" and r.statuses.get(c.id) == "not_met")
                 or (c.kind == "exclusion" and r.statuses.get(c.id) == "met"))]


def _patient_table(s: Screened, kb: KnowledgeBase, console: Console) -> None:
    r = s.result
    verdicts = ", ".join(f"{population_label(kb, p)} {_styled(r.verdicts.get(p, 'undetermined'))}"
                         for p in kb.populations)
    deceased = ", deceased" if any(f.name == "deceased" for f in s.findings.findings) else ""
    when = f", screened at {s.findings.screening_date}" if s.findings.screening_date else ""
    console.print(f"\n[bold]{escape(r.patient)}[/] ({escape(s.file)}{when}): overall {_styled(r.overall)}{deceased}; {verdicts}",
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
    compared = {name for _, name, _, _ in kb.checks}  # a derived value no criterion reads is not printed
    for f in s.findings.findings:
        if (f.name in ("crcl", "prednisone_equivalent") or f.name.endswith("_x_uln")) and f.name in compared:
            days = (f.data or {}).get("days_before_screening")
            window = kb.windows.get(f.name)
            stale = (f"  [{days} days before screening, outside the {window}-day look-back: not used, "
                     "so the criteria using it stay unknown]" if days is not None and window is not None
                     and days > window else "")
            console.print(f"  value: {escape(f.text)}{stale}", highlight=False, soft_wrap=True)
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


def explanation_dict(summary: dict) -> dict:
    """One patient's item of ``explain --format json`` (docs/output.md): the summary of
    :func:`pyasp_screen.explain.summary.summarise` as it is."""
    return summary


def explain_document(summaries: list[dict], rejected: list[RecordError], kb: KnowledgeBase) -> dict:
    """The ``explain --format json`` document: header, one :func:`explanation_dict` per
    screened patient (its summary), one error per rejected record."""
    return {"pyasp_screen_output": OUTPUT_VERSION, "knowledge_base": kb_header(kb),
            "patients": [explanation_dict(d) for d in summaries],
            "errors": [error_dict(o) for o in rejected]}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def parameters_line(changed: dict, detail: list[dict] | None = None) -> str | None:
    """"A what-if, not the protocol: crcl_min=30 mL/min (protocol 50 mL/min; used by
    SLE-IN-7a, SSC-IN-4a)", or None. (A changed number is a hypothetical, not a setting
    of the protocol, which is how a second coordinator reader read "default".)"""
    if not changed:
        return None
    by = {d["name"]: d for d in detail or []}

    def one(k, v):
        d = by.get(k)
        if d is None:
            return f"{k}={v}"
        used = f"; used by {', '.join(d['used_by'])}" if d["used_by"] else ""
        return f"{k}={v} (protocol {d['default']}{used})"
    return "A what-if, not the protocol: " + ", ".join(one(k, v) for k, v in changed.items())


STEPS_SHOWN = 8  # steps of a long plan printed without --details
TASK_HEADINGS = {"lab": "Tests", "chart": "From the chart"}


def _criteria_tag(ids: list[str]) -> str:
    return f"  [{', '.join(ids)}]" if ids else ""


def _on_record(c: dict) -> str:
    """"On record for SLE-IN-7d: INR 1.9 = 1.58 x ULN on 2026-02-24 (needs <= 1.5 x ULN: not
    met)". The criterion comes first: the value may be another finding the step's criterion
    compares (the Hb beside an ANC to get, both SSC-IN-4b), not the step's own."""
    state = "met" if c["holds"] else "not met"
    if c["kind"] == "exclusion":
        state = "applies" if c["holds"] else "does not apply"
    return f"On record for {c['criterion']}: {c['dated_text']} ({c['need_text']}: {state})"


def write_summary_text(doc: dict, out: IO[str], details: bool = False, hint: str | None = None) -> None:
    """One patient's explanation for people: the answer first, then (``details``) every
    explanation, each population only where it differs from the overall one; last, the
    registry sentence of every criterion the text names, and ``hint`` (the command that
    prints more). No program words: every statement is the summary's (explain/summary.py)."""
    import io
    import re

    final = out
    out = io.StringIO()
    scope = doc.get("scope", "overall")
    changed = parameters_line(doc["parameters_changed"], doc.get("parameters"))
    if changed:  # a banner: this is not a protocol-default run
        out.write(f"*** {changed}. ***\n")
    when = f", screening date {doc['screening_date']}" if doc.get("screening_date") else ""
    out.write(f"{doc['patient']}{when}\n")
    if scope == "overall":
        out.write(f"{_cap(doc['headline'])}.\n")
    else:
        name = next(p["name"] for p in doc["populations"] if p["population"] == scope)
        out.write(f"{name} only: {doc['headline']}.\n")
    if doc.get("with_defaults"):
        w = doc["with_defaults"]
        out.write(f"  With the protocol's values: {w['overall']}"
                  + "".join(f"; {p['name']} {w['verdicts'].get(p['population'], '?')}" for p in doc["populations"])
                  + ".\n")
    a = doc["answer"]
    if a["verdict"] == "undetermined":
        _write_plan(doc, a, out, details)
    elif a["verdict"] == "ineligible":
        parts = a.get("reason", {}).get("parts", [])
        if len(parts) == 1:
            out.write(f"  Why: {parts[0]['text']}\n")
        elif parts:
            out.write("  Why (these findings together; one line per criterion they settle):\n")
            for part in parts:
                out.write(f"   - {part['text']}\n")
        miss = a.get("nearest_miss")
        if miss:
            caveat = "; ".join(c["text"] for c in miss.get("caveats", []))
            out.write(f"  Nearest miss: {miss['text']}" + (f", {caveat}" if caveat else "") + "\n")
        else:
            out.write("  Nearest miss: none; no change of the recorded values alone would do it\n")
        named = a.get("other_reasons_named", [])
        if named:
            out.write("  Each also enough alone: " + "; ".join(named)
                      + (f" (and {a['other_reasons'] - len(named)} more)" if a["other_reasons"] > len(named) else "")
                      + "\n")
    else:
        text = _cap(a["text"]) + "."
        for p in a.get("no_exclusions", []):
            name = next((x["name"] for x in doc["populations"] if x["population"] == p), p)
            text += f" The knowledge base has no exclusion criteria for {name}: check the full protocol for any."
        out.write(f"  {text}\n")
        margins = a.get("thinnest_margins", [])
        if margins:
            out.write("  Closest to their thresholds:\n")
            for m in margins[:3]:
                rel = f", {m['relative']}" if m.get("relative") else ""
                out.write(f"   - {m['dated_text']} ({m['need_text']}{rel}; {m['criterion']})\n")
        if a.get("scores"):
            out.write("  Scores: " + "; ".join(f"{x['text']} ({', '.join(x['criteria'])})" for x in a["scores"]) + "\n")
        if a.get("evidence"):
            out.write("  The criteria rest on" + (" (besides the values above)" if margins else "") + ":\n")
            for ev in a["evidence"]:
                also = "also " if ev.get("beside_margin") else ""
                out.write(f"   {ev['criterion']}: {also}{'; '.join(ev['findings'])}\n")
        swaps = [x for x in a.get("swaps", []) if len(x["use"]) + len(x["instead_of"]) == 2 and x["use"]
                 and x["instead_of"]]
        if swaps:
            out.write("  Other findings on record would do as well: " + "; ".join(
                f"{x['use'][0]} in place of {x['instead_of'][0]}"
                + (f" ({', '.join(x['criteria'])})" if x.get("criteria") else "") for x in swaps[:4]) + "\n")
    if scope == "overall":
        for line in doc["populations"]:
            if not line["same_as_overall"]:
                out.write(f"{line['text']}\n")
    for note in doc["notes"]:
        out.write(f"Not used: {note}.\n")
    if a["verdict"] == "undetermined" and not details:
        n = a.get("cannot_change_outcome", 0)
        if n:
            out.write(f"Nothing else unknown can change the outcome ({n} other finding{'s' if n != 1 else ''}"
                      " unknown, no need to get them).\n")
    if doc["closed_world"]:
        names = [c["name"] for c in doc["closed_world"]]
        relied = [c["name"] for c in doc["closed_world"] if c.get("relied_on")]
        text = ("The record declares these lists complete (what a list does not hold counts as absent): "
                + ", ".join(names) + ".")
        if relied and a["verdict"] == "eligible":
            text += f" The eligibility relies on: {', '.join(x['short'] for x in a.get('rests_on', []))}."
        out.write(text + "\n")
    if doc.get("interpretations"):
        out.write("Not in the registry, the knowledge base's reading: "
                  + "; ".join(i["text"] for i in doc["interpretations"]) + ".\n")
    if details:
        _write_details(doc, out)
    if details and not doc["complete"]:
        out.write("(more explanations exist: raise --max to list them)\n")
    text = out.getvalue()
    final.write(text)
    named = [c for c in doc["criteria_status"] if re.search(rf"(?<![\w-]){re.escape(c['id'])}(?![\w.-])", text)]
    if named:
        final.write("Criteria (registry sentences):\n")
        for c in named:
            final.write(f'  {c["id"]}: "{c["sentence"]}"\n')
    if hint:
        final.write(f"{hint}\n")


def _few(label: str, most: int = 5) -> str:
    """"SLEDAI-2K descriptors: alopecia, CVA, ... and 15 more" (the data keep every item)."""
    head, sep, items = label.partition(": ")
    parts = items.split(", ") if sep else []
    if len(parts) <= most + 1:
        return label
    return f"{head}: {', '.join(parts[:most])} and {len(parts) - most} more"


def _write_plan(doc: dict, a: dict, out: IO[str], details: bool) -> None:
    """What to get for an undetermined patient, by task (tests, then the chart)."""
    steps = a.get("to_measure", [])
    for u in a.get("unexplored", []):
        may = "" if u["category"] == "medications" else "; recording them may settle it"
        out.write(f"  Not tried by the explanation (it cannot try them one by one): {u['text']}, which "
                  f"{', '.join(u['criteria'])} {'reads' if len(u['criteria']) == 1 else 'read'}{may}.\n")
    shown = steps if details or len(steps) <= STEPS_SHOWN + 1 else steps[:STEPS_SHOWN]
    for task in ("lab", "chart"):
        mine = [st for st in shown if st.get("task", "chart") == task]
        if not mine:
            continue
        heading = TASK_HEADINGS[task]
        if "then" not in a:  # no way to eligibility the explanation can see
            heading = f"What could still exclude, each alone ({heading.lower()})"
        days = {st["window"]["days"] for st in mine if st.get("window")}
        if task == "lab" and len(days) == 1 and all(st.get("window") for st in mine):
            heading += f" (a result counts if taken at most {days.pop()} days before the screening date)"
        out.write(f"  {heading}:\n")
        for st in mine:
            crit = _criteria_tag(st["criteria"])
            window = ""
            if task == "lab" and st.get("window") and len({s.get("window", {}).get("days") for s in mine}) > 1:
                window = f" (within {st['window']['days']} days before screening)"
            out.write(f"   - {st['text']}{window}{crit}\n")
            if st.get("note"):
                out.write(f"     {_cap(st['note'])}.\n")
            for c in st.get("on_record", []):
                out.write(f"     {_on_record(c)}.\n")
    if len(shown) < len(steps):
        rest = steps[len(shown):]
        out.write(f"   ... and {len(rest)} more: {', '.join(st['label'] for st in rest)}\n")
    if "then" in a and len(steps) > 1:
        alone = [st for st in steps if st["can_exclude_alone"]]
        if len(alone) == len(steps):
            out.write("  Any one of these outside its limits excludes on its own.\n")
        elif alone:
            rest = [st for st in steps if not st["can_exclude_alone"]]
            if all(st["any_of"] for st in rest) and len(rest) == 1:  # "INR or APTT": only both together
                out.write("  Any one of these outside its limits excludes on its own, except "
                          + rest[0]["label"] + (", which excludes only if both are out" if len(rest[0]["findings"]) == 2
                                                else ", which excludes only if all are out") + ".\n")
            else:
                out.write("  Each of these alone excludes if outside its limits: "
                          + ", ".join(st["label"] for st in alone) + ".\n")
    if a.get("other_ways_to_eligible"):
        n = a["other_ways_to_eligible"]
        out.write(f"  ({n} other, longer way{'s' if n > 1 else ''} to eligibility exist.)\n")
    if a.get("cannot_tell"):
        labels = [_few(x) for x in a["cannot_tell"]]
        shown = "; ".join(labels[:6]) + (f"; and {len(labels) - 6} more" if len(labels) > 6 else "")
        what = " and ".join(u["label"] for u in a.get("unexplored", []))
        if what:
            out.write(f"  Whether these matter depends on {what}, which the explanation does not try: {shown}.\n")
        else:
            out.write("  The explanation cannot judge whether these matter (no value it tries settles the verdict "
                      f"both ways): {shown}.\n")


def _write_details(doc: dict, out: IO[str]) -> None:
    names = {p["population"]: p["name"] for p in doc["populations"]}
    findings = {f["id"]: f for f in doc["findings"]}
    out.write("\nDetails\n")
    if doc["derived"]:
        out.write("  Derived values:\n")
        for d in doc["derived"]:
            out.write(f"   - {_derived_text(d)}\n")
    a = doc["answer"]
    if a["verdict"] == "eligible" and a.get("reason"):
        out.write(f"  The eligibility rests on {a['reason']['count']} findings, by criterion:\n")
        for cid, ids in a["reason"]["by_criterion"].items():
            out.write(f"   {cid}: {'; '.join(findings[i]['text'] for i in ids)}\n")
    for e in doc["explanations"]:
        label = "Overall" if e["scope"] == "overall" else names.get(e["scope"], e["scope"])
        if e.get("same_as"):
            out.write(f"  {label}: {e['verdict']}, the same explanations as {e['same_as']}\n")
            continue
        out.write(f"  {label}: {e['verdict']}\n")
        if e["verdict"] in ("eligible", "ineligible"):
            what = "excluded" if e["verdict"] == "ineligible" else "eligible"
            out.write(f"    Why {what} (sufficient reasons, smallest first; each alone settles it):\n")
            reasons = e["sufficient_reasons"]
            first = reasons[0]["findings"] if reasons else []
            for k, r in enumerate(reasons, 1):
                if k > 1 and len(first) > 4:  # long reasons differ by a finding or two: say how
                    gone = [f for f in first if f not in r["findings"]]
                    new = [f for f in r["findings"] if f not in first]
                    out.write(f"     {k}. as 1, with {' + '.join(new) or 'nothing'} instead of {' + '.join(gone) or 'nothing'}\n")
                elif k == 1 and len(first) > 4:
                    out.write(f"     1. the {len(first)} findings above\n" if a["verdict"] == "eligible" and e["scope"] == doc["scope"]
                              else f"     1. {' + '.join(first)}\n")
                else:
                    out.write(f"     {k}. {' + '.join(r['findings'])}{_criteria_tag(r['criteria'])}\n")
            out.write("    Near misses (" + ("what would have to change" if e["verdict"] == "ineligible"
                                               else "what would lose it") + "):\n")
            for k, m in enumerate(e["near_misses"], 1):
                out.write(f"     {k}. {' + '.join(m['findings'])}: {m['text']}\n")
            if not e["near_misses"]:
                out.write("     none: no change of the recorded values alone would do it\n")
        else:
            for goal in ("ineligible", "eligible"):
                sets = e["missing"].get(goal, [])
                out.write(f"    What would settle it as {goal} (each numbered line alone):\n")
                for line in _compressed_sets(sets):
                    out.write(f"     {line}\n")
                if not sets:
                    untried = "; ".join(u["text"] for u in doc.get("unexplored", [])) or \
                        "something the explanation does not try"
                    out.write("     nothing the explanation tries (a lab value, diagnosis, assessment or declaration) "
                              f"could; the verdict is undetermined, so a fuller record could settle it: {untried}\n")
            if e.get("cannot_change_outcome"):
                out.write("    Unknown, but cannot change the outcome (no need to order them):\n")
                for label in e["cannot_change_outcome"]:
                    out.write(f"     - {label}\n")
            if e.get("cannot_tell"):
                out.write("    Unknown; whether they matter depends on what the explanation does not try:\n")
                for label in e["cannot_tell"]:
                    out.write(f"     - {label}\n")
    out.write("  Findings on record (age against the look-back window):\n")
    for f in doc["findings"]:
        if f["finding"] == "patient":
            continue
        age = ""
        if "window_days" in f:
            state = "read" if f.get("read") else ("too old, not read" if not f["in_window"] else "not the latest, not read")
            age = f"  [{f['days_before_screening']} d before screening; window {f['window_days']} d: {state}]"
        out.write(f"   - {f['text']}{age}\n")


def _compressed_sets(sets: list[dict]) -> list[str]:
    """Sets of values, one per line; when several share most of their values, the shared
    ones are said once ("all of: ...") and each set by what it adds."""
    if len(sets) < 2:
        return [f"{k}. {'; '.join(s['values'])}{_criteria_tag(s['criteria'])}" for k, s in enumerate(sets, 1)]
    common = [v for v in sets[0]["values"] if all(v in s["values"] for s in sets)]
    if len(common) < 3:
        return [f"{k}. {'; '.join(s['values'])}{_criteria_tag(s['criteria'])}" for k, s in enumerate(sets, 1)]
    lines = [f"every one of these sets needs: {'; '.join(common)}"]
    for k, s in enumerate(sets, 1):
        rest = [v for v in s["values"] if v not in common]
        lines.append(f"{k}. those, and {'; '.join(rest) or 'nothing more'}{_criteria_tag(s['criteria'])}")
    return lines


def _derived_text(d: dict) -> str:
    """A derived value with its inputs, in one line."""
    from fractions import Fraction

    from pyasp_screen.findings.derive import fmt

    def num(x) -> str:
        return fmt(Fraction(x), 2 if abs(x) < 10 else 1) if isinstance(x, (int, float)) else str(x)

    unit = {"{score}": "points", "mo": "months", "a": "years"}.get(d.get("unit", ""), d.get("unit", ""))
    if "value" in d:
        value = f"{num(d['value'])} {unit}"
    elif "at_least" in d:
        value = f"at least {num(d['at_least'])} {unit}"
    else:
        value = (f"{num(d['low'])} {unit} from the items recorded present (up to {num(d['high'])} if every "
                 "item not recorded were present)")
    text = f"{d['label']}: {value}".rstrip()
    inputs = d.get("inputs")
    if d.get("name") == "crcl":
        i = inputs
        text += (f" (Cockcroft-Gault: creatinine {num(i['creatinine']['value'])} mg/dL on {i['creatinine']['date']}, "
                 f"{i['weight_used']['basis']} {num(i['weight_used']['value'])} kg, age {i['age']['value']}, "
                 f"{i['sex']['value']})")
    elif "measured" in d:
        m = d["measured"]
        mu = f" {m['unit']}" if m["unit"] else ""
        text += f" ({num(m['value'])}{mu} against ULN {num(d['uln']['value'])}{mu}, {d['uln']['from']})"
    elif isinstance(inputs, list) and inputs and "weight" in inputs[0]:
        text += " (" + ", ".join(f"{x['label']} {x['weight'] if x['weight'] is not None else '(entry criterion)'}"
                                 for x in inputs if x.get("present")) + f"; {d['rule']})"
    elif d.get("name", "").endswith("_duration"):
        text += f" since {d['onset']}"
    elif isinstance(inputs, dict) and "highest_dose_mg_per_day" in inputs:
        text += (f" ({inputs['drug'].replace('_', ' ')} up to {num(inputs['highest_dose_mg_per_day'])} mg/day, "
                 f"weight {num(inputs['weight']['value'])} kg)")
    elif isinstance(inputs, list) and inputs and "prednisone_equivalent_mg_per_day" in inputs[0]:
        text += " (" + ", ".join(f"{x['drug']} {num(x['dose_mg_per_day'])} mg/day" for x in inputs) + ")"
    if "date" in d and "window_days" in d:
        text += f"; {d['date']}, {d['days_before_screening']} d before screening, window {d['window_days']} d"
        if not d["in_window"]:
            text += ": too old, not read"
    return text


# ---------------------------------------------------------------------------------------
# Cohorts (pyasp-screen cohort) and protocol versions (pyasp-screen diff)
# ---------------------------------------------------------------------------------------

def write_cohort_table(summary, kb: KnowledgeBase, console: Console, defaults=None) -> None:
    """A cohort for people: verdict counts (beside the protocol defaults' when ``defaults``,
    the same cohort's CohortSummary under the default parameters, is given), criterion
    counts, attrition per population."""
    d = summary.as_dict()
    changed = parameters_line(kb_header(kb)["parameters_changed"], _parameter_details(kb))
    if changed:
        console.print(escape(f"*** {changed}. ***"), highlight=False, soft_wrap=True)
    rejected = (f"{d['rejected']} record{'s' if d['rejected'] != 1 else ''} could not be read (listed below)"
                if d["rejected"] else "every record was read")
    console.print(f"[bold]{escape(kb.name)} v{escape(kb.version)}[/]: {d['screened']} patients pre-screened; "
                  f"{rejected}", highlight=False)
    base = defaults.as_dict() if defaults is not None else None
    t = Table(title="verdicts (overall: eligible if eligible for "
                    + " or ".join(population_label(kb, p) for p in kb.populations) + ")", title_justify="left")
    t.add_column("")
    for v in ("eligible", "ineligible", "undetermined"):
        t.add_column(v, justify="right")
        if base is not None:
            t.add_column(f"{v} (protocol)", justify="right", style="dim")

    def row(counts, base_counts):
        cells = []
        for v in ("eligible", "ineligible", "undetermined"):
            cells.append(str(counts[v]))
            if base_counts is not None:
                cells.append(str(base_counts[v]))
        return cells
    t.add_row("overall", *row(d["overall"], base["overall"] if base else None))
    for pop in kb.populations:
        t.add_row(population_label(kb, pop), *row(d["populations"][pop], base["populations"][pop] if base else None))
    console.print(t)
    if base is not None:
        console.print("(protocol): the same patients with every parameter at the protocol's value.", highlight=False)
    t = Table(title=f"criteria (counts over all {d['screened']} patients, both populations; sole failing: "
                    "patients for whom this is the one criterion not satisfied in its population; would be "
                    "eligible: those of them with every other criterion satisfied)", title_justify="left")
    for col in ("criterion", "kind", "met", "not met", "unknown", "sole failing", "would be eligible"):
        t.add_column(col, justify="left" if col in ("criterion", "kind") else "right")
    for c in d["criteria"]:
        def cell(counts: dict) -> str:
            if len(counts) == 1:  # one population: the number alone
                return str(next(iter(counts.values())))
            return " ".join(f"{population_label(kb, p)} {n}" for p, n in counts.items())
        t.add_row(c["id"], c["kind"], str(c["met"]), str(c["not_met"]), str(c["unknown"]),
                  cell(c["only_failing"]), cell(c["gain"]))
    console.print(t)
    for pop in kb.populations:
        t = Table(title=f"attrition, {population_label(kb, pop)} (protocol order)", title_justify="left")
        for col in ("criterion", "excluded here", "remaining", "remaining with every criterion so far met"):
            t.add_column(col, justify="left" if col == "criterion" else "right")
        t.add_row("(pre-screened)", "", str(d["screened"]), str(d["screened"]))
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


# ---------------------------------------------------------------------------------------
# What-if (pyasp-screen whatif)
# ---------------------------------------------------------------------------------------

def edit_words(edit: str, kb: KnowledgeBase) -> str:
    """A --set edit for people: "anc=1.2" is "ANC 1.2 x10^9/L"; "hb=11g/dL" "Hb 11 g/dL"."""
    import re

    from pyasp_screen.knowledge.vocabulary import display_unit

    name, _, value = edit.partition("=")
    name, value = name.strip(), value.strip()
    v = kb.vocabulary
    if name in v.observations:
        o = v.observations[name]
        if o.qualitative:
            return f"{o.label} {value}"
        m = re.match(r"^\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*(.*)$", value)
        if m:
            unit = display_unit(m.group(2) or o.unit)
            return f"{o.label} {m.group(1)}{' ' + unit if unit else ''}"
    if name in v.diagnoses:
        return f"{v.diagnoses[name].label} {value}"
    if name in v.assessments:
        return f"{v.assessments[name].label}: {value}"
    if name == "complete":
        return f"{value.replace('_', ' ')} declared complete"
    return f"{name.replace('_', ' ')} {value}"


def whatif_lines(doc: dict, comparison, kb: KnowledgeBase) -> list[str]:
    """``whatif`` for people: the edits in words, the verdicts side by side, the criteria
    that change, and what the what-if patient's verdict rests on, said as a hypothesis
    ("would be eligible"), with the events that would undo an edited result."""
    edits = [edit_words(e, kb) for e in doc["edits"]["set"]] + [f"{u} unknown" for u in doc["edits"]["unset"]]
    edits += [f"parameter {k}={v}" for k, v in doc["edits"]["parameters"].items()]
    retest = " (a new result dated on the screening date)" if doc["edits"]["set"] else ""
    out = [f"{doc['patient']}: as recorded, and what if {', '.join(edits)}{retest}"]
    out.append(f"  {'':<9} {'as recorded':>12}    what if")
    for scope in doc["before"]:
        label = "overall" if scope == "overall" else population_label(kb, scope)
        x, y = doc["before"][scope], doc["after"][scope]
        out.append((f"  {label:<9} {x:>12} -> {y:<12}" + ("  (changed)" if x != y else "")).rstrip())
    changed = comparison.changed
    out.append("Criteria whose status would change:" if changed else "No criterion would change status.")
    for c, x, y in changed:
        out.append(f"  {c}: {x.replace('_', ' ')} -> {y.replace('_', ' ')}")
    after = doc["after"]["overall"]
    a = doc["answer"]
    text = a["answer"]
    if after == "eligible" and text.startswith("eligible"):
        out.append(f"With this change the patient would be {text}")
    else:
        out.append(f"With this change the patient would be {after}: {text}")
    for c in doc.get("caveats", []):
        out.append(f"  This holds {c['text']}.")
    return out
