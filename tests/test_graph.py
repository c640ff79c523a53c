"""Explanation graphs: structure read off the engine, and every export format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import networkx as nx
import pydot
import pytest
from click.testing import CliRunner

from pyasp_screen.outputs import graph as graphs
from pyasp_screen.cli import main
from pyasp_screen.explain.explainer import Explainer, explain_scope
from pyasp_screen.findings.derive import derive
from pyasp_screen.knowledge.kb import load_kb
from pyasp_screen.inputs.files import load_file
from pyasp_screen.engine.screening import screen_records
from pyasp_screen.explain.summary import summarise

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "kb" / "ct1190b" / "cases"
KB = load_kb("ct1190b")


def build(name: str, **kw) -> nx.DiGraph:
    ex = Explainer(KB, derive(next(load_file(CASES / f"{name}.yaml")).record, KB))
    scope = kw.get("population") or "overall"
    return graphs.build(ex, explain_scope(ex, scope, ex.verdict()[scope], max_results=1), **kw)


def test_excluded_patient_graph_goes_from_record_field_to_verdict():
    g = build("sle-in-7b-not-met")
    assert g.nodes["overall"]["status"] == "ineligible"
    anc = next(n for n, d in g.nodes(data=True) if d["kind"] == "finding" and d["label"].startswith("ANC 0.9"))
    assert g.nodes[anc]["highlight"] is True
    assert g.edges[anc, "SLE-IN-7b.anc"]["relation"] == "violates"
    assert g.edges["SLE-IN-7b.anc", "SLE-IN-7b"]["relation"] == "violates"
    assert g.edges["SLE-IN-7b", "pop:sle"]["relation"] == "violates"
    assert g.edges["pop:sle", "overall"]["relation"] == "violates"
    # a plain result is its own source: no record-position node, the field kept as data
    assert not [p for p in g.predecessors(anc) if g.nodes[p]["kind"] == "field"]
    assert g.nodes[anc]["record_fields"].startswith("observations[")
    assert g.nodes["SLE-IN-7b"]["tooltip"].startswith("Bone marrow function")
    # an unknown finding hangs on the condition it could decide, undecided
    assert g.edges["unknown:anti_smith", "SLE-IN-4.anti_smith"]["relation"] == "undecided"
    # every known finding node is there because removing it changes some status
    for n, d in g.nodes(data=True):
        if d["kind"] == "finding":
            assert any(g.nodes[s]["kind"] in ("component", "criterion") for s in g.successors(n))


def test_derived_value_names_the_fields_it_came_from_for_people():
    g = build("sle-eligible")
    crcl = next(n for n, d in g.nodes(data=True) if d["kind"] == "finding" and d["label"].startswith("CrCl"))
    sources = {g.nodes[p]["label"].replace("\n", " ") for p in g.predecessors(crcl)}
    assert sources == {"creatinine 0.8 mg/dL (2026-02-24)", "weight 62 kg (2026-02-24)",
                       "age 37 (date of birth)", "sex female"}
    fields = {g.nodes[p]["record_field"] for p in g.predecessors(crcl)}
    assert fields == {"observations[2]", "observations[3]", "birth_date", "sex"}
    for _, d in g.nodes(data=True):  # labels are wrapped, never cut, never record positions
        assert "…" not in d["label"] and not d["label"].startswith("observations[")


def explanation(name: str, **kw):
    s = next(screen_records(load_file(CASES / f"{name}.yaml"), KB))
    return graphs.build_explanation(summarise(KB, s, **kw), KB)


def test_default_graph_is_the_chosen_explanation_only():
    g = explanation("sle-in-7b-not-met")
    findings = [n for n, d in g.nodes(data=True) if d["kind"] == "finding"]
    labels = [g.nodes[n]["label"].replace("\n", " ") for n in findings]
    assert labels[0] == "ANC 0.9 x10^9/L on 2026-02-24 (needs >= 1 x10^9/L)"
    assert set(g.successors(findings[0])) == {"SLE-IN-7b", "SSC-IN-4b"}
    # SSc's own reason is drawn too: no SSc in the complete problem list (it alone excludes SSc,
    # so fixing the ANC does not make SSc eligible)
    assert labels[1].startswith("no systemic sclerosis or interstitial lung disease")
    assert set(g.successors(findings[1])) == {"SSC-IN-1", "SSC-IN-2"}
    assert "2 separate reasons" in g.nodes["pop:ssc"]["label"].replace("\n", " ")
    assert g.edges["SLE-IN-7b", "pop:sle"]["relation"] == "violates"
    assert g.edges["pop:sle", "overall"]["relation"] == "violates"
    assert g.nodes["others:sle"]["label"].replace("\n", " ") == "10 other SLE criteria: 10 satisfied"
    assert "not satisfied" not in g.nodes["others:ssc"]["label"].replace("\n", " ")  # SSC-IN-1/2 are drawn
    assert g.number_of_nodes() == 11  # the full graph had 131
    # undetermined: the findings to measure, dashed, in the plan's order, to the criteria they would decide
    g = explanation("sle-referral-labs-pending")
    todo = [d["label"].split("\n")[0] for n, d in g.nodes(data=True) if d["kind"] == "unknown"]
    assert todo == ["1. measure ALT?", "2. measure AST?", "3. measure total bilirubin?",
                    "4. measure INR or APTT?", "5. record hydration assistance"]
    assert {b for _, b in g.out_edges("measure:4")} == {"SLE-IN-7d"}
    # a population with nothing drawn says why; it does not decide an SLE-led verdict alone
    assert "problem list is not declared complete" in g.nodes["pop:ssc"]["label"].replace("\n", " ")
    # eligible: only the eligible population's criteria, every one of them drawn
    g = explanation("sle-eligible")
    crit = {n for n, d in g.nodes(data=True) if d["kind"] == "criterion"}
    assert crit == {c.id for c in KB.criteria if c.population == "sle"}
    assert g.number_of_nodes() < 30
    # the ineligible population does not point into an eligible overall verdict as if it excluded
    assert g.edges["pop:ssc", "overall"]["relation"] == "context"
    assert [n for n in g.nodes if g.nodes[n]["kind"] == "criterion"] == sorted(
        crit, key=[c.id for c in KB.criteria].index)  # protocol order
    # criteria whose sentence has no heading get its opening words
    g = explanation("ssc-eligible")
    assert g.nodes["SSC-IN-2"]["label"] == "SSC-IN-2: met\nCombined with interstitial\npneumonia caused by SSc"
    assert all("\n" in g.nodes[c.id]["label"] for c in KB.criteria if c.population == "ssc")


def test_mermaid_has_population_clusters(tmp_path):
    g = explanation("sle-in-7b-not-met")
    graphs.write(g, KB, tmp_path / "g.mmd")
    text = (tmp_path / "g.mmd").read_text()
    assert 'subgraph cluster0["systemic lupus erythematosus (SLE)"]' in text
    assert 'subgraph cluster1["systemic sclerosis (SSc)"]' in text and text.count("\n  end\n") == 2
    edges = text.count(" --> ") + text.count(" -.-> ") + text.count(" -.- ") + text.count("-->|") + text.count("-.->|")
    assert edges >= g.number_of_edges()


def test_show_and_population_filters():
    reasons = build("sle-in-7b-not-met", show="reasons")
    assert [d["label"] for _, d in reasons.nodes(data=True) if d["kind"] == "finding"][0].startswith("ANC 0.9")
    assert not any(d["kind"] == "unknown" for _, d in reasons.nodes(data=True))
    missing = build("sle-in-7d-unknown", show="missing")
    assert not any(d["kind"] == "finding" for _, d in missing.nodes(data=True))
    assert missing.nodes["unknown:aptt_x_uln"]["highlight"] is True  # the chosen missing datum
    sle = build("sle-in-7b-not-met", population="sle")
    assert not any(n.startswith("SSC-") for n in sle.nodes) and "pop:ssc" not in sle.nodes


def test_text_exports_round_trip(tmp_path):
    g = build("sle-in-7d-unknown")
    graphs.write(g, KB, tmp_path / "g.json")
    back = nx.node_link_graph(json.loads((tmp_path / "g.json").read_text()), edges="links")
    assert set(back.nodes) == set(g.nodes) and set(back.edges) == set(g.edges)
    graphs.write(g, KB, tmp_path / "g.graphml")
    back = nx.read_graphml(tmp_path / "g.graphml")
    assert set(back.nodes) == set(g.nodes) and back.number_of_edges() == g.number_of_edges()
    graphs.write(g, KB, tmp_path / "g.dot")
    parsed = pydot.graph_from_dot_data((tmp_path / "g.dot").read_text())[0]
    names = {n.get_name().strip('"') for n in parsed.get_nodes()}
    names |= {n.get_name().strip('"') for sg in parsed.get_subgraphs() for n in sg.get_nodes()}
    assert set(g.nodes) <= names
    graphs.write(g, KB, tmp_path / "g.mmd")
    text = (tmp_path / "g.mmd").read_text()
    assert text.startswith("flowchart LR") and text.count("-->") + text.count("-.->") == g.number_of_edges()


def test_rendered_formats(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("the Graphviz program 'dot' is not installed here (.ci/run installs it)")
    g = build("sle-in-7b-not-met")
    graphs.write(g, KB, tmp_path / "g.svg")
    svg = (tmp_path / "g.svg").read_text()
    assert "<svg" in svg and "Bone marrow function" in svg  # the registry sentence as a tooltip
    graphs.write(g, KB, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    graphs.write(g, KB, tmp_path / "g.pdf")
    assert (tmp_path / "g.pdf").read_bytes()[:4] == b"%PDF"


def test_missing_graphviz_says_how_to_install_and_text_formats_still_work(tmp_path, monkeypatch):
    g = build("sle-in-7b-not-met")
    monkeypatch.setattr(graphs.shutil, "which", lambda name: None)
    with pytest.raises(graphs.GraphError, match="apt-get install graphviz"):
        graphs.write(g, KB, tmp_path / "g.png")
    graphs.write(g, KB, tmp_path / "g.mmd")
    assert (tmp_path / "g.mmd").exists()
    with pytest.raises(graphs.GraphError, match="unknown format"):
        graphs.write(g, KB, tmp_path / "g.txt")


def test_graph_command_and_attrition_plot(tmp_path):
    r = CliRunner().invoke(main, ["graph", str(CASES / "sle-in-7b-not-met.yaml"), "-o", str(tmp_path / "g.mmd")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["graph", str(CASES / "sle-in-7b-not-met.yaml"), "-o", str(tmp_path / "g.xyz")])
    assert r.exit_code == 2 and "unknown format" in r.output
    r = CliRunner().invoke(main, ["cohort", str(CASES), "--plot", str(tmp_path / "attrition.svg")])
    assert r.exit_code == 0, r.output
    svg = (tmp_path / "attrition.svg").read_text()
    assert "<svg" in svg and "attrition" in svg


def test_a_deceased_patient_s_graph_draws_the_death_to_the_populations(tmp_path):
    # No criterion decides a deceased patient (kb/lib/core.lp's verdict rule): the finding is
    # drawn straight to each population it excludes, not left out of a graph titled
    # "1 finding settles it" (a fresh user's finding).
    import yaml
    case = yaml.safe_load((Path(__file__).parent.parent / "kb/ct1190b/cases/sle-eligible.yaml").read_text())
    case["deceased"] = "2026-02-27"
    (tmp_path / "dead.yaml").write_text(yaml.safe_dump(case))
    r = CliRunner().invoke(main, ["graph", str(tmp_path / "dead.yaml"), "-o", str(tmp_path / "g.json")])
    assert r.exit_code == 0, r.output
    g = nx.node_link_graph(json.loads((tmp_path / "g.json").read_text()), edges="links")
    [dead] = [n for n, d in g.nodes(data=True) if d.get("kind") == "finding" and "deceased" in d["label"]
              and g.out_degree(n) >= 1 and all(t.startswith("pop:") for t in g.successors(n))]
    assert {t for t in g.successors(dead)} == {"pop:sle", "pop:ssc"}
    assert all(g.edges[dead, t]["relation"] == "violates" for t in g.successors(dead))


def test_an_exclusion_s_status_says_what_it_means(tmp_path):
    # Drawn green, "SSC-EX-2: not met" read as a failure to a coordinator (second reader):
    # an exclusion says "does not apply" / "excludes".
    r = CliRunner().invoke(main, ["graph", str(CASES / "ssc-eligible.yaml"), "-o", str(tmp_path / "g.json")])
    assert r.exit_code == 0, r.output
    g = nx.node_link_graph(json.loads((tmp_path / "g.json").read_text()), edges="links")
    labels = {n: d["label"] for n, d in g.nodes(data=True) if d.get("kind") == "criterion"}
    assert labels["SSC-EX-2"].startswith("SSC-EX-2: not met: does not apply")
    assert labels["SSC-IN-2"].startswith("SSC-IN-2: met\n")
