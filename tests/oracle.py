"""A brute-force oracle for the completion semantics of docs/SPEC.md.

It knows nothing of how the knowledge base reasons about unknown data. A small record is a
choice, for each *slot* (one finding the CT1190B criteria read), of one of the slot's
alternative values, or ``None`` for unknown. A completion replaces every unknown slot by one
of its alternatives. The oracle screens every completion, where nothing is unknown, and
aggregates by the definitions:

- a criterion is met if it is met in every completion, not_met if in none, else unknown;
- a population is eligible if in every completion all its inclusion criteria are met and no
  exclusion criterion is, ineligible if that holds in no completion, else undetermined.

Alternatives sit on and around each threshold, so that every class of value the criteria
distinguish is represented. Facts are written in the vocabulary of docs/vocabulary.md with
``{P}`` standing for the patient.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

from pyasp_screen.engine.engine import Engine, Result
from pyasp_screen.findings.derive import Finding, Findings, asp_string, grid


def q(name: str, value: str, days: int = 3) -> str:
    g = grid(Fraction(value))
    return f"quantity({{P}},{name},{g},{g},{days})."


def quantity_slot(name: str, values: list[str]) -> list[str]:
    return [q(name, v) for v in values]


def yes_no(template: str) -> list[str]:
    return [template.format(V="yes"), template.format(V="no")]


# slot -> alternatives (each a string of facts). Categories that are closed in every record
# (diagnoses, SLEDAI-2K descriptors, organ involvement) mark an unknown slot explicitly.
SLOTS: dict[str, list[str]] = {
    "anc": quantity_slot("anc", ["0.9995", "1.0", "1.5"]),
    "hb": quantity_slot("hb", ["59.5", "60", "89", "90", "120"]),
    "crcl": quantity_slot("crcl", ["29.99", "30", "49.9996", "50", "80"]),
    "hydration": yes_no("assessment({{P}},hydration_assistance,{V},1)."),
    "alt": quantity_slot("alt_x_uln", ["1", "2", "2.001"]),
    "ast": quantity_slot("ast_x_uln", ["1", "2.5"]),
    "bilirubin": quantity_slot("bilirubin_total_x_uln", ["1", "2.5"]),
    "inr": quantity_slot("inr_x_uln", ["1", "1.5", "1.6"]),
    "aptt": quantity_slot("aptt_x_uln", ["1", "1.6"]),
    "pt": quantity_slot("pt_x_uln", ["1", "1.6"]),
    "spo2": quantity_slot("spo2", ["91.9", "92", "97"]),
    "lvef": quantity_slot("lvef", ["39", "40", "60"]),
    "fvc": quantity_slot("fvc_pct_predicted", ["30", "30.1", "70"]),
    "dlco": quantity_slot("dlco_hb_corrected_pct_predicted", ["29", "31"]),
    "ana": ["qualitative({P},ana,positive,2).", "qualitative({P},ana,negative,2)."],
    "anti_dsdna": ["qualitative({P},anti_dsdna,positive,2).", "qualitative({P},anti_dsdna,negative,2)."],
    "anti_smith": ["qualitative({P},anti_smith,positive,2).", "qualitative({P},anti_smith,negative,2)."],
    "igra": ["qualitative({P},igra,positive,2).", "qualitative({P},igra,negative,2)."],
    "prednisone_equivalent": quantity_slot("prednisone_equivalent", ["0", "7.499", "7.5", "20"]),
    "sle_classification": yes_no("classification({{P}},eular_acr_2019_sle,{V})."),
    "ssc_classification": yes_no("classification({{P}},acr_eular_2013_ssc,{V})."),
    "sle_duration": ["diagnosis({P},sle,yes). disease_duration_months({P},sle,5).",
                     "diagnosis({P},sle,yes). disease_duration_months({P},sle,6).",
                     "diagnosis({P},sle,yes). disease_duration_months({P},sle,40)."],
    "ssc_subtype": ["diagnosis({P},ssc,yes). assessment({P},ssc_subtype,diffuse,0).",
                    "diagnosis({P},ssc,yes). assessment({P},ssc_subtype,limited,0)."],
    "ssc_ild": yes_no("diagnosis({{P}},ssc_ild,{V})."),
    "renal_crisis": yes_no("diagnosis({{P}},scleroderma_renal_crisis,{V})."),
    "severe_ckd": yes_no("diagnosis({{P}},severe_kidney_disease,{V})."),
    "active_tb": yes_no("diagnosis({{P}},active_tuberculosis,{V})."),
    "hemodynamics": yes_no("assessment({{P}},hemodynamically_stable,{V},1)."),
    "ssc_progressive": yes_no("assessment({{P}},ssc_progressive,{V},1)."),
    "ssc_relapse": yes_no("assessment({{P}},ssc_relapse_after_remission,{V},1)."),
    "ssc_ineffective": yes_no("assessment({{P}},ssc_conventional_treatment_ineffective,{V},1)."),
    "arthritis": yes_no("item({{P}},sledai2k_descriptors,arthritis,{V})."),
    "proteinuria": yes_no("item({{P}},sledai2k_descriptors,proteinuria,{V})."),
    "rash": yes_no("item({{P}},sledai2k_descriptors,rash,{V})."),
    "renal_organ": yes_no("item({{P}},organ_involvement,renal,{V})."),
    "mucocutaneous_organ": yes_no("item({{P}},organ_involvement,mucocutaneous,{V})."),
    "transfusion": ["complete({P},transfusions). event({P},transfusion,7).",
                    "complete({P},transfusions). event({P},transfusion,8).",
                    "complete({P},transfusions)."],
    "growth_factor": ["complete({P},growth_factors). event({P},growth_factor,2).",
                      "complete({P},growth_factors)."],
    # A medication history, complete when known: the courses that matter to CT1190B.
    "medications": [
        "complete({P},medications).",
        "complete({P},medications). course({P},0,prednisone,oral,-200,0). gc_dose_per_kg({P},0,400,400).",
        "complete({P},medications). course({P},0,prednisone,oral,-200,0). gc_dose_per_kg({P},0,400,400). "
        "course({P},1,mycophenolate_mofetil,oral,-200,0).",
        "complete({P},medications). course({P},0,prednisone,oral,-200,0). gc_dose_per_kg({P},0,400,400). "
        "course({P},1,mycophenolate_mofetil,oral,-200,0). dose_change({P},1,-5).",
        "complete({P},medications). course({P},0,cyclophosphamide,iv,-400,-100). "
        "course({P},1,azathioprine,oral,-400,0).",
        "complete({P},medications). course({P},0,prednisone,oral,-300,-100). gc_dose_per_kg({P},0,2500,2500). "
        "course({P},1,mycophenolate_mofetil,oral,-300,-100).",
        "complete({P},medications). course({P},0,prednisone,oral,-200,0). gc_dose_per_kg({P},0,400,400). "
        "course({P},1,mycophenolate_mofetil,oral,-200,0). course({P},2,belimumab,iv,-5,0).",
    ],
}

# Facts every record has: the patient, a SLEDAI-2K assessment and closed categories whose
# unknown slots are marked explicitly (so "unknown" really is unknown).
BASE = ("patient({P}). sledai2k_assessed({P},2). complete({P},sledai2k_descriptors). "
        "complete({P},organ_involvement). complete({P},diagnoses).")
UNKNOWN_MARK = {
    "arthritis": "item_unknown({P},sledai2k_descriptors,arthritis).",
    "proteinuria": "item_unknown({P},sledai2k_descriptors,proteinuria).",
    "rash": "item_unknown({P},sledai2k_descriptors,rash).",
    "renal_organ": "item_unknown({P},organ_involvement,renal).",
    "mucocutaneous_organ": "item_unknown({P},organ_involvement,mucocutaneous).",
    "ssc_ild": "diagnosis_unknown({P},ssc_ild).",
    "renal_crisis": "diagnosis_unknown({P},scleroderma_renal_crisis).",
    "severe_ckd": "diagnosis_unknown({P},severe_kidney_disease).",
    "active_tb": "diagnosis_unknown({P},active_tuberculosis).",
    # SLE onset unknown: diagnosis present, duration unknown.
    "sle_duration": "diagnosis({P},sle,yes).",
    "ssc_subtype": "diagnosis({P},ssc,yes).",
}

Assignment = dict[str, int | None]  # slot -> index of its alternative, or None (unknown)


def facts(assignment: Assignment, pid: str) -> str:
    parts = [BASE]
    for slot, choice in assignment.items():
        if choice is None:
            parts.append(UNKNOWN_MARK.get(slot, ""))
        else:
            parts.append(SLOTS[slot][choice])
    return " ".join(parts).replace("{P}", asp_string(pid)) + "\n"


def as_findings(assignment: Assignment, pid: str) -> Findings:
    text = facts(assignment, pid)
    return Findings(pid, [Finding(f.strip().rstrip("."), "oracle", f.strip())
                          for f in text.split(". ") if f.strip()])


def completions(assignment: Assignment):
    unknown = [s for s, c in assignment.items() if c is None]
    for values in itertools.product(*(range(len(SLOTS[s])) for s in unknown)):
        full = dict(assignment)
        full.update(zip(unknown, values))
        yield full


def oracle(engine: Engine, assignment: Assignment) -> Result:
    """The result the definitions give, by screening every completion."""
    fulls = list(completions(assignment))
    results = engine.screen(as_findings(a, f"c{i}") for i, a in enumerate(fulls))
    kb = engine.kb
    out = Result("oracle")
    for cond in results[0].statuses:
        seen = {r.statuses[cond] for r in results}
        if "unknown" in seen:
            raise AssertionError(f"{cond} is unknown in a completion: the slot table misses a finding it reads")
        out.statuses[cond] = "met" if seen == {"met"} else "not_met" if seen == {"not_met"} else "unknown"
    for pop in kb.populations:
        ok = []
        for r in results:
            ok.append(all(r.statuses[c.id] == ("met" if c.kind == "inclusion" else "not_met")
                          for c in kb.criteria if c.population == pop))
        out.verdicts[pop] = "eligible" if all(ok) else "ineligible" if not any(ok) else "undetermined"
    v = out.verdicts.values()
    out.overall = ("eligible" if "eligible" in v else
                   "ineligible" if all(x == "ineligible" for x in v) else "undetermined")
    return out
