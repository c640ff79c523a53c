"""Stage 6 (pictures): the explanation graph of one patient, as a networkx DiGraph.

The graph is read off the engine, not redrawn from a table: each edge from a finding to a
condition is there because the engine's answer changes when that finding is made unknown
(for an unknown finding: when it takes one of its values). Layers, left to right:

    record field -> finding (derived values: from several fields) -> criterion component
    -> criterion -> population verdict -> overall verdict

Node attributes: ``kind`` (field, finding, unknown, component, criterion, population,
overall), ``label`` (short), ``tooltip`` (the registry sentence, the finding in full),
``status`` (met / not_met / unknown, or the verdict), ``population``, ``highlight`` (part of
the chosen minimal explanation). Edge attribute ``relation``: supports / violates /
undecided. Exports: :func:`write` (by file extension: .dot .svg .png .pdf .graphml .json .mmd).
"""

from __future__ import annotations

import json
import shutil
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
RELATION_COLOUR = {"supports": "#2e7d32", "violates": "#c62828", "undecided": "#9e9e9e", "source": "#78909c"}


class GraphError(Exception):
    """A graph that cannot be written: unknown format, or Graphviz missing."""


def _relation(status: str, kind: str = "inclusion") -> str:
    if status == "unknown":
        return "undecided"
    good = "met" if kind == "inclusion" else "not_met"
    return "supports" if status == good else "violates"


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
        g.add_node(c.id, kind="criterion", label=f"{c.id}: {status}", status=status,
                   effect=_relation(status, c.kind), population=c.population, tooltip=c.sentence,
                   criterion=c.id, highlight=False)
        for pop in pops if c.population == "all" else [c.population]:
            g.add_edge(c.id, f"pop:{pop}", relation=_relation(status, c.kind))
        for part in c.components:
            st = now.get(part, "unknown")
            short = f"{c.id.split('-', 1)[1]} {part.split('.', 1)[1].replace('_', ' ')}"
            g.add_node(part, kind="component", label=f"{short}: {st}", status=st, effect=_relation(st, c.kind),
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
            g.add_node(fid, kind="finding", label=_short(u.text), tooltip=u.text, status="known",
                       highlight=u.text in chosen)
            for x in _lowest(touched, crit_of):
                c = crit_of[x]
                g.add_edge(fid, x, relation=_relation(now.get(x, "unknown"), c.kind))
            for src in dict.fromkeys(u.sources):
                if src in ("complete", "birth_date", "sex") or src.startswith(("observations", "medications",
                                                                            "diagnoses", "assessments",
                                                                            "classification", "sledai2k",
                                                                            "organ_involvement", "transfusions",
                                                                            "growth_factors")):
                    g.add_node(f"field:{src}", kind="field", label=src, tooltip=f"record field {src}",
                               status="known", highlight=u.text in chosen)
                    g.add_edge(f"field:{src}", fid, relation="source")
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
            g.add_node(uid, kind="unknown", label=f"{_short(label)}?", tooltip=f"unknown: {label}",
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


def _short(text: str, width: int = 40) -> str:
    """A label that fits: a trailing "(date)" or "(details)" goes first, then the end."""
    if len(text) > width and text.endswith(")") and " (" in text:
        text = text[: text.rindex(" (")]
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------

RENDERED = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
FORMATS = (".dot", ".gv", ".graphml", ".json", ".mmd", *RENDERED)


def to_pydot(g: nx.DiGraph, kb: KnowledgeBase):
    """A Graphviz graph: populations as clusters, colours per status, a legend, the chosen
    explanation drawn bold and the rest faded, unknown findings dashed, tooltips in SVG."""
    import pydot

    dot = pydot.Dot(graph_type="digraph", rankdir="LR", fontname="Helvetica", fontsize="11",
                    labelloc="t", label=f"{g.graph.get('patient', '')}: why this verdict", nodesep="0.15",
                    ranksep="0.6", tooltip="pyasp-screen explanation graph")
    clusters = {}
    for pop in list(kb.populations) + ["all"]:
        label = kb.populations.get(pop, "all populations")
        clusters[pop] = pydot.Cluster(f"pop_{pop}", label=label, style="rounded", color="#90a4ae",
                                      fontname="Helvetica", fontsize="11")
    any_highlight = any(d.get("highlight") and d["kind"] in ("finding", "unknown") for _, d in g.nodes(data=True))
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
        else:
            attrs.update(color="#455a64", fillcolor="#ffffff", shape="box")
        if d.get("highlight") and kind in ("finding", "unknown", "field"):
            attrs.update(penwidth="2.5", color="#1565c0")
        if faded:
            attrs.update(fontcolor="#9e9e9e", color="#cfd8dc")
        pyd_node = pydot.Node(_quote(node), **{k: _quote(str(v)) for k, v in attrs.items()})
        pop = d.get("population")
        if kind in ("criterion", "component") and pop in clusters:
            clusters[pop].add_node(pyd_node)
        else:
            dot.add_node(pyd_node)
    for c in clusters.values():
        if c.get_nodes():
            dot.add_subgraph(c)
    for a, b, d in g.edges(data=True):
        rel = d.get("relation", "supports")
        faded = any_highlight and g.nodes[a]["kind"] in ("finding", "unknown", "field") and not g.nodes[a].get("highlight")
        dot.add_edge(pydot.Edge(_quote(a), _quote(b), color=RELATION_COLOUR["undecided" if faded else rel],
                                style="dashed" if rel == "undecided" else "solid",
                                tooltip=_quote(rel), penwidth="1.6" if not faded else "0.8"))
    legend = pydot.Cluster("legend", label="legend", fontname="Helvetica", fontsize="10", color="#b0bec5")
    for key, text in (("met", "supports eligibility (inclusion met, exclusion not met) / eligible"),
                      ("not_met", "excludes (inclusion not met, exclusion met) / ineligible"),
                      ("unknown", "unknown / undetermined")):
        legend.add_node(pydot.Node(f"legend_{key}", label=_quote(text), style="filled", shape="box",
                                   fillcolor=FILL[key], color=COLOURS[key], fontname="Helvetica", fontsize="9"))
    legend.add_node(pydot.Node("legend_unknown_finding", label=_quote("unknown finding"), shape="ellipse",
                               style="dashed", color="#f9a825", fontname="Helvetica", fontsize="9"))
    legend.add_node(pydot.Node("legend_chosen", label=_quote("chosen explanation"), shape="box",
                               penwidth="2.5", color="#1565c0", fontname="Helvetica", fontsize="9"))
    dot.add_subgraph(legend)
    return dot


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_mermaid(g: nx.DiGraph) -> str:
    """Mermaid flowchart text, for pasting into Markdown."""
    ids = {node: f"n{i}" for i, node in enumerate(g.nodes)}
    lines = ["flowchart LR"]
    for node, d in g.nodes(data=True):
        label = d["label"].replace('"', "'")
        shape = ("([", "])") if d["kind"] == "unknown" else ("{{", "}}") if d["kind"] in ("population", "overall") else ("[", "]")
        lines.append(f'  {ids[node]}{shape[0]}"{label}"{shape[1]}')
    for a, b, d in g.edges(data=True):
        arrow = "-.->" if d.get("relation") == "undecided" else "-->"
        lines.append(f"  {ids[a]} {arrow}|{d.get('relation', '')}| {ids[b]}")
    classes = {"met": "fill:#e8f5e9,stroke:#2e7d32", "not_met": "fill:#ffebee,stroke:#c62828",
               "unknown": "fill:#fff8e1,stroke:#f9a825", "eligible": "fill:#c8e6c9,stroke:#2e7d32",
               "ineligible": "fill:#ffcdd2,stroke:#c62828", "undetermined": "fill:#ffecb3,stroke:#f9a825"}
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
        path.write_text(to_mermaid(g), encoding="utf-8")
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
        labels = ["screened"] + [r[0] for r in rows]
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
        ax.set_title(f"{label}: attrition in protocol order", fontsize=10)
        ax.set_xlabel("patients")
        ax.legend(fontsize=8, loc="lower right")
    from pyasp_screen.outputs.render import kb_title

    fig.suptitle(f"{kb_title(kb)}: {summary.screened} patients screened", fontsize=11, wrap=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
