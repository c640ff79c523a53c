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

OUTPUT_VERSION = "2"  # 2: results[].derived; explain leads with its answer (docs/output.md)
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
    """A row per patient; with ``details``, every criterion of every patient."""
    screened = [o for o in outcomes if isinstance(o, Screened)]
    changed = parameters_line(kb_header(kb)["parameters_changed"])
    if changed and details:
        console.print(escape(changed), highlight=False, soft_wrap=True)
    if details:
        for s in screened:
            _patient_table(s, kb, console)
    elif screened:
        from rich import box

        table = Table(title=escape(f"{kb_title(kb)}: {len(screened)} patient(s) screened"),
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
            table.add_column("answer (reason / what to measure / thinnest margins)", overflow="fold")
        for s in screened:
            r = s.result
            failing = excluded_by(s, kb)
            unknown = sum(1 for c in kb.criteria if r.statuses.get(c.id) == "unknown")
            deceased = " (deceased)" if any(f.name == "deceased" for f in s.findings.findings) else ""
            cells = [escape(r.patient)] + ([escape(s.file.rsplit("/", 1)[-1])] if wide else []) + [_styled(r.overall) + deceased,
                     *[_styled(r.verdicts.get(p, "undetermined")) for p in kb.populations],
                     ", ".join(failing) or "-", str(unknown)]
            if explanations is not None:
                cells.append(escape(short_answer(explanations[id(s)])))
            table.add_row(*cells)
        console.print(table)
    for o in outcomes:
        if isinstance(o, RecordError):
            console.print(f"[red]rejected[/] {escape(str(o))}", highlight=False, soft_wrap=True)
    s = summary(outcomes, kb)
    console.print(f"{s['screened']} screened ({s['overall']['eligible']} eligible, "
                  f"{s['overall']['ineligible']} ineligible, {s['overall']['undetermined']} undetermined), "
                  f"{s['rejected']} rejected", highlight=False)


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
    for f in s.findings.findings:
        if f.name in ("crcl", "prednisone_equivalent") or f.name.endswith("_x_uln"):
            days = (f.data or {}).get("days_before_screening")
            window = kb.windows.get(f.name)
            stale = (f"  [{days} days before screening, outside the {window}-day window: not read, "
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


def parameters_line(changed: dict) -> str | None:
    """"Parameters changed from the protocol defaults: crcl_min=30 mL/min", or None."""
    if not changed:
        return None
    return "Parameters changed from the protocol defaults: " + ", ".join(f"{k}={v}" for k, v in changed.items())


STEPS_SHOWN = 8  # steps of a long plan printed without --details


def write_summary_text(doc: dict, out: IO[str], details: bool = False) -> None:
    """One patient's explanation for people: the answer first, then (``details``) every
    explanation, each population only where it differs from the overall one; last, the
    registry sentence of every criterion the text names."""
    import io
    import re

    final = out
    out = io.StringIO()
    scope = doc.get("scope", "overall")
    where = f" ({doc['file']})" if doc.get("file") else ""
    out.write(f"{doc['patient']}{where}\n")
    if scope == "overall":
        out.write(f"{_cap(doc['headline'])}.\n")
    else:
        name = next(p["name"] for p in doc["populations"] if p["population"] == scope)
        out.write(f"{name} (--population {scope}): {doc['headline']}.\n")
    a = doc["answer"]
    if a["verdict"] == "undetermined":
        steps = a.get("to_measure", [])
        if steps and "then" not in a:  # no way to eligibility the explanation can see
            out.write("  What could still exclude (each alone):\n")
        elif len(steps) == 1:
            out.write("  To settle it:\n")
        elif steps:
            out.write("  In this order (a result that alone could exclude comes first):\n")
        shown = steps if details or len(steps) <= STEPS_SHOWN + 1 else steps[:STEPS_SHOWN]
        for k, st in enumerate(shown, 1):
            crit = f"  [{', '.join(st['criteria'])}]" if st["criteria"] else ""
            out.write(f"   {k}. {st['action']} {st['text']}{crit}\n")
            if st.get("note"):
                out.write(f"      note: {st['note']}\n")
        if len(shown) < len(steps):
            rest = steps[len(shown):]
            out.write(f"   ... and {len(rest)} more: {', '.join(st['label'] for st in rest)} (--details)\n")
        if a.get("other_ways_to_eligible"):
            n = a["other_ways_to_eligible"]
            out.write(f"  ({n} other, longer way{'s' if n > 1 else ''} to eligibility: --details)\n")
    elif a["verdict"] == "ineligible":
        parts = a.get("reason", {}).get("parts", [])
        if len(parts) == 1:
            out.write(f"  Why: {parts[0]['text']}\n")
        elif parts:
            out.write("  Why (these findings together; one line per criterion they settle):\n")
            for part in parts:
                out.write(f"   - {part['text']}\n")
        if a.get("nearest_miss"):
            out.write(f"  Nearest miss: {a['nearest_miss']['text']}\n")
        else:
            out.write("  Nearest miss: none; no change of the recorded values alone would do it\n")
        if a.get("other_reasons"):
            n = a["other_reasons"]
            out.write(f"  ({n} other sufficient reason{'s' if n > 1 else ''}: --details)\n")
    else:
        out.write(f"  {_cap(a['text'])}.\n")
        margins = a.get("thinnest_margins", [])
        if margins:
            out.write("  Thinnest margins:\n")
            for m in margins[:3]:
                out.write(f"   - {m['text']}\n")
        if a.get("rests_on"):
            out.write("  Also rests on these lists declared complete: "
                      f"{', '.join(x['short'] for x in a['rests_on'])}\n")
        if a.get("other_reasons"):
            swaps = [f"{' + '.join(x['use']) or 'nothing'} instead of {' + '.join(x['instead_of']) or 'nothing'}"
                     for x in a.get("swaps", []) if len(x["use"]) + len(x["instead_of"]) <= 2][:3]
            n = a["other_reasons"]
            text = f"  {n} other set{'s' if n > 1 else ''} of findings also suffice"
            out.write(text + (f", e.g. {'; '.join(swaps)}" if swaps else "") + " (--details)\n")
    if scope == "overall":
        for line in doc["populations"]:
            if not line["same_as_overall"]:
                out.write(f"{line['text']}\n")
    useless = next((e.get("cannot_change_outcome", []) for e in doc["explanations"]
                    if e["scope"] == scope and "cannot_change_outcome" in e), [])
    if useless and not details:
        out.write(f"Not needed: {len(useless)} other unknown findings cannot change the outcome (--details lists them).\n")
    for note in doc["notes"]:
        out.write(f"Not read: {note}\n")
    if doc["closed_world"]:
        out.write("Declared complete in the record: " + ", ".join(
            c["text"].removesuffix(" declared complete") for c in doc["closed_world"]) + ".\n")
    changed = parameters_line(doc["parameters_changed"])
    if changed:
        out.write(changed + ".\n")
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
                    out.write(f"     {k}. {' + '.join(r['findings'])}  [{', '.join(r['criteria'])}]\n")
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
                    out.write("     nothing the explanation hypothesises could do it (it does not invent "
                              "treatment courses)\n" if goal == "eligible" else "     nothing left unknown could do it\n")
            if e.get("cannot_change_outcome"):
                out.write("    Unknown, but cannot change the outcome (no need to order them):\n")
                for label in e["cannot_change_outcome"]:
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
        return [f"{k}. {'; '.join(s['values'])}  [{', '.join(s['criteria'])}]" for k, s in enumerate(sets, 1)]
    common = [v for v in sets[0]["values"] if all(v in s["values"] for s in sets)]
    if len(common) < 3:
        return [f"{k}. {'; '.join(s['values'])}  [{', '.join(s['criteria'])}]" for k, s in enumerate(sets, 1)]
    lines = [f"every one of these sets needs: {'; '.join(common)}"]
    for k, s in enumerate(sets, 1):
        rest = [v for v in s["values"] if v not in common]
        lines.append(f"{k}. those, and {'; '.join(rest) or 'nothing more'}  [{', '.join(s['criteria'])}]")
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

def write_cohort_table(summary, kb: KnowledgeBase, console: Console) -> None:
    d = summary.as_dict()
    console.print(f"[bold]{escape(kb.name)} v{escape(kb.version)}[/]: {d['screened']} screened, "
                  f"{d['rejected']} rejected", highlight=False)
    changed = parameters_line(kb_header(kb)["parameters_changed"])
    if changed:
        console.print(escape(changed), highlight=False, soft_wrap=True)
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
