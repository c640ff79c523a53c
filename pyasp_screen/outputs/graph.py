"""Stage 6 (pictures): the explanation graph of one patient, as a networkx DiGraph.

Two graphs. The default, :func:`build_explanation`, draws the chosen explanation only, read
off the patient's summary (explain/summary.py): the findings of the smallest sufficient
reason (or, for an undetermined patient, the findings to measure, dashed) -> the criteria
they settle -> the population verdicts -> the overall verdict; every other criterion of a
population is one grey "other criteria" node. The full graph, :func:`build` (``--show all``),
is read off the engine: each edge from a finding to a condition is there because the
engine's answer changes when that finding is made unknown (for an unknown finding: when it
takes one of its values). Its layers, left to right:

    record field (derived values only) -> finding -> criterion component -> criterion
    -> population verdict -> overall verdict

Node attributes: ``kind`` (field, finding, unknown, component, criterion, population,
overall, others), ``label`` (wrapped, never cut), ``tooltip`` (the registry sentence, the
finding in full),
``status`` (met / not_met / unknown, or the verdict), ``population``, ``highlight`` (part of
the chosen minimal explanation). Edge attribute ``relation``: supports / violates /
undecided. Exports: :func:`write` (by file extension: .dot .svg .png .pdf .graphml .json .mmd).
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import networkx as nx

from pyasp_screen.extras import require
from pyasp_screen.explain.explainer import Explainer, ScopeExplanation
from pyasp_screen.knowledge.kb import KnowledgeBase

# Criteria and components are coloured by their effect on eligibility (an exclusion that is
# not met helps, like an inclusion that is met); verdicts by the verdict.
EFFECT = {"supports": "met", "violates": "not_met", "undecided": "unknown"}
COLOURS = {"met": "#2e7d32", "not_met": "#c62828", "unknown": "#f9a825",
           "eligible": "#2e7d32", "ineligible": "#c62828", "undetermined": "#f9a825"}
FILL = {"met": "#e8f5e9", "not_met": "#ffebee", "unknown": "#fff8e1",
        "eligible": "#c8e6c9", "ineligible": "#ffcdd2", "undetermined": "#ffecb3"}
RELATION_COLOUR = {"supports": "#2e7d32", "violates": "#c62828", "undecided": "#9e9e9e", "source": "#78909c",
                   "context": "#b0bec5"}


class GraphError(Exception):
    """A graph that cannot be written: unknown format, or Graphviz missing."""


def _relation(status: str, kind: str = "inclusion") -> str:
    if status == "unknown":
        return "undecided"
    good = "met" if kind == "inclusion" else "not_met"
    return "supports" if status == good else "violates"


def _status_words(status: str, kind: str) -> str:
    """A criterion's status for people: an exclusion "not met" is drawn green, so it says
    what that means ("not met: does not apply"; "met: excludes")."""
    words = status.replace("_", " ")
    if kind == "exclusion" and status in ("met", "not_met"):
        words += ": excludes" if status == "met" else ": does not apply"
    return words


def _wrap(text: str, width: int = 30) -> str:
    """A label on lines of about ``width`` characters (nothing is cut off); a last line of
    a word or two ("ULN)") is avoided by wrapping a little wider."""
    lines = textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)
    for extra in (4, 8):
        if len(lines) > 1 and len(lines[-1]) < 9:
            lines = textwrap.wrap(text, width + extra, break_on_hyphens=False, break_long_words=False)
    return "\n".join(lines) or text


def _title(sentence: str) -> str:
    """The heading of a registry sentence ("Bone marrow function"), or, for a sentence
    without one, its opening words ("Combined with interstitial pneumonia caused by SSc")
    up to a clause, never cut inside a word (the tooltip has the sentence)."""
    head = sentence.split(":", 1)[0].strip()
    if ":" in sentence and len(head) <= 40:
        return head
    first = re.split(r"[,;:.](?:\s|$)", sentence.strip(), maxsplit=1)[0].strip()
    if len(first) <= 90:
        return first
    words, out = first.split(), ""
    for w in words:
        if len(out) + len(w) + 1 > 44:
            break
        out = f"{out} {w}".strip()
    return out + " ..."


def build_explanation(summary: dict, kb: KnowledgeBase) -> nx.DiGraph:
    """The chosen explanation only: finding -> criterion -> verdict (docs/graphs.md).

    summary: :func:`pyasp_screen.explain.summary.summarise` of the patient (its ``scope``
    is the overall verdict or one population's). Ineligible or eligible: the findings of
    the smallest sufficient reason, each drawn to the criteria it settles; undetermined:
    the findings to measure or record (dashed), each to the criteria it would decide, the
    values that would make the patient eligible on the edge.
    """
    g = nx.DiGraph(patient=summary["patient"], headline=summary["headline"], view="explanation",
                   parameters=summary.get("parameters_changed", {}))
    scope = summary.get("scope", "overall")
    crit = {c.id: c for c in kb.criteria}
    pops = [p for p in kb.populations if scope in ("overall", p)]
    findings = {f["id"]: f for f in summary["findings"]}
    a = summary["answer"]
    status_of = {c["id"]: c for c in summary.get("criteria_status", [])}
    if scope == "overall":
        g.add_node("overall", kind="overall", label=f"overall: {summary['overall']}", status=summary["overall"],
                   tooltip=summary["headline"], highlight=True)
    for line in summary["populations"]:
        if line["population"] not in pops:
            continue
        node = f"pop:{line['population']}"
        label = _wrap(f"{kb.populations.get(line['population'], line['name'])}: {line['verdict']}", 26)
        n_reasons = 1 + len(line.get("other_reasons", []))
        if line["verdict"] == "ineligible" and n_reasons > 1:
            label += f"\n({n_reasons} separate reasons,\neach enough alone)"
        g.add_node(node, kind="population", population=line["population"], status=line["verdict"],
                   label=label, tooltip=line["text"], highlight=True, text=line["text"])
        if scope == "overall":
            # a population decides the overall verdict if its verdict is the overall one
            decides = line["verdict"] == summary["overall"]
            g.add_edge(node, "overall", relation={"eligible": "supports", "ineligible": "violates"}
                       .get(line["verdict"], "undecided") if decides else "context")

    def criterion_node(cid: str) -> str:
        c = crit[cid]
        status = status_of.get(cid, {}).get("status", "unknown")
        if cid not in g:
            title = _title(c.sentence)
            g.add_node(cid, kind="criterion", criterion=cid, population=c.population, status=status,
                       effect=_relation(status, c.kind), tooltip=c.sentence, highlight=True,
                       label=f"{cid}: {_status_words(status, c.kind)}" + (f"\n{_wrap(title, 28)}" if title else ""))
            for pop in (pops if c.population == "all" else [c.population]):
                if f"pop:{pop}" in g:
                    g.add_edge(cid, f"pop:{pop}", relation=_relation(status, c.kind))
        return cid

    if a["verdict"] in ("eligible", "ineligible") and a.get("reason"):
        # an eligible patient's reason is drawn for the populations it is eligible for
        drawn = [p for p in pops if a["verdict"] == "ineligible" or p in a.get("populations", pops)]
        words = dict(zip(a["reason"]["finding_ids"], a["reason"].get("findings", [])))  # closed world in words
        need = {}
        for m in a["reason"].get("comparisons", []) + a.get("thinnest_margins", []):
            need.setdefault((m["finding_id"], m["criterion"]), m)
        touches: dict[str, list[str]] = {}
        for cid, ids in a["reason"]["by_criterion"].items():
            if cid in crit and crit[cid].population in (*drawn, "all"):
                for fid in ids:
                    touches.setdefault(fid, []).append(cid)
        # findings that settle one criterion only are drawn together, one node per criterion
        alone: dict[str, list[str]] = {}
        for fid, cids in touches.items():
            if len(cids) == 1:
                alone.setdefault(cids[0], []).append(fid)
        for fid, cids in touches.items():
            group = len(cids) == 1 and len(alone[cids[0]]) > 1
            node = f"findings:{cids[0]}" if group else fid
            if node not in g:
                members = alone[cids[0]] if group else [fid]
                lines = []
                for m in members:
                    cmps = [need[(m, c)] for c in cids if (m, c) in need]
                    needs = "; ".join(dict.fromkeys(c["need_text"] for c in cmps))
                    text = f"{cmps[0].get('dated_text', cmps[0]['value_text'])} ({needs})" if cmps else words.get(m, findings[m]["text"])
                    lines.append(("• " if group else "") + _wrap(text, 38))
                g.add_node(node, kind="finding", label="\n".join(lines), status="known", highlight=True,
                           tooltip="; ".join(findings[m]["text"] for m in members), findings=", ".join(members))
            for cid in cids:
                criterion_node(cid)
                status = status_of.get(cid, {}).get("status", "unknown")
                g.add_edge(node, cid, relation=_relation(status, crit[cid].kind))
        # a finding that decides the verdict by a rule beside the criteria (kb/lib/core.lp:
        # deceased) is drawn straight to the populations it excludes
        for key, ids in a["reason"]["by_criterion"].items():
            if key in crit:
                continue
            for fid in ids:
                if fid not in g:
                    g.add_node(fid, kind="finding", label=_wrap(words.get(fid, findings[fid]["text"]), 38),
                               status="known", highlight=True, tooltip=findings[fid]["text"], findings=fid)
                for pop in drawn:
                    if f"pop:{pop}" in g:
                        g.add_edge(fid, f"pop:{pop}", relation="violates" if a["verdict"] == "ineligible"
                                   else "supports")
    elif a["verdict"] == "undetermined":
        for k, st in enumerate(a.get("to_measure", []), 1):
            node = f"measure:{k}"
            values = st["text"].split(": ", 1)[1] if ": " in st["text"] else ""
            label = "\n".join([_wrap(f"{k}. {st['action']} {st['label']}?", 30)]
                              + [_wrap(part, 34) for part in values.split("; ") if part])
            g.add_node(node, kind="unknown", status="unknown", highlight=True, label=label, tooltip=st["text"])
            for cid in st["criteria"]:
                if cid in crit and crit[cid].population in (*pops, "all") and \
                        (scope != "overall" or crit[cid].population in a.get("then", {}).get("populations", pops)
                         or crit[cid].population == "all"):
                    criterion_node(cid)
                    g.add_edge(node, cid, relation="undecided")
    # an ineligible population's own reason, where the chosen one does not show it (SSc
    # excluded by its problem list as well as by the ANC that excludes SLE)
    if a["verdict"] == "ineligible":
        for line in summary["populations"]:
            pop, reason = line["population"], line.get("reason")
            if pop not in pops or line["verdict"] != "ineligible" or not reason:
                continue
            if any(cid in g for cid in reason["criteria"]):
                continue
            cmps = {(m["finding_id"], m["criterion"]): m for m in reason.get("comparisons", [])}
            for k, part in enumerate(reason.get("parts", [])):
                node = f"reason:{pop}:{k}"
                lines = []
                for fid in part["finding_ids"]:
                    hit = [cmps[(fid, c)] for c in part["criteria"] if (fid, c) in cmps]
                    text = (f"{hit[0]['dated_text']} ({hit[0]['need_text']})" if hit else
                            dict(zip(reason["finding_ids"], reason["findings"])).get(fid, findings[fid]["text"]))
                    lines.append(_wrap(text, 38))
                g.add_node(node, kind="finding", label="\n".join(lines), status="known", highlight=True,
                           tooltip=part["text"], findings=", ".join(part["finding_ids"]))
                for cid in part["criteria"]:
                    criterion_node(cid)
                    g.add_edge(node, cid, relation=_relation(status_of.get(cid, {}).get("status", "unknown"),
                                                             crit[cid].kind))
    # a population none of whose criteria is drawn says why in its own node
    for line in summary["populations"]:
        node = f"pop:{line['population']}"
        if node in g and not any(d.get("population") == line["population"] and d["kind"] == "criterion"
                                 for _, d in g.nodes(data=True)):
            why = ""
            if line.get("rule_out"):
                slot = line["rule_out"]["slot"]
                why = (f"(not ruled out: the {_category(slot)} is not declared complete)"
                       if slot.startswith("complete:") else f"({line['rule_out']['text']} would rule it out)")
            if why and len(why) <= 70:  # a longer reason is in the tooltip
                g.nodes[node]["label"] += "\n" + _wrap(why, 30)
    # every other criterion of a drawn population, in one node
    for pop in pops:
        if f"pop:{pop}" not in g:
            continue
        others = [c for c in kb.criteria if c.population in (pop, "all") and c.id not in g]
        if not others or len(others) == len([c for c in kb.criteria if c.population in (pop, "all")]):
            continue  # none drawn: the population's verdict node says it (its tooltip: why)
        counts: dict[str, int] = {}
        for c in others:  # by effect: an exclusion not met is satisfied, like an inclusion met
            effect = {"supports": "satisfied", "violates": "not satisfied", "undecided": "unknown"}[
                _relation(status_of.get(c.id, {}).get("status", "unknown"), c.kind)]
            counts[effect] = counts.get(effect, 0) + 1
        text = ", ".join(f"{counts[e]} {e}" for e in ("satisfied", "not satisfied", "unknown") if e in counts)
        g.add_node(f"others:{pop}", kind="others", population=pop, status="other", highlight=False,
                   label=_wrap(f"{len(others)} other {summary_name(kb, pop)} criteria: {text}", 26),
                   tooltip=", ".join(f"{c.id} {status_of.get(c.id, {}).get('status', 'unknown')}" for c in others))
        g.add_edge(f"others:{pop}", f"pop:{pop}", relation="context")
    return _in_protocol_order(g, kb)


def _in_protocol_order(g: nx.DiGraph, kb: KnowledgeBase) -> nx.DiGraph:
    """The same graph with criteria (and the findings drawn to them) in protocol order, so
    that Graphviz lays them out top to bottom as the registry lists them."""
    order = {c.id: k for k, c in enumerate(kb.criteria)}

    def rank(node) -> tuple:
        d = g.nodes[node]
        if d["kind"] == "criterion":
            return (1, order.get(node, 999))
        if d["kind"] == "unknown" and node.startswith("measure:"):  # the plan's own order
            return (0, int(node.split(":")[1]))
        if d["kind"] in ("finding", "unknown"):
            return (0, min((order.get(t, 999) for t in g.successors(node)), default=999))
        return (2, 0)
    h = nx.DiGraph(**g.graph)
    for node in sorted(g.nodes, key=rank):
        h.add_node(node, **g.nodes[node])
    for a, b in sorted(g.edges, key=lambda e: (rank(e[0]), rank(e[1]))):
        h.add_edge(a, b, **g.edges[a, b])
    return h


def _category(slot: str) -> str:
    cat = slot.split(":", 1)[1]
    return {"diagnoses": "problem list", "medications": "medication history"}.get(cat, cat.replace("_", " "))


def summary_name(kb: KnowledgeBase, pop: str) -> str:
    text = kb.populations.get(pop, "")
    return text[text.rindex("(") + 1:-1] if "(" in text and text.endswith(")") else pop.upper()


def build(ex: Explainer, explanation: ScopeExplanation | None = None, show: str = "all",
          population: str | None = None) -> nx.DiGraph:
    """The explanation graph of the patient behind ``ex``.

    show: "all" (every finding that matters and every unknown that could), "reasons" (the
    findings of the chosen explanation only) or "missing" (unknown findings only).
    population: keep one population's criteria (and the "all" ones) only.
    """
    kb = ex.kb
    g = nx.DiGraph(patient=ex.findings.patient)
    n = len(ex.units)
    now = ex.statuses(ex.solve(range(n)))
    verdicts = ex.verdict()
    crit_of = {}
    for c in kb.criteria:
        crit_of[c.id] = c
        for part in c.components:
            crit_of[part] = c
    pops = [p for p in kb.populations if population in (None, p)]
    keep = {c.id for c in kb.criteria if c.population in (*pops, "all")}
    chosen: set[str] = set()
    if explanation is not None:
        if explanation.sufficient_reasons:
            chosen = set(explanation.sufficient_reasons[0].findings)
        elif explanation.missing:  # what to measure: a way to eligibility first
            first = next((explanation.missing[g][0] for g in ("eligible", "ineligible")
                          if explanation.missing.get(g)), None)
            chosen = set(first.findings) if first else set()

    # verdicts
    g.add_node("overall", kind="overall", label=f"overall: {verdicts['overall']}",
               status=verdicts["overall"], tooltip="eligible for some population; ineligible for all",
               highlight=True)
    for pop in pops:
        g.add_node(f"pop:{pop}", kind="population", population=pop, status=verdicts[pop],
                   label=f"{kb.populations.get(pop, pop)}: {verdicts[pop]}", tooltip="", highlight=True)
        g.add_edge(f"pop:{pop}", "overall", relation={"eligible": "supports", "ineligible": "violates"}
                   .get(verdicts[pop], "undecided"))
    # criteria and components
    for c in kb.criteria:
        if c.id not in keep:
            continue
        status = now.get(c.id, "unknown")
        g.add_node(c.id, kind="criterion", label=f"{c.id}: {_status_words(status, c.kind)}", status=status,
                   effect=_relation(status, c.kind), population=c.population, tooltip=c.sentence,
                   criterion=c.id, highlight=False)
        for pop in pops if c.population == "all" else [c.population]:
            g.add_edge(c.id, f"pop:{pop}", relation=_relation(status, c.kind))
        for part in c.components:
            st = now.get(part, "unknown")
            short = f"{c.id} {part.split('.', 1)[1].replace('_', ' ')}"  # "EX-1 organ", never "1 organ"
            g.add_node(part, kind="component", label=f"{short}: {st.replace('_', ' ')}", status=st, effect=_relation(st, c.kind),
                       population=c.population, tooltip=c.sentence, criterion=c.id, highlight=False)
        for part in c.components:
            parent = _parent(part, c)
            g.add_edge(part, parent, relation=_relation(now.get(part, "unknown"), c.kind))
    conditions = [x for x in g.nodes if g.nodes[x]["kind"] in ("criterion", "component")]

    # known findings: an edge to every condition whose status depends on it
    if show in ("all", "reasons"):
        for i, u in enumerate(ex.units):
            if show == "reasons" and u.text not in chosen:
                continue
            without = ex.statuses(ex.solve([j for j in range(n) if j != i]))
            touched = [x for x in conditions if without.get(x) != now.get(x)]
            if not touched:
                continue
            fid = f"finding:{i}"
            g.add_node(fid, kind="finding", label=_wrap(u.text), tooltip=u.text, status="known",
                       highlight=u.text in chosen, record_fields=", ".join(dict.fromkeys(u.sources)))
            for x in _lowest(touched, crit_of):
                c = crit_of[x]
                g.add_edge(fid, x, relation=_relation(now.get(x, "unknown"), c.kind))
            # a derived value (CrCl) is drawn from the record entries it was computed from,
            # each named for people ("creatinine 0.8 mg/dL (2026-02-24)")
            for key, label, field in _inputs(ex, u):
                node = f"field:{field}"
                g.add_node(node, kind="field", label=_wrap(label, 26), tooltip=f"{label} (record field {field})",
                           status="known", highlight=u.text in chosen, record_field=field)
                g.add_edge(node, fid, relation="source")
    # unknown findings: an edge to every condition one of their values would decide
    if show in ("all", "missing"):
        values_of: dict[str, list[int]] = {}
        for j, h in enumerate(ex.hyps):
            values_of.setdefault(h.slot, []).append(j)
        for s in ex.unknown_slots:
            touched: set[str] = set()
            for j in values_of.get(s, []):
                atoms = ex.solve(range(n), picks=[j])
                st = ex.statuses(atoms) if atoms is not None else {}
                touched |= {x for x in conditions if st.get(x) != now.get(x)}
            if not touched:
                continue
            label = ex.slots[s].label
            uid = f"unknown:{s}"
            g.add_node(uid, kind="unknown", label=f"{_wrap(label)}?", tooltip=f"unknown: {label}",
                       status="unknown", highlight=label in chosen)
            for x in _lowest(sorted(touched), crit_of):
                g.add_edge(uid, x, relation="undecided")
    return g


def _parent(part: str, c) -> str:
    """The condition a component belongs to: the longest other component that prefixes it
    (SSC-IN-3.conventional is drawn under SSC-IN-3.refractory_treatment when the knowledge
    base names it so), else the criterion."""
    best = c.id
    for other in c.components:
        if other != part and part.startswith(other + ".") and len(other) > len(best):
            best = other
    return best


def _lowest(touched, crit_of) -> list[str]:
    """Of the conditions a finding changes, the lowest: a criterion only when none of its
    components changed (the edge goes to the first layer the finding reaches)."""
    touched = [x for x in touched if x in crit_of]
    out = []
    for x in touched:
        c = crit_of[x]
        if x == c.id and any(y != x and crit_of[y] is c for y in touched):
            continue
        out.append(x)
    return out


def _inputs(ex: Explainer, u) -> list[tuple[str, str, str]]:
    """The record entries a derived value came from, named for people: (key, label,
    record field), from the finding's structured data (findings/derive.py)."""
    data = next((f.data for f in ex.findings.findings if f.fact == u.facts[0] and f.data), None)
    inputs = (data or {}).get("inputs")
    if not isinstance(inputs, dict):
        return []
    out = []
    for key, v in inputs.items():
        if not isinstance(v, dict) or "field" not in v:
            continue
        name = {"weight_used": "weight used", "birth_date": "date of birth"}.get(key, key)
        if key == "age":
            label = f"age {v['value']} (date of birth)"
        elif key == "sex":
            label = f"sex {v['value']}"
        else:
            unit = f" {v['unit']}" if v.get("unit") else ""
            label = f"{name} {_fmt(v['value'])}{unit}" + (f" ({v['date']})" if v.get("date") else "")
        out.append((key, label, v["field"]))
    return out


def _fmt(x) -> str:
    from fractions import Fraction

    from pyasp_screen.findings.derive import fmt

    return fmt(Fraction(x), 2) if isinstance(x, (int, float)) else str(x)


# ---------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------

RENDERED = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
FORMATS = (".dot", ".gv", ".graphml", ".json", ".mmd", *RENDERED)


def to_pydot(g: nx.DiGraph, kb: KnowledgeBase):
    """A Graphviz graph: populations as clusters, colours per status, a legend, the chosen
    explanation drawn bold and the rest faded, unknown findings dashed, tooltips in SVG."""
    import pydot

    title = f"{g.graph.get('patient', '')}: {g.graph.get('headline', 'why this verdict')}"
    if g.graph.get("parameters"):
        title += "\na what-if, not the protocol: " + ", ".join(
            f"{k}={v}" for k, v in g.graph["parameters"].items())
    dot = pydot.Dot(graph_type="digraph", rankdir="LR", fontname="Helvetica", fontsize="12",
                    labelloc="t", label=_quote(title), nodesep="0.2",
                    ranksep="0.7", tooltip="pyasp-screen explanation graph")
    clusters = {}
    for pop in list(kb.populations) + ["all"]:
        label = kb.populations.get(pop, "all populations")
        clusters[pop] = pydot.Cluster(f"pop_{pop}", label=label, style="rounded", color="#90a4ae",
                                      fontname="Helvetica", fontsize="11", labelloc="b")
    explanation_only = g.graph.get("view") == "explanation"
    any_highlight = not explanation_only and any(d.get("highlight") and d["kind"] in ("finding", "unknown")
                                                 for _, d in g.nodes(data=True))
    for node, d in g.nodes(data=True):
        kind, status = d["kind"], d.get("status", "")
        faded = any_highlight and kind in ("finding", "unknown", "field") and not d.get("highlight")
        attrs = dict(label=d["label"], tooltip=d.get("tooltip", "") or d["label"], fontname="Helvetica",
                     fontsize="10", style="filled", shape="box")
        if kind in ("criterion", "component", "population", "overall"):
            key = EFFECT[d["effect"]] if "effect" in d else status
            attrs.update(color=COLOURS.get(key, "#616161"), fillcolor=FILL.get(key, "#ffffff"))
            attrs["shape"] = {"criterion": "box", "component": "box", "population": "doubleoctagon",
                              "overall": "doubleoctagon"}[kind]
            attrs["style"] = "filled,rounded" if kind == "component" else "filled"
        elif kind == "unknown":
            attrs.update(style="dashed,filled", color="#f9a825", fillcolor="#ffffff", shape="ellipse")
        elif kind == "field":
            attrs.update(shape="note", color="#78909c", fillcolor="#eceff1")
        elif kind == "others":
            attrs.update(shape="box", style="dashed,rounded", color="#b0bec5", fontcolor="#607d8b",
                         fillcolor="#ffffff")
        else:
            attrs.update(color="#455a64", fillcolor="#ffffff", shape="box")
        if d.get("highlight") and kind in ("finding", "unknown", "field") and not explanation_only:
            attrs.update(penwidth="2.5", color="#1565c0")
        if faded:
            attrs.update(fontcolor="#9e9e9e", color="#cfd8dc")
        pyd_node = pydot.Node(_quote(node), **{k: _quote(str(v)) for k, v in attrs.items()})
        pop = d.get("population")
        if kind in ("criterion", "component", "others") and pop in clusters:
            clusters[pop].add_node(pyd_node)
        else:
            dot.add_node(pyd_node)
    for c in clusters.values():
        if c.get_nodes():
            dot.add_subgraph(c)
    if explanation_only:
        # few crossing-reduction passes keep the nodes in the order given (criteria in
        # protocol order, findings beside them): the picture reads like the registry
        dot.set("mclimit", "0.01")
    for a, b, d in g.edges(data=True):
        rel = d.get("relation", "supports")
        faded = any_highlight and g.nodes[a]["kind"] in ("finding", "unknown", "field") and not g.nodes[a].get("highlight")
        extra = {"label": _quote(d["label"]), "fontsize": "9", "fontname": "Helvetica",
                 "fontcolor": "#455a64"} if d.get("label") else {}
        dot.add_edge(pydot.Edge(_quote(a), _quote(b), color=RELATION_COLOUR["undecided" if faded else rel],
                                style={"undecided": "dashed", "context": "dotted"}.get(rel, "solid"),
                                tooltip=_quote(rel), penwidth="1.6" if not faded else "0.8", **extra))
    legend = pydot.Cluster("legend", label="legend", fontname="Helvetica", fontsize="10", color="#b0bec5")
    used = {EFFECT[d["effect"]] if "effect" in d else d.get("status") for _, d in g.nodes(data=True)}
    used |= {"met" if s == "eligible" else "not_met" if s == "ineligible" else "unknown" if s == "undetermined" else s
             for s in set(used)}
    for key, text in (("met", "supports eligibility (inclusion met, exclusion not met) / eligible"),
                      ("not_met", "excludes (inclusion not met, exclusion met) / ineligible"),
                      ("unknown", "unknown / undetermined")):
        if key not in used:
            continue
        legend.add_node(pydot.Node(f"legend_{key}", label=_quote(text), style="filled", shape="box",
                                   fillcolor=FILL[key], color=COLOURS[key], fontname="Helvetica", fontsize="9"))
    if any(d["kind"] == "unknown" for _, d in g.nodes(data=True)):
        legend.add_node(pydot.Node("legend_unknown_finding", label=_quote("unknown finding (to measure)"),
                                   shape="ellipse", style="dashed", color="#f9a825", fontname="Helvetica",
                                   fontsize="9"))
    if any(d["kind"] in ("population", "overall") for _, d in g.nodes(data=True)):
        legend.add_node(pydot.Node("legend_verdict", label=_quote("a verdict (a population's, or overall)"),
                                   shape="doubleoctagon", fontname="Helvetica", fontsize="9", color="#616161"))
    if any(d["kind"] == "others" for _, d in g.nodes(data=True)):
        legend.add_node(pydot.Node("legend_others", label=_quote("the population's other criteria, counted\n"
                                                                 "(satisfied: inclusion met or exclusion not met)"),
                                   shape="box", style="dashed,rounded", color="#b0bec5", fontcolor="#607d8b",
                                   fontname="Helvetica", fontsize="9"))
    if not explanation_only:
        legend.add_node(pydot.Node("legend_chosen", label=_quote("chosen explanation"), shape="box",
                                   penwidth="2.5", color="#1565c0", fontname="Helvetica", fontsize="9"))
    dot.add_subgraph(legend)
    return dot


def _quote(text: str) -> str:
    """A DOT string; a line break in a label becomes DOT's \n."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_mermaid(g: nx.DiGraph, kb: KnowledgeBase | None = None) -> str:
    """Mermaid flowchart text, for pasting into Markdown: populations as subgraphs
    (clusters), line breaks as <br/>, edge labels kept."""
    ids = {node: f"n{i}" for i, node in enumerate(g.nodes)}

    def label(text: str) -> str:
        return text.replace('"', "'").replace("\n", "<br/>")

    def node_line(node, d) -> str:
        kind = d["kind"]
        shape = (("([", "])") if kind == "unknown" else ("{{", "}}") if kind in ("population", "overall")
                 else ("(", ")") if kind == "component" else ("[", "]"))
        return f'{ids[node]}{shape[0]}"{label(d["label"])}"{shape[1]}'

    lines = ["flowchart LR"]
    members: dict[str, list] = {}
    for node, d in g.nodes(data=True):
        if d["kind"] in ("criterion", "component", "others") and d.get("population"):
            members.setdefault(d["population"], []).append(node)
        else:
            lines.append("  " + node_line(node, d))
    for k, (pop, nodes) in enumerate(members.items()):
        title = (kb.populations.get(pop, pop) if kb is not None else pop) if pop != "all" else "all populations"
        lines.append(f'  subgraph cluster{k}["{label(title)}"]')
        lines += [f"    {node_line(n, g.nodes[n])}" for n in nodes]
        lines.append("  end")
    for a, b, d in g.edges(data=True):
        rel = d.get("relation", "")
        arrow = {"undecided": "-.->", "context": "-.-"}.get(rel, "-->")
        text = label(d.get("label") or ("" if rel in ("source", "context") else rel))
        lines.append(f"  {ids[a]} {arrow}|{text}| {ids[b]}" if text else f"  {ids[a]} {arrow} {ids[b]}")
    classes = {"met": "fill:#e8f5e9,stroke:#2e7d32", "not_met": "fill:#ffebee,stroke:#c62828",
               "unknown": "fill:#fff8e1,stroke:#f9a825", "eligible": "fill:#c8e6c9,stroke:#2e7d32",
               "ineligible": "fill:#ffcdd2,stroke:#c62828", "undetermined": "fill:#ffecb3,stroke:#f9a825",
               "other": "fill:#ffffff,stroke:#b0bec5,color:#607d8b,stroke-dasharray:4"}
    for name, style in classes.items():
        lines.append(f"  classDef {name} {style}")
    for node, d in g.nodes(data=True):
        key = EFFECT[d["effect"]] if "effect" in d else d.get("status")
        if key in classes:
            lines.append(f"  class {ids[node]} {key}")
    return "\n".join(lines) + "\n"


def write(g: nx.DiGraph, kb: KnowledgeBase, path: Path) -> None:
    """Write the graph in the format of the file's extension.

    Raises GraphError for an unknown extension, or for .svg/.png/.pdf when the Graphviz
    program `dot` is not installed (the text formats need no Graphviz).
    """
    ext = path.suffix.lower()
    if ext not in FORMATS:
        raise GraphError(f"{path}: unknown format {ext or '(none)'}; use one of {', '.join(FORMATS)}")
    if ext in (".dot", ".gv"):
        path.write_text(to_pydot(g, kb).to_string(), encoding="utf-8")
    elif ext == ".graphml":
        h = g.copy()
        for _, d in h.nodes(data=True):
            for k, v in list(d.items()):
                d[k] = v if isinstance(v, (str, int, float, bool)) else str(v)
        nx.write_graphml(h, path)
    elif ext == ".json":
        path.write_text(json.dumps(nx.node_link_data(g, edges="links"), indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    elif ext == ".mmd":
        path.write_text(to_mermaid(g, kb), encoding="utf-8")
    else:
        if shutil.which("dot") is None:
            raise GraphError(f"{path}: rendering {ext} needs the Graphviz program 'dot', which is not installed "
                             "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz); "
                             ".dot, .graphml, .json and .mmd need no Graphviz")
        path.write_bytes(to_pydot(g, kb).create(prog="dot", format=RENDERED[ext]))


def plot_attrition(summary, kb: KnowledgeBase, path: Path) -> None:
    """The attrition table of a cohort as a chart (matplotlib): for each population, the
    patients remaining after each criterion in protocol order, and of those the patients
    with every criterion so far met. Format from the extension (.svg, .png, .pdf)."""
    matplotlib = require("matplotlib", "plot", "an attrition chart (--plot)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pops = list(kb.populations)
    fig, axes = plt.subplots(1, len(pops), figsize=(6.5 * len(pops), 5.5), squeeze=False)
    for ax, pop in zip(axes[0], pops):
        rows = summary.attrition(pop)
        labels = ["pre-screened"] + [r[0] for r in rows]
        remaining = [summary.screened] + [r[2] for r in rows]
        settled = [summary.screened] + [r[3] for r in rows]
        y = range(len(labels))
        ax.barh(y, remaining, color="#ffe082", label="remaining (not excluded)")
        ax.barh(y, settled, color="#66bb6a", label="remaining, every criterion so far met")
        for i, (r, st) in enumerate(zip(remaining, settled)):
            ax.text(r, i, f" {r}", va="center", fontsize=8)
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.invert_yaxis()
        label = kb.populations.get(pop, pop)
        ax.set_title(f"{label}: attrition in protocol order\nafter the last criterion: {remaining[-1]} not excluded, "
                     f"{settled[-1]} with every criterion met", fontsize=10)
        ax.set_xlabel("patients")
        ax.legend(fontsize=8, loc="lower right")
    from pyasp_screen.outputs.render import kb_header, parameters_line

    title = f"{kb.name} v{kb.version}: {summary.screened} patients pre-screened"
    changed = parameters_line(kb_header(kb)["parameters_changed"])
    title += f"\n{changed}" if changed else " (protocol defaults)"
    fig.suptitle(title, fontsize=11, wrap=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
