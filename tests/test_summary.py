"""The explanation at a glance (explain/summary.py), checked independently of how it is built.

- What it says to measure is re-screened through the whole pipeline: the record edited with the
  values it gives (cohorts/whatif.py) must get the verdict it promises.
- Derived values are recomputed by hand from the record and the published score tables.
- Every text output of the example patients is read for the rules of issue 14: the answer
  first, no line twice, no record positions, closed-world declarations in words, changed
  parameters named.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from pyasp_screen.cli import main
from pyasp_screen.cohorts.whatif import apply_edits
from pyasp_screen.engine.engine import Engine
from pyasp_screen.engine.screening import screen_records
from pyasp_screen.explain.summary import summarise
from pyasp_screen.findings.derive import derive
from pyasp_screen.inputs.files import load_file
from pyasp_screen.knowledge.kb import load_kb

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "kb" / "ct1190b" / "cases"
KB = load_kb("ct1190b")
CASE_FILES = sorted(p for p in CASES.glob("*.yaml") if not p.name.endswith(".expected.yaml"))


def screened(name: str):
    return next(screen_records(load_file(CASES / f"{name}.yaml"), KB))


def rescreen(name: str, sets: list[str], kb=None, cases=None, change=None) -> dict[str, str]:
    """The verdicts of the record edited as ``sets`` says (and by ``change``, a function
    that edits the record further), through the whole pipeline."""
    kb = kb or KB
    record = next(load_file((cases or CASES) / f"{name}.yaml")).record
    record = apply_edits(record, sets, [], kb.vocabulary)
    if change is not None:
        change(record)
    result = Engine(kb).screen([derive(record, kb)])[0]
    return {"overall": result.overall, **result.verdicts}


AUTHOR = ROOT / "tests" / "data" / "authored" / "nct07432334"  # a new author's knowledge base (README.md there)
AUTHOR_KB = load_kb(str(AUTHOR))


def author(name: str):
    return next(screen_records(load_file(AUTHOR / "cases" / f"{name}.yaml"), AUTHOR_KB))


def coordinator_text(output: str) -> str:
    """An explain text without its last line (the one hint for more detail, the only place
    a command may appear)."""
    lines = output.splitlines()
    assert lines[-1].startswith("More detail: pyasp-screen explain "), lines[-1]
    return "\n".join(lines[:-1])


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# -- undetermined: what to measure, in order, and the values that would settle it ------------

REFERRAL = "sle-referral-labs-pending"


def test_referral_says_what_to_measure_by_task_with_the_values():
    doc = summarise(KB, screened(REFERRAL))
    assert doc["overall"] == "undetermined" and doc["screening_date"] == "2026-03-01"
    steps = doc["answer"]["to_measure"]
    # tests first (one blood draw), then the chart; each in protocol order
    assert [s["label"] for s in steps] == ["ALT", "AST", "total bilirubin", "INR or APTT",
                                           "hydration assistance for the creatinine clearance"]
    assert [s["task"] for s in steps] == ["lab"] * 4 + ["chart"]
    assert [s["action"] for s in steps] == ["measure", "measure", "measure", "measure", "record"]
    assert steps[3]["any_of"] and [f["slot"] for f in steps[3]["findings"]] == ["inr_x_uln", "aptt_x_uln"]
    assert [b["text"] for b in steps[0]["eligible_if"]] == ["ALT <= 2 x ULN"]
    assert [b["text"] for b in steps[0]["ineligible_if"][0]["all_of"]] == ["ALT > 2 x ULN"]
    # INR or APTT: excluded only when both are out of range
    assert [b["text"] for b in steps[3]["ineligible_if"][0]["all_of"]] == ["INR > 1.5 x ULN", "APTT > 1.5 x ULN"]
    assert [s["can_exclude_alone"] for s in steps] == [True, True, True, False, True]
    assert doc["answer"]["then"] == {"verdict": "eligible", "populations": ["sle"]}
    # an SLE plan cites SLE criteria only (SSC-IN-4d reads INR and PT, never APTT)
    assert steps[3]["criteria"] == ["SLE-IN-7d"] and "SSC-IN-4d" in steps[3]["all_criteria"]
    # what the record already holds for the step's criterion, with the engine's status
    crcl = steps[4]["on_record"][0]
    assert (crcl["finding"], crcl["criterion"], crcl["holds"], crcl["date"]) == ("CrCl", "SLE-IN-7a", True, "2026-02-26")
    # the window the results must fall in, and where it comes from
    assert steps[0]["window"] == {"days": 28, "parameter": "screening_window_days", "in_registry": False}
    assert KB.param("screening_window_days") == 28
    assert "28" not in next(c.sentence for c in KB.criteria if c.id == "SLE-IN-7c")


def test_referral_plan_holds_when_the_results_come_back():
    """Values inside every step's 'eligible if' make the patient eligible; one value of
    'excluded if' excludes, and the INR/APTT pair only together."""
    good = ["hydration_assistance=no", "alt=30U/L", "ast=30U/L", "bilirubin_total=0.8mg/dL"]
    assert rescreen(REFERRAL, good + ["inr=1.0"])["sle"] == "eligible"
    assert rescreen(REFERRAL, good + ["aptt=30s"])["sle"] == "eligible"
    assert rescreen(REFERRAL, good)["sle"] == "undetermined"  # INR or APTT still missing
    # the boundary: 2 x ULN (site ULN 40 U/L) is still eligible, just above it excludes
    assert rescreen(REFERRAL, ["hydration_assistance=no", "alt=80U/L", "ast=30U/L", "bilirubin_total=0.8mg/dL",
                               "inr=1.0"])["sle"] == "eligible"
    assert rescreen(REFERRAL, ["alt=80.04U/L"])["overall"] == "ineligible"
    assert rescreen(REFERRAL, ["hydration_assistance=yes"])["overall"] == "ineligible"
    assert rescreen(REFERRAL, ["bilirubin_total=3mg/dL"])["overall"] == "ineligible"
    assert rescreen(REFERRAL, ["inr=2.0"])["overall"] == "undetermined"  # APTT could still be normal
    assert rescreen(REFERRAL, ["inr=2.0", "aptt=70s"])["sle"] == "ineligible"
    # a result older than the 28-day look-back does not count, one on day 28 does
    def dated(days):
        def change(rec):
            import datetime as dt
            for o in rec.observations:
                if o.code == "alt":
                    o.date = rec.screening_date - dt.timedelta(days=days)
        return change
    assert rescreen(REFERRAL, good + ["inr=1.0"], change=dated(28))["sle"] == "eligible"
    assert rescreen(REFERRAL, good + ["inr=1.0"], change=dated(29))["sle"] == "undetermined"


def test_referral_population_line_rules_ssc_out_as_the_engine_says():
    doc = summarise(KB, screened(REFERRAL))
    ssc = next(p for p in doc["populations"] if p["population"] == "ssc")
    assert ssc["rule_out"]["slot"] == "complete:diagnoses"
    assert ssc["text"].startswith("SSc: undetermined; declaring the problem list complete as it stands")
    assert "would rule it out" in ssc["text"]
    assert rescreen(REFERRAL, ["complete=diagnoses"])["ssc"] == "ineligible"  # what the line promises


def test_referral_text_is_short_and_leads_with_the_answer():
    r = run("explain", CASES / f"{REFERRAL}.yaml")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert len(lines) <= 24  # 147 before issue 14
    assert lines[0] == "SLE-REFERRAL-LABS-PENDING, screening date 2026-03-01"
    assert lines[1] == "Undetermined: 5 findings to get; eligible for SLE if they all come back as below."
    assert lines[2] == "  Tests (a result counts if taken at most 28 days before the screening date):"
    assert "   - ALT: eligible if <= 2 x ULN; excluded if > 2 x ULN  [SLE-IN-7c]" in lines
    assert ("   - INR or APTT: eligible if INR <= 1.5 x ULN or APTT <= 1.5 x ULN; excluded only if INR > 1.5 x ULN "
            "and APTT > 1.5 x ULN  [SLE-IN-7d]") in lines
    assert "  From the chart:" in lines
    assert "     On record for SLE-IN-7a: CrCl 96.4 mL/min on 2026-02-26 (needs >= 50 mL/min: met)." in lines
    assert ("  Any one of these outside its limits excludes on its own, except INR or APTT, which excludes only "
            "if both are out.") in lines
    # SLE says what the overall answer says: not repeated; SSc differs: one line, no command
    assert not any(line.startswith("SLE:") for line in lines)
    assert any(line.startswith("SSc: undetermined; declaring the problem list complete") for line in lines)
    assert "SSC-IN-4d" not in r.output  # nothing of SSc's plan in an SLE referral's text
    assert ("The record declares these lists complete (what a list does not hold counts as absent): medication "
            "history, transfusion history, growth-factor history.") in lines
    assert ("Not in the registry, the knowledge base's reading: a result counts only if taken at most 28 days before "
            "the screening date (parameter screening_window_days; the registry gives no window).") in lines
    assert lines[-1] == f"More detail: pyasp-screen explain {CASES / REFERRAL}.yaml --details"


def test_a_value_outside_its_window_is_reconciled_with_the_unknown():
    doc = summarise(KB, screened("sle-creatinine-50-days-old"))
    crcl = next(d for d in doc["derived"] if d["name"] == "crcl")
    assert crcl["days_before_screening"] == 50 and crcl["window_days"] == 28
    assert crcl["in_window"] is False and crcl["read"] is False
    status = {c["id"]: c["status"] for c in doc["criteria_status"]}
    assert status["SLE-IN-7a"] == "unknown"
    step = doc["answer"]["to_measure"][0]
    assert step["findings"][0]["slot"] == "crcl" and step["criteria"] == ["SLE-IN-7a"]  # not SSC-EX-2's < 30
    assert step["note"] == ("the CrCl on record, 94.2 mL/min (2026-01-10), is from 50 days before the screening "
                            "date, older than the 28-day look-back, so it is not used")
    assert step["text"].endswith("eligible if CrCl >= 50 mL/min; excluded if CrCl < 50 mL/min")
    assert [i["parameter"] for i in doc["interpretations"]] == ["screening_window_days"]
    # the screen table says it beside the value too
    r = run("screen", CASES / "sle-creatinine-50-days-old.yaml")
    assert "outside the 28-day look-back: not used, so the criteria using it stay unknown" in r.output


# -- ineligible: the smallest reason and the nearest miss -------------------------------------

def _transfusion(days: int):
    """A record edit: a red-cell transfusion ``days`` before the screening date."""
    def change(rec):
        import datetime as dt

        from pyasp_screen.inputs.record import Event
        rec.transfusions.append(Event(date=rec.screening_date - dt.timedelta(days=days), product="red blood cells"))
    return change


def test_ineligible_reason_value_against_threshold_and_nearest_miss():
    doc = summarise(KB, screened("sle-in-7b-not-met"))
    assert doc["headline"] == "ineligible for SLE and SSc: 1 finding settles it"
    reason = doc["answer"]["reason"]
    assert reason["findings"] == ["ANC 0.9 x10^9/L (2026-02-24)"]
    assert reason["text"] == "ANC 0.9 x10^9/L on 2026-02-24 (needs >= 1 x10^9/L; SLE-IN-7b, SSC-IN-4b)"
    cmp = reason["comparisons"][0]
    assert (cmp["value"], cmp["unit"], cmp["op"], cmp["threshold"], cmp["holds"]) == (0.9, "10*9/L", ">=", 1, False)
    assert cmp["threshold"] == float(KB.param("anc_min")) and cmp["in_registry"] and cmp["parameter"] == "anc_min"
    miss = doc["answer"]["nearest_miss"]
    assert miss["outcome"] == "eligible" and miss["populations"] == ["sle"]
    assert miss["text"] == "eligible for SLE if ANC >= 1 x10^9/L (now 0.9) on retest, all else equal"
    assert miss["caveats"][0]["text"] == ("provided no growth factor or transfusion is given within 7 days before "
                                          "screening to reach it (SLE-IN-7b)")
    # the nearest miss, re-screened: exactly the boundary makes the patient eligible for SLE (not SSc)
    assert rescreen("sle-in-7b-not-met", ["anc=1.0"]) == {"overall": "eligible", "sle": "eligible", "ssc": "ineligible"}
    assert rescreen("sle-in-7b-not-met", ["anc=0.999"])["overall"] == "ineligible"
    # and its caveat: a transfusion within the 7 days undoes it, one 8 days before does not
    assert rescreen("sle-in-7b-not-met", ["anc=1.0"], change=_transfusion(7))["sle"] == "ineligible"
    assert rescreen("sle-in-7b-not-met", ["anc=1.0"], change=_transfusion(8))["sle"] == "eligible"


def test_every_reason_of_a_population_is_named():
    """SSc fails for two separate reasons (the ANC, and no SSc in the complete problem
    list): both are said, never "(and 1 other reason)"; each alone settles SSc."""
    doc = summarise(KB, screened("sle-in-7b-not-met"))
    ssc = next(p for p in doc["populations"] if p["population"] == "ssc")
    assert ssc["reason"]["text"] == ("no systemic sclerosis or interstitial lung disease caused by systemic sclerosis "
                                     "in the problem list, which the record declares complete (SSC-IN-1, SSC-IN-2)")
    assert ssc["other_reasons"] == ["ANC 0.9 x10^9/L on 2026-02-24 (needs >= 1 x10^9/L; SSC-IN-4b)"]
    assert ssc["text"] == ("SSc: ineligible for 2 separate reasons, each enough alone: " + ssc["reason"]["text"]
                           + "; and the ANC above (SSC-IN-4b)")
    assert rescreen("sle-in-7b-not-met", ["anc=1.2"])["ssc"] == "ineligible"       # the problem list alone
    assert rescreen("sle-in-7b-not-met", ["ssc=present", "ssc_ild=present"])["ssc"] == "ineligible"  # the ANC alone
    for case in CASE_FILES:
        assert "other reason" not in run("explain", case).output, case.name


def test_closed_world_declarations_in_words():
    doc = summarise(KB, screened("sle-in-7b-not-met"))
    assert [c["text"] for c in doc["closed_world"]] == ["medication history declared complete",
                                                         "transfusion history declared complete",
                                                         "growth-factor history declared complete",
                                                         "problem list declared complete"]
    # the words are the engine's: listing systemic sclerosis as present would change SSC-IN-1
    assert rescreen("sle-in-7b-not-met", ["ssc=present"])["ssc"] == "ineligible"  # still the ANC
    # an empty list declared complete says "lists none", never "besides those listed"
    elig = summarise(KB, screened("sle-eligible"))
    texts = [f for ev in elig["answer"]["evidence"] for f in ev["findings"]]
    assert "no transfusion (the transfusion history, declared complete in the record, lists none)" in texts
    assert not any("besides those listed" in t for t in texts)


# -- eligible: the criteria met closest to their thresholds -------------------------------------

def test_eligible_margins_are_the_binding_ones_value_against_threshold():
    doc = summarise(KB, screened("sle-eligible"))
    a = doc["answer"]
    assert a["populations"] == ["sle"] and len(a["criteria_met"]) == 11 and a["no_exclusions"] == ["sle"]
    margins = a["thinnest_margins"]
    assert [m["margin"] for m in margins] == sorted(m["margin"] for m in margins)
    first = margins[0]
    assert (first["finding"], first["value"], first["threshold"], first["criterion"]) == ("SpO2", 97, 92, "SLE-IN-7e")
    assert first["margin"] == pytest.approx((97 - 92) / 92) and first["relative"] == "5% above it"
    by_value = {m["finding"]: m for m in margins}
    assert by_value["ALT"]["value"] == pytest.approx(32 / 40)  # x ULN, the ULN of the result
    assert len(margins) == 3  # the three closest the criteria rest on; the others are in the evidence
    crcl = next(c for e in a["evidence"] if e["criterion"] == "SLE-IN-7a" for c in e["comparisons"])
    assert (crcl["finding"], crcl["threshold"]) == ("CrCl", 50)
    # only comparisons the criterion rests on: the INR (APTT also meets SLE-IN-7d) and the
    # prednisone dose (combined with mycophenolate, SLE-IN-3 has no minimum) are not margins
    assert "INR" not in by_value and "oral prednisone-equivalent dose" not in by_value
    assert rescreen("sle-eligible", ["inr=3.0"])["sle"] == "eligible"
    assert rescreen("sle-eligible", ["spo2=91.9"])["sle"] == "ineligible"  # SpO2 binds
    assert rescreen("sle-eligible", ["alt=80.1U/L"])["sle"] == "ineligible"  # so does ALT (ULN 40 U/L)
    # the reason is given once, by criterion; the other sets are described by what they swap
    assert a["reason"]["count"] == 22 and set(a["reason"]["by_criterion"]) <= {c.id for c in KB.criteria}
    swaps = [{k: s[k] for k in ("instead_of", "use", "criteria")} for s in a["swaps"]]
    assert {"instead_of": ["INR"], "use": ["APTT"], "criteria": ["SLE-IN-7d"]} in swaps
    # SLE-IN-3's evidence says the combination therapy
    ev = {e["criterion"]: e["findings"] for e in a["evidence"]}
    assert ev["SLE-IN-3"] == ["mycophenolate mofetil oral from 2025-03-15 to screening (ongoing)"]
    r = run("explain", CASES / "sle-eligible.yaml")
    text = coordinator_text(r.output)
    assert "as 1, with" not in text and len(r.output.splitlines()) <= 40  # 26 lines, then the 11 sentences
    assert "  Closest to their thresholds:" in text and "thinnest" not in text
    assert ("   - SpO2 97 % (room air not recorded; read as room air) on 2026-02-24 (needs >= 92 %, 5% above it; "
            "SLE-IN-7e)") in text
    assert "INR 1.0 = 0.83 x ULN" in text  # one decimal: not "INR 1"
    assert "The knowledge base has no exclusion criteria for SLE: check the full protocol for any." in text
    assert "anti-dsDNA in place of ANA (SLE-IN-4); APTT in place of INR (SLE-IN-7d)" in text
    assert sum(1 for x in text.splitlines() if x.startswith("The record declares these lists complete")) == 1
    assert "Also rests on" not in text  # the lists declared complete are said once
    assert ("an SpO2 result without a room-air flag is read as on room air (parameter spo2_unflagged_is_room_air)"
            in text)


def test_knowledge_base_choices_are_named_where_the_text_relies_on_them():
    doc = summarise(KB, screened("ssc-eligible"))
    kinds = {(i["kind"], i.get("parameter") or i.get("diagnosis")) for i in doc["interpretations"]}
    assert ("threshold", "ssc_severe_kidney_crcl_below") in kinds  # SSC-EX-2 names no number
    assert ("coding", "severe_kidney_disease") in kinds              # "(stage 4-5)" is the knowledge base's
    assert not any(i.get("parameter") == "crcl_min" for i in doc["interpretations"])  # ">= 50" is the registry's
    text = run("explain", CASES / "ssc-eligible.yaml").output
    assert "CrCl < 30 mL/min for SSC-EX-2 (parameter ssc_severe_kidney_crcl_below" in text
    assert '"severe chronic kidney disease (stage 4-5)" is how the knowledge base codes SSC-EX-2' in text
    # the refractory criterion's evidence is in the text, not only in the picture
    assert "   SSC-IN-3: clinician assessment: conventional treatment ineffective: yes;" in text


def test_a_changed_parameter_is_a_banner_with_its_default_and_the_default_verdict():
    r = run("explain", CASES / "sle-in-7a-crcl-50.yaml", "--param", "crcl_min=60")
    lines = r.output.splitlines()
    assert lines[0] == ("*** A what-if, not the protocol: crcl_min=60 mL/min (protocol 50 mL/min; "
                        "used by SLE-IN-7a, SSC-IN-4a). ***")
    assert lines[2].startswith("Ineligible for SLE and SSc")
    assert lines[3] == "  With the protocol's values: eligible; SLE eligible; SSc ineligible."
    assert next(screen_records(load_file(CASES / "sle-in-7a-crcl-50.yaml"), KB)).result.overall == "eligible"
    assert ("CrCl >= 60 mL/min for SLE-IN-7a is this run's parameter crcl_min (protocol default 50 mL/min)"
            in r.output)
    assert lines[-1].endswith("--details --param crcl_min=60")


# -- derived values, as numbers with units and inputs -------------------------------------------

def test_derived_values_are_numbers_with_units_and_inputs():
    doc = summarise(KB, screened(REFERRAL))
    d = {x["name"]: x for x in doc["derived"]}
    crcl = d["crcl"]
    i = crcl["inputs"]
    scr = Fraction(78) / Fraction("88.4")  # umol/L to mg/dL (creatinine 113.12 g/mol)
    assert i["creatinine"]["value"] == pytest.approx(float(scr), rel=1e-3)
    # Cockcroft-Gault (Nephron 1976), by hand: (140 - age) x weight / (72 x Scr) x 0.85 (female)
    expected = (140 - 34) * 68 / (72 * i["creatinine"]["value"]) * 0.85
    assert crcl["value"] == pytest.approx(expected, rel=1e-9) and crcl["unit"] == "mL/min"
    assert i["weight_used"] == {"value": 68, "unit": "kg", "basis": "actual body weight", "parameter": "crcl_weight=actual"}
    assert d["prednisone_equivalent"]["value"] == 10 and d["prednisone_equivalent"]["unit"] == "mg/day"
    # SLEDAI-2K (Gladman 2002): arthritis 4 + proteinuria 4 + low complement 2 + DNA binding 2 + rash 2
    assert d["sledai2k"]["low"] == 14 and d["sledai2k"]["high"] == 105  # descriptors not declared complete
    # EULAR/ACR 2019 (Aringer 2019): joints 6 + anti-dsDNA 6 + low C3 or C4 3 + proteinuria 4
    assert d["eular_acr_2019_sle"]["low"] == 19
    ssc = {x["name"]: x for x in summarise(KB, screened("ssc-eligible"))["derived"]}
    # ACR/EULAR 2013 (van den Hoogen 2013): skin thickening 9 + Raynaud 3 + anti-topo I 3 + ILD 2
    assert ssc["acr_eular_2013_ssc"]["low"] == 17 and ssc["acr_eular_2013_ssc"]["unit"] == "{score}"
    alt = {x["name"]: x for x in summarise(KB, screened("sle-eligible"))["derived"]}["alt_x_uln"]
    assert (alt["value"], alt["unit"], alt["measured"]["value"], alt["uln"]["value"]) == (0.8, "x ULN", 32, 40)
    assert alt["uln"]["from"] == "reference range" and alt["window_days"] == 28 and alt["in_window"]


def test_every_finding_has_its_age_against_its_window():
    doc = summarise(KB, screened("sle-anc-29-days-old"))
    anc = next(f for f in doc["findings"] if f["finding"] == "anc")
    assert (anc["days_before_screening"], anc["window_days"], anc["in_window"], anc["read"]) == (29, 28, False, False)
    assert all("observations[" not in f["text"] for f in doc["findings"])


# -- every text output of every example patient ---------------------------------------------

PROGRAM_WORDS = re.compile(r"--details|--population|pyasp-screen|not_met|\.yaml|is not read|\bnot read\b|"
                           r"other reasons?\)|explain lists")


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_text_outputs_read_at_a_glance(path):
    r = run("explain", path)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert len(lines) == len(set(lines)), [x for x in lines if lines.count(x) > 1]
    assert not re.search(r"\b(observations|medications|diagnoses|assessments)\[\d+\]", r.output)
    assert "diagnoses declared complete" not in r.output and "decides" not in r.output
    assert re.match(r"(Eligible|Ineligible|Undetermined)", lines[1])
    assert max(len(x) for x in lines[:-1] if not x.startswith("  SLE-IN-3") and not x.startswith("  SSC-IN-3")
               and not x.startswith("  SLE-IN-2") and not x.startswith("  SLE-IN-7b")
               and not x.startswith("  SSC-IN-4b")) < 500
    # no program words for a coordinator, but for the one hint at the very end
    text = coordinator_text(r.output)
    assert not PROGRAM_WORDS.search(text), PROGRAM_WORDS.search(text).group(0)
    assert re.match(r"^[A-Z0-9-]+, screening date \d{4}-\d\d-\d\d$", lines[0])


# -- what the explanation does not try: said, never "nothing could" (a new author's report) ----

def test_an_open_medication_list_is_said_not_tried_and_never_useless():
    doc = summarise(AUTHOR_KB, author("inc5-meds-open"))
    a = doc["answer"]
    assert doc["overall"] == "undetermined" and a["gap"] == {"eligible": True, "ineligible": False}
    assert [(u["category"], u["criteria"]) for u in a["unexplored"]] == [("medications", ["INC-5"])]
    assert doc["headline"].endswith("yet the verdict is undetermined: a fuller record could settle it")
    # the nephritis assessment and the biopsy class matter if IV cyclophosphamide and MMF
    # were given: never "cannot change the outcome"
    useless = next(e for e in doc["explanations"] if e["scope"] == "overall")["cannot_change_outcome"]
    assert not any("nephritis" in x for x in useless)
    assert any("nephritis still active" in x for x in a["cannot_tell"])
    assert any("biopsy" in x for x in a["cannot_tell"])
    # "SLEDAI-2K at screening" is recorded (descriptors of 2026-02-24): never listed unknown
    assert not any("SLEDAI-2K at screening" in x for x in useless + a["cannot_tell"])
    # re-screened: the fuller medication history the text speaks of does make her eligible
    def more_courses(rec):
        from pyasp_screen.inputs.record import Medication
        import datetime as dt
        rec.medications += [Medication(drug="mycophenolate_mofetil", route="oral", dose=2000, unit="mg",
                                       start=dt.date(2024, 1, 1), end=dt.date(2025, 6, 1)),
                            Medication(drug="belimumab", route="iv", start=dt.date(2025, 1, 1))]
    kw = {"kb": AUTHOR_KB, "cases": AUTHOR / "cases"}
    assert rescreen("inc5-meds-open", [], change=more_courses, **kw)["overall"] == "eligible"
    assert rescreen("inc5-meds-open", ["complete=medications"], **kw)["overall"] == "ineligible"  # the step
    text = coordinator_text(run("explain", "--kb", AUTHOR, AUTHOR / "cases" / "inc5-meds-open.yaml").output)
    assert "nothing left unknown could" not in text and "cannot change the outcome" not in text
    assert ("Not tried by the explanation (it cannot try them one by one): treatment courses beyond the 2 listed "
            "(the medication history is not declared complete), which INC-5 reads.") in text


def test_a_score_total_without_descriptors_is_said_not_tried():
    doc = summarise(AUTHOR_KB, author("inc3-total-only-12"))
    a = doc["answer"]
    assert a["gap"] == {"eligible": True, "ineligible": True}
    assert [(u["category"], u["criteria"]) for u in a["unexplored"]] == [("sledai2k_descriptors", ["INC-3", "EX-1"])]
    assert a["unexplored"][0]["text"] == "the SLEDAI-2K descriptors (only a total is recorded)"
    details = run("explain", "--kb", AUTHOR, AUTHOR / "cases" / "inc3-total-only-12.yaml", "--details").output
    assert "nothing left unknown could do it" not in details
    # re-screened: recording the descriptors settles it, either way
    def descriptors(**items):
        def change(rec):
            rec.sledai2k[0].descriptors = items
            rec.sledai2k[0].total = None
            rec.complete = [*rec.complete, "sledai2k_descriptors"]
        return change
    kw = {"kb": AUTHOR_KB, "cases": AUTHOR / "cases"}
    assert rescreen("inc3-total-only-12", [], change=descriptors(
        arthritis=True, proteinuria=True, low_complement=True, increased_dna_binding=True), **kw)["overall"] == "eligible"
    assert rescreen("inc3-total-only-12", [], change=descriptors(
        seizure=True, low_complement=True, increased_dna_binding=True), **kw)["overall"] == "ineligible"


def test_medication_reasons_and_item_labels_read_as_people_write_them():
    doc = summarise(AUTHOR_KB, author("inc5-two-cni"))
    reason = doc["answer"]["reason"]["text"]
    assert reason.startswith("INC-5: the medication history, declared complete, lists only: prednisone oral")
    assert "tacrolimus" in reason and "cyclosporine" in reason
    miss = doc["answer"]["nearest_miss"]
    assert miss["text"].startswith("undetermined if the medication history were not declared complete")
    assert "a treatment course missing from the list could then change it" in miss["text"]
    kw = {"kb": AUTHOR_KB, "cases": AUTHOR / "cases"}
    assert rescreen("inc5-two-cni", [], change=lambda rec: setattr(
        rec, "complete", [c for c in rec.complete if c != "medications"]), **kw)["overall"] == "undetermined"
    for case in sorted((AUTHOR / "cases").glob("*.yaml")):
        out = run("explain", "--kb", AUTHOR, case, "--details").output
        assert not re.search(r"gt 0 5g|eular acr 2019 sle items|low c3 or low c4|dna binding", out), case.name
        assert "the complete list of" not in out, case.name


def test_explain_json_matches_its_schema_and_details_say_each_population_once():
    schema = json.loads((ROOT / "docs" / "schema" / "explain-output.schema.json").read_text())
    for name in ("sle-in-7b-not-met", REFERRAL, "sle-eligible", "sle-creatinine-50-days-old"):
        doc = json.loads(run("explain", CASES / f"{name}.yaml", "--format", "json").output)
        jsonschema.validate(doc, schema)
    r = run("explain", CASES / f"{REFERRAL}.yaml", "--details")
    assert "  SLE: undetermined, the same explanations as overall" in r.output
    assert r.output.count("Unknown, but cannot change the outcome") == 1


def test_population_option_explains_one_population():
    r = run("explain", CASES / f"{REFERRAL}.yaml", "--population", "ssc")
    assert r.exit_code == 0, r.output
    assert "SSc only: undetermined: 16 findings to get; eligible for SSc" in r.output
    assert "SLE-IN-" not in r.output.split("Criteria (registry sentences)")[0]
    assert run("explain", CASES / f"{REFERRAL}.yaml", "--population", "xyz").exit_code == 2


def test_every_text_output_names_changed_parameters(tmp_path):
    say = "crcl_min=30 mL/min"
    assert say in run("explain", CASES / "sle-eligible.yaml", "--param", "crcl_min=30").output
    assert say in run("screen", CASES / "sle-eligible.yaml", "--param", "crcl_min=30").output
    assert say in run("screen", CASES, "--param", "crcl_min=30").output
    assert say in run("cohort", CASES, "--param", "crcl_min=30").output
    assert say in run("whatif", CASES / "sle-eligible.yaml", "--param", "crcl_min=30").output
    assert say in run("diff", CASES / "sle-eligible.yaml", "--against-param", "crcl_min=30").output
    run("graph", CASES / "sle-eligible.yaml", "--param", "crcl_min=30", "-o", tmp_path / "g.dot")
    assert say in (tmp_path / "g.dot").read_text()
    # and a default run says nothing of parameters
    assert "not the protocol" not in run("explain", CASES / "sle-eligible.yaml").output
    assert "A what-if, not the protocol: crcl_min=30" in run("cohort", CASES, "--param", "crcl_min=30").output


def test_screen_table_and_whatif_read_at_a_glance():
    r = run("screen", CASES / "sle-eligible.yaml", CASES / "sle-in-7d-unknown.yaml", "--explain", "--no-details")
    lines = r.output.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("patient"))
    assert "file" not in header  # the file names say no more than the patient IDs
    assert header.split()[:4] == ["patient", "overall", "SLE", "SSc"] and "answer" in header  # the answer next
    row = next(line for line in lines if line.lstrip().startswith("SLE-ELIGIBLE"))
    assert "SSC-IN-1" not in row  # an eligible patient is excluded by nothing
    assert "to get (1) - tests: APTT" in " ".join(r.output.split())
    assert "overall: eligible if eligible for SLE or SSc" in r.output
    assert lines[-1] == "2 pre-screened (1 eligible, 0 ineligible, 1 undetermined); every record was read"
    plain = run("screen", CASES / "sle-in-7b-not-met.yaml", CASES / "sle-in-7d-unknown.yaml", "--no-details").output
    assert "SLE: SLE-IN-7b; SSc: SSC-IN-1, SSC-IN-2, SSC-IN-4b" in plain  # by population
    assert "criteria unknown: those the record cannot decide yet" in " ".join(plain.split())
    r = run("whatif", CASES / "sle-in-7b-not-met.yaml", "--set", "anc=1.2")
    lines = r.output.splitlines()
    assert max(len(x) for x in lines) < 200  # no 1,500-character reason
    assert lines[0] == ("SLE-IN-7B-NOT-MET: as recorded, and what if ANC 1.2 x10^9/L (a new result dated on the "
                        "screening date)")
    assert "  SLE-IN-7b: not met -> met" in lines and "not_met" not in r.output and "*" not in r.output
    assert any(x.startswith("With this change the patient would be eligible for SLE") for x in lines)
    assert lines[-1] == ("  This holds provided no growth factor or transfusion is given within 7 days before "
                         "screening to reach it (SLE-IN-7b, SSC-IN-4b).")
    assert "pyasp-screen" not in r.output


def test_a_deceased_patient_is_excluded_by_the_rule_beside_the_criteria(tmp_path):
    # kb/lib/core.lp: a deceased patient is never eligible; no criterion decides it, so the
    # reason names no criterion ("never eligible ()" before) and no near miss is offered
    # ("undetermined if patient deceased ... were not on record" is no change anyone can make).
    import yaml
    case = yaml.safe_load((CASES / "sle-eligible.yaml").read_text())
    case["deceased"] = "2026-02-27"
    (tmp_path / "dead.yaml").write_text(yaml.safe_dump(case))
    s = next(screen_records(load_file(tmp_path / "dead.yaml"), KB))
    doc = summarise(KB, s)
    a = doc["answer"]
    assert a["verdict"] == "ineligible" and a["reason"]["criteria"] == []
    assert a["reason"]["text"] == ("patient deceased on 2026-02-27: never eligible "
                                   "(a rule of the knowledge base beside the registry's criteria)")
    assert a["nearest_miss"] is None
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "dead.yaml"), "--details"])
    assert r.exit_code == 0, r.output
    assert "()" not in r.output and "[]" not in r.output
    assert "the death on record above" in r.output  # the SSc line names it briefly


def _answer_comparisons(doc: dict) -> list[dict]:
    a = doc["answer"]
    return (a.get("thinnest_margins", []) + [c for st in a.get("to_measure", []) for c in st.get("on_record", [])]
            + [c for ev in a.get("evidence", []) for c in ev.get("comparisons", [])])


def test_spo2_says_whether_room_air_was_recorded_or_read_so():
    # SLE-IN-7e asks for SpO2 "in room air"; sle-eligible's SpO2 carries no room-air flag, so
    # the text must not state room air as a fact (a second reader copied it into a log).
    doc = summarise(KB, screened("sle-eligible"))
    spo2 = [c for c in _answer_comparisons(doc) if c["finding"].startswith("SpO2")]
    assert spo2 and all(c["value_text"].endswith("(room air not recorded; read as room air)") for c in spo2)
    assert any(i["parameter"] == "spo2_unflagged_is_room_air" for i in doc["interpretations"])
    def spo2_data(name):
        return [f.data() if callable(f.data) else f.data for f in screened(name).findings.findings if f.name == "spo2"]
    assert [d["room_air"] for d in spo2_data("sle-eligible")] == ["assumed"]
    assert [d["room_air"] for d in spo2_data("sle-referral-labs-pending")] == ["recorded"]  # room_air: true


def test_a_uln_from_the_site_table_is_named_as_the_knowledge_base_s_reading():
    # ssc-eligible's PT and bilirubin carry no reference range: their ULN is the site table's
    # (parameters site_uln_*), which the reader must be told (it is not the registry's).
    doc = summarise(KB, screened("ssc-eligible"))
    [uln] = [i for i in doc["interpretations"] if i["kind"] == "uln"]
    assert "site_uln_pt" in uln["parameters"] and "no reference range" in uln["text"]
    used = {c["finding"] for c in _answer_comparisons(doc) if (c.get("uln_from") or "").startswith("site table")}
    assert set(uln["findings"]) <= used | {c["finding"] for st in doc["answer"].get("evidence", [])
                                              for c in st.get("comparisons", [])}


def test_hydration_assistance_yes_reads_as_repeat_the_crcl_not_exclude():
    doc = summarise(KB, screened("sle-referral-labs-pending"))
    [step] = [s for s in doc["answer"]["to_measure"] if s["label"].startswith("hydration assistance")]
    assert "excluded if yes" not in step["text"]
    assert step["text"].endswith("if yes, the CrCl on record does not count: not met until a CrCl is "
                                 "repeated without hydration assistance")


def test_a_death_after_the_screening_date_leaves_the_patient_alive_on_that_date(tmp_path):
    # Retrospective feasibility: screened as of 2026-03-01, died on 2026-05-01: alive then,
    # so the verdict is the living patient's, with a note (not "never eligible").
    import yaml
    case = yaml.safe_load((CASES / "sle-eligible.yaml").read_text())
    case["deceased"] = "2026-05-01"
    (tmp_path / "later.yaml").write_text(yaml.safe_dump(case))
    s = next(screen_records(load_file(tmp_path / "later.yaml"), KB))
    assert s.result.overall == screened("sle-eligible").result.overall == "eligible"
    assert "patient deceased on 2026-05-01, after the screening date 2026-03-01: screened as alive on that date" \
        in s.findings.notes


def test_the_explanation_states_the_screening_date_the_patient_was_screened_at(tmp_path):
    """A FHIR Bundle is screened at its latest clinical date (here an impossible Hb's, set
    aside): explain states that date as screen does, though no finding is dated by it (the
    header showed the patient alone and the JSON screening_date null, beside "age 40 y")."""
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p3", "birthDate": "1980-01-01", "gender": "female"}},
        {"resource": {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p3"},
                      "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                      "effectiveDateTime": "2020-01-01",
                      "valueQuantity": {"value": -5, "unit": "g/dL", "system": "http://unitsofmeasure.org",
                                        "code": "g/dL"}}}]}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    screened = json.loads(CliRunner().invoke(main, ["screen", str(path), "--format", "json"]).output)
    assert screened["results"][0]["screening_date"] == "2020-01-01"
    r = CliRunner().invoke(main, ["explain", str(path), "--format", "json"])
    doc = json.loads(r.output)["patients"][0]
    assert doc["screening_date"] == "2020-01-01"
    assert any("set aside" in n for n in doc["notes"])
    text = CliRunner().invoke(main, ["explain", str(path)]).output
    assert text.splitlines()[0] == "p3, screening date 2020-01-01"
