"""The command line as a user runs it: exit codes, formats, parameters, FHIR input."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from pyasp_screen.cli import main

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "kb" / "ct1190b" / "cases"
FHIR = ROOT / "tests" / "data" / "fhir"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_screen_examples_table():
    r = run("screen", CASES)
    assert r.exit_code == 0, r.output
    assert "SLE-ELIGIBLE" in r.output and "SSC-ELIGIBLE" in r.output
    assert "every record was read" in r.output


def test_single_patient_table_lists_every_criterion_with_components():
    r = run("screen", CASES / "sle-eligible.yaml")
    assert r.exit_code == 0
    for cid in ("SLE-IN-1", "SLE-IN-7e", "SSC-IN-4e", "SSC-EX-3"):
        assert cid in r.output
    assert "anc met" in r.output


def test_csv_has_one_row_per_patient_and_one_column_per_criterion():
    r = run("screen", CASES, "--format", "csv")
    assert r.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(r.output)))
    n_cases = len([p for p in CASES.glob("*.yaml") if not p.name.endswith(".expected.yaml")])
    assert len(rows) == n_cases
    assert {"SLE-IN-1", "SSC-EX-3", "verdict_sle", "verdict_ssc", "overall"} <= set(rows[0])
    eligible = next(row for row in rows if row["patient"] == "SLE-ELIGIBLE")
    assert eligible["overall"] == "eligible" and eligible["SLE-IN-7b"] == "met"


def test_param_changes_the_answer_and_is_reported():
    # An SLE patient whose CrCl is below 50: meets a lowered threshold of 30 mL/min.
    base = json.loads(run("screen", CASES / "sle-in-7a-not-met.yaml", "--format", "json").output)
    crit = {c["id"]: c["status"] for c in base["results"][0]["criteria"]}
    assert crit["SLE-IN-7a"] == "not_met"
    lowered = json.loads(run("screen", CASES / "sle-in-7a-not-met.yaml", "--format", "json",
                             "--param", "crcl_min=30").output)
    crit = {c["id"]: c["status"] for c in lowered["results"][0]["criteria"]}
    assert crit["SLE-IN-7a"] == "met"
    assert lowered["knowledge_base"]["parameters_changed"] == {"crcl_min": "30 mL/min"}


def test_bad_param_is_a_usage_error_with_suggestion():
    r = run("screen", CASES, "--param", "crcl_mn=30")
    assert r.exit_code == 2
    assert "did you mean crcl_min" in r.output


def test_params_lists_every_parameter_with_unit_and_meaning():
    r = run("params")
    assert r.exit_code == 0
    for name in ("crcl_min", "anc_min", "sle_coagulation_rule", "screening_window_days", "crcl_weight"):
        assert name in r.output
    assert "mL/min" in r.output


def test_help_teaches_with_examples():
    r = run("screen", "--help")
    assert r.exit_code == 0
    assert "Examples:" in r.output and "--format" in r.output and "--param" in r.output


def test_fhir_bundles_screen_without_error_and_say_what_was_mapped(tmp_path):
    r = run("screen", FHIR, "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["summary"]["screened"] == 5 and doc["summary"]["rejected"] == 0
    # the folder's one other file is named, not skipped silently
    assert r.stderr.strip() == (f"note: {FHIR}: 1 file not read (not a record file: "
                                ".yaml .yml .json .jsonl .ndjson): SOURCE.md")
    for res in doc["results"]:
        notes = " ".join(res["notes"])
        assert "not found: " in notes and "anc" in notes
        assert any("creatinine" in n for n in res["notes"])
        assert res["overall"] in ("undetermined", "ineligible")


def test_screen_works_outside_the_checkout(tmp_path, monkeypatch):
    shutil.copy(CASES / "ssc-eligible.yaml", tmp_path / "p.yaml")
    monkeypatch.chdir(tmp_path)
    r = run("screen", "p.yaml", "--format", "json")
    assert r.exit_code == 0
    assert json.loads(r.output)["results"][0]["verdicts"]["ssc"] == "eligible"


def test_output_file(tmp_path):
    out = tmp_path / "out.json"
    r = run("screen", CASES / "sle-eligible.yaml", "--format", "json", "-o", out)
    assert r.exit_code == 0
    assert json.loads(out.read_text())["results"][0]["overall"] == "eligible"


def test_explain_text_names_reason_criterion_and_near_miss():
    r = run("explain", CASES / "sle-in-7b-not-met.yaml")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[1].startswith("Ineligible")  # the answer first
    assert "Why: ANC 0.9 x10^9/L on 2026-02-24 (needs >= 1 x10^9/L; SLE-IN-7b, SSC-IN-4b)" in r.output
    assert "Bone marrow function" in r.output  # the registry sentence
    assert "eligible for SLE if ANC >= 1 x10^9/L (now 0.9) on retest" in r.output
    # the closed world in words, never as "diagnoses declared complete"
    assert "no systemic sclerosis or interstitial lung disease caused by systemic sclerosis in the problem " \
           "list, which the record declares complete" in r.output
    assert "observations[" not in r.output
    assert len(lines) == len(set(lines))  # no line twice


def test_explain_json_for_an_undetermined_patient_says_what_to_measure():
    r = run("explain", CASES / "sle-in-7d-unknown.yaml", "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    p = doc["patients"][0]
    steps = p["answer"]["to_measure"]
    assert [s["label"] for s in steps] == ["APTT"]
    assert steps[0]["eligible_if"][0] == {"text": "APTT <= 1.5 x ULN", "finding": "APTT", "op": "<=",
                                          "value": 1.5, "unit": "x ULN"}
    assert steps[0]["ineligible_if"][0]["all_of"][0]["op"] == ">"
    overall = next(e for e in p["explanations"] if e["scope"] == "overall")
    sle = next(e for e in p["explanations"] if e["scope"] == "sle")
    assert sle["verdict"] == "undetermined" and sle["same_as"] == "overall"  # said once
    assert any(m["findings"] == ["APTT"] and "APTT > 1.5 x ULN" in m["values"] for m in overall["missing"]["ineligible"])
    assert any(m["findings"] == ["APTT"] for m in overall["missing"]["eligible"])
    assert "LVEF" in overall["cannot_change_outcome"]


def test_screen_explain_adds_reason_columns():
    r = run("screen", CASES / "sle-in-7b-not-met.yaml", CASES / "sle-in-7d-unknown.yaml", "--format", "csv", "--explain")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert "ANC" in rows[0]["shortest_reason"]
    assert rows[1]["to_measure"] == "measure APTT: eligible if <= 1.5 x ULN; excluded if > 1.5 x ULN"
    j = json.loads(run("screen", CASES / "sle-in-7b-not-met.yaml", "--format", "json", "--explain").output)
    assert j["results"][0]["explanation"]["criteria"] == ["SLE-IN-7b", "SSC-IN-4b"]
    assert j["results"][0]["explanation"]["answer"] == ("SLE and SSc: ANC 0.9 x10^9/L on 2026-02-24 (needs >= 1 x10^9/L; "
                                                         "SLE-IN-7b, SSC-IN-4b)")
