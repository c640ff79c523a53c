"""What-if, parameters, cohort summaries and protocol-version comparisons, as a user runs them."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import yaml
from click.testing import CliRunner

from pyasp_screen.cli import main
from pyasp_screen.knowledge.kb import load_kb

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "kb" / "ct1190b" / "cases"
sys.path.insert(0, str(ROOT / "bench"))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_whatif_retested_lab_changes_the_verdict_and_leaves_the_file_alone():
    path = CASES / "sle-in-7b-not-met.yaml"
    before = path.read_bytes()
    r = run("whatif", path, "--set", "anc=1.2", "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["before"]["sle"] == "ineligible" and doc["after"]["sle"] == "eligible"
    assert {"id": "SLE-IN-7b", "before": "not_met", "after": "met"} in doc["criteria_changed"]
    assert any("ANC 1.2" in f for f in doc["reason"]["findings"])
    assert path.read_bytes() == before


def test_whatif_units_unset_and_parameters():
    r = run("whatif", CASES / "sle-eligible.yaml", "--set", "hb=5.5g/dL", "--format", "json")
    doc = json.loads(r.output)
    assert {"id": "SLE-IN-7b", "before": "met", "after": "not_met"} in doc["criteria_changed"]
    r = run("whatif", CASES / "sle-eligible.yaml", "--unset", "inr", "--unset", "aptt", "--format", "json")
    doc = json.loads(r.output)
    assert doc["after"]["sle"] == "undetermined"
    assert "INR" in " ".join(doc["missing"]["ineligible"])
    r = run("whatif", CASES / "sle-in-7a-not-met.yaml", "--param", "crcl_min=30", "--format", "json")
    doc = json.loads(r.output)
    assert doc["before"]["sle"] == "ineligible" and doc["after"]["sle"] == "eligible"
    assert doc["edits"]["parameters"] == {"crcl_min": "30 mL/min"}


def test_whatif_misspelt_finding_or_parameter_names_the_closest():
    r = run("whatif", CASES / "sle-eligible.yaml", "--set", "hemoglobin=12")
    assert r.exit_code == 2 and "unknown finding 'hemoglobin'" in r.output
    r = run("whatif", CASES / "sle-eligible.yaml", "--set", "ancc=1")
    assert r.exit_code == 2 and "did you mean anc" in r.output
    r = run("whatif", CASES / "sle-eligible.yaml", "--set", "crcl=80")
    assert r.exit_code == 2 and "derived" in r.output
    r = run("whatif", CASES / "sle-eligible.yaml", "--param", "crcl_mim=30")
    assert r.exit_code == 2 and "did you mean crcl_min" in r.output


def test_params_lists_criteria_that_use_each_parameter():
    r = run("params", "--format", "json")
    assert r.exit_code == 0
    rows = {p["name"]: p for p in json.loads(r.output)}
    assert rows["anc_min"]["used_by"] == ["SLE-IN-7b", "SSC-IN-4b"]
    assert rows["sle_include_azathioprine"]["used_by"] == ["SLE-IN-2", "SLE-IN-3"]
    assert rows["stable_dose_min_days"]["used_by"] == ["SLE-IN-2"]
    assert rows["crcl_min"]["unit"] == "mL/min" and rows["crcl_min"]["default"] == "50 mL/min"
    assert all(p["used_by"] for p in rows.values()), [n for n, p in rows.items() if not p["used_by"]]


def test_parameter_file(tmp_path):
    f = tmp_path / "scenario.yaml"
    f.write_text(yaml.safe_dump({"crcl_min": 30, "sle_coagulation_rule": "both"}))
    r = run("screen", CASES / "sle-in-7a-not-met.yaml", "--format", "json", "--params", f)
    doc = json.loads(r.output)
    assert doc["knowledge_base"]["parameters_changed"] == {"crcl_min": "30 mL/min", "sle_coagulation_rule": "both"}
    r = run("screen", CASES / "sle-in-7a-not-met.yaml", "--params", f, "--param", "crcl_min=40", "--format", "json")
    assert json.loads(r.output)["knowledge_base"]["parameters_changed"]["crcl_min"] == "40 mL/min"


def independent_attrition(results, kb, population):
    """Attrition recomputed from per-patient screening output, the plain way."""
    crits = [c for c in kb.criteria if c.population in (population, "all")]
    remaining = list(results)
    rows = []
    for c in crits:
        bad = "not_met" if c.kind == "inclusion" else "met"
        keep = [r for r in remaining if {x["id"]: x["status"] for x in r["criteria"]}[c.id] != bad]
        rows.append((c.id, len(remaining) - len(keep), len(keep)))
        remaining = keep
    return rows


def test_cohort_counts_agree_with_per_patient_screening(tmp_path):
    from cohort import synthetic_cohort

    path = tmp_path / "cohort.json"
    path.write_text(json.dumps(synthetic_cohort(400, seed=5)))
    kb = load_kb()
    screened = json.loads(run("screen", path, "--format", "json").output)["results"]
    r = run("cohort", path, "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["screened"] == len(screened) == 400
    assert doc["overall"] == {v: sum(1 for s in screened if s["overall"] == v)
                              for v in ("eligible", "ineligible", "undetermined")}
    for c in doc["criteria"]:
        counts = Counter(next(x["status"] for x in s["criteria"] if x["id"] == c["id"]) for s in screened)
        assert (c["met"], c["not_met"], c["unknown"]) == (counts["met"], counts["not_met"], counts["unknown"])
    for pop in kb.populations:
        got = [(row["criterion"], row["excluded"], row["remaining"]) for row in doc["attrition"][pop]]
        assert got == independent_attrition(screened, kb, pop)
        # gain: only failing criterion, every other one met
        for c in doc["criteria"]:
            if pop not in c["gain"]:
                continue
            want = 0
            for s in screened:
                st = {x["id"]: (x["status"], x["kind"]) for x in s["criteria"] if x["population"] in (pop, "all")}
                fails = [i for i, (v, k) in st.items() if v == ("not_met" if k == "inclusion" else "met")]
                others = all(v == ("met" if k == "inclusion" else "not_met") for i, (v, k) in st.items() if i != c["id"])
                want += fails == [c["id"]] and others
            assert c["gain"][pop] == want, (pop, c["id"])


def test_cohort_table_and_rejected_records(tmp_path):
    (tmp_path / "bad.json").write_text('{"id": "X"}')
    r = run("cohort", CASES, tmp_path)
    assert r.exit_code == 1
    assert "attrition, SLE" in r.output and "1 record(s) rejected" in r.output


def test_diff_amendment_lists_every_changed_patient_with_its_criteria():
    r = run("diff", CASES, "--kb", "ct1190b", "--against", "ct1190b-amendment1", "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    v1 = {s["patient"]: s for s in json.loads(run("screen", CASES, "--format", "json").output)["results"]}
    a1 = {s["patient"]: s for s in json.loads(run("screen", CASES, "--format", "json", "--kb",
                                                  "ct1190b-amendment1").output)["results"]}
    changed = {p for p in v1 if (v1[p]["overall"], v1[p]["verdicts"]) != (a1[p]["overall"], a1[p]["verdicts"])}
    assert {p["patient"] for p in doc["patients"]} == changed
    assert sum(d["patients"] for d in doc["directions"]) == doc["compared"] == len(v1)
    one = next(p for p in doc["patients"] if p["patient"] == "SSC-ELIGIBLE")
    assert {"id": "GEN-IN-2", "before": "absent", "after": "not_met"} in one["criteria"]  # 68 years old


def test_amendment_reuses_version_1_rules_instead_of_copying_them():
    v1, a1 = load_kb("ct1190b"), load_kb("ct1190b-amendment1")
    assert set(v1.criterion_ids()) < set(a1.criterion_ids())
    assert [p for p in a1.programs if p.parent.name == "ct1190b-amendment1"] == [a1.directory / "general.lp"]
    assert set(v1.programs) <= set(a1.programs)
    for c in a1.criteria:
        if c.id.startswith("GEN-"):
            assert c.population == "all" and c.sentence


def test_whatif_demographics_and_no_edit():
    r = run("whatif", CASES / "ssc-eligible.yaml", "--kb", "ct1190b-amendment1", "--set", "birth_date=1980-01-01",
            "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert {"id": "GEN-IN-2", "before": "not_met", "after": "met"} in doc["criteria_changed"]
    assert run("whatif", CASES / "ssc-eligible.yaml").exit_code == 2


def test_a_cohort_can_be_screened_against_a_trial_that_reads_less(tmp_path):
    r = run("screen", CASES, "--kb", "nct07193667", "--format", "json")
    assert r.exit_code == 0, r.output[-400:]
    doc = json.loads(r.output)
    assert doc["summary"]["rejected"] == 0
    assert any("read by no criterion of nct07193667" in n for res in doc["results"] for n in res["notes"])


def test_attrition_ends_with_the_patients_not_excluded_deceased_included(tmp_path):
    # A deceased patient is ineligible by core.lp's verdict rule with no criterion failing: the
    # attrition removes them at a last step of their own (when no criterion has), so that what remains after the last
    # criterion is every patient not ineligible (a fresh user saw 38 remaining of 40 with 12
    # ineligible: the 10 deceased were never removed).
    for name in ("sle-eligible", "ssc-eligible", "sle-in-7b-not-met"):
        case = yaml.safe_load((CASES / f"{name}.yaml").read_text())
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(case))
        dead = dict(case, id=case["id"] + "-DECEASED", deceased="2026-02-27")
        (tmp_path / f"{name}-dead.yaml").write_text(yaml.safe_dump(dead))
    r = CliRunner().invoke(main, ["cohort", str(tmp_path), "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    for pop, rows in d["attrition"].items():
        v = d["populations"][pop]
        assert rows[-1]["criterion"] == "deceased (verdict rule)"
        assert 1 <= rows[-1]["excluded"] <= 3   # the deceased no criterion removes before
        assert rows[-1]["remaining"] == v["eligible"] + v["undetermined"]
        assert sum(x["excluded"] for x in rows) == v["ineligible"]


def test_attrition_all_met_so_far_stops_at_a_deceased_patients_first_criterion_not_met(tmp_path):
    # "remaining with every criterion so far met" counted a deceased patient with unknown
    # criteria as meeting every one until the verdict rule's last row (a fresh user saw 13 of
    # 53 real patients "all met so far" after SLE-IN-1, which no patient met). Recomputed
    # here from each patient's screening output, the plain way.
    for name in ("sle-eligible", "ssc-eligible", "sle-in-7b-not-met", "sle-in-1-unknown"):
        case = yaml.safe_load((CASES / f"{name}.yaml").read_text())
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(case))
        dead = dict(case, id=case["id"] + "-DECEASED", deceased="2026-02-27")
        (tmp_path / f"{name}-dead.yaml").write_text(yaml.safe_dump(dead))
    sparse = {"id": "SPARSE-DECEASED", "screening_date": "2026-03-01", "birth_date": "1980-01-01",
              "sex": "female", "deceased": "2026-02-20"}
    (tmp_path / "sparse-dead.yaml").write_text(yaml.safe_dump(sparse))
    kb = load_kb()
    r = CliRunner().invoke(main, ["cohort", str(tmp_path), "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    screened = json.loads(CliRunner().invoke(main, ["screen", str(tmp_path), "--format", "json"]).output)["results"]
    assert len(screened) == d["screened"] == 9
    for pop, rows in d["attrition"].items():
        crits = [c for c in kb.criteria if c.population in (pop, "all")]

        def passes(c, status):
            return status == ("met" if c.kind == "inclusion" else "not_met")

        statuses = [{x["id"]: x["status"] for x in s["criteria"]} for s in screened]
        for k, c in enumerate(crits):
            assert rows[k]["criterion"] == c.id
            want = sum(all(passes(x, st[x.id]) for x in crits[:k + 1]) for st in statuses)
            assert rows[k]["all_met_so_far"] == want, (pop, c.id)
        assert rows[-1]["criterion"] == "deceased (verdict rule)"
        want = sum(all(passes(x, st[x.id]) for x in crits) and s["verdicts"][pop] != "ineligible"
                   for st, s in zip(statuses, screened))
        assert rows[-1]["all_met_so_far"] == want
