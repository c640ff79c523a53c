"""A small OMOP CDM (v5.4) of SLE and SSc patients, written by hand for the OMOP route's tests.

The persons 1001-1003 and 2001-2003 are the patients of tests/data/omop/native.yaml, written
here as a CDM would hold them (conditions, drug exposures with drug_strength, measurements with
UCUM unit concepts, local pyasp_screen concepts for assessments and score items, observation
periods that make lists complete or not). Screening the two at 2026-03-01 must agree criterion by
criterion (tests/test_omop.py). Besides them:

- 1001 also has rows no criterion reads (oral temperature, a viral sinusitis) and an SLE
  condition coded by its ICD-10-CM source only (M32.14, concept 0);
- 1003 has a creatinine "< 0.5" (operator_concept_id "<": a bound, not read) and an ANA dated
  after the screening date;
- 1004 died on 2026-01-15 (not screened at 2026-03-01);
- person_id 9999 has measurements but no person row.

Concept ids: those of the OMOP vocabulary where Eunomia (the OHDSI test CDM) holds the same
concept (3000963 Hemoglobin, 1551192 Prednisone 5 MG Oral Tablet, ...) and 8840 (milligram per
deciliter); the others are local to this fixture (91xxxxxx), as are the RxNorm Extension codes
OMOP91xxxxx of its drug products. The local pyasp_screen concepts use 2,000,000,000 and up, the
range OMOP reserves for site concepts. The reader never relies on a concept id except the Gender
concepts 8507 / 8532: it matches vocabulary_id and concept_code.
"""

from __future__ import annotations

import datetime as dt
from itertools import count

D = dt.date

# -- vocabulary ------------------------------------------------------------------------------------
# (concept_id, concept_name, domain_id, vocabulary_id, concept_class_id, standard_concept, concept_code)
CONCEPTS = [
    # LOINC
    (3000963, "Hemoglobin [Mass/volume] in Blood", "Measurement", "LOINC", "Lab Test", "S", "718-7"),
    (3016723, "Creatinine [Mass/volume] in Serum or Plasma", "Measurement", "LOINC", "Lab Test", "S", "2160-0"),
    (3006923, "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "Measurement",
     "LOINC", "Lab Test", "S", "1742-6"),
    (3013721, "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "Measurement",
     "LOINC", "Lab Test", "S", "1920-8"),
    (3006322, "Oral temperature", "Measurement", "LOINC", "Clinical Observation", "S", "8331-1"),
    (91000001, "Nuclear Ab [Presence] in Serum", "Measurement", "LOINC", "Lab Test", "S", "8061-4"),
    (91000002, "DNA double strand Ab [Presence] in Serum", "Measurement", "LOINC", "Lab Test", "S", "5130-0"),
    (91000003, "Body weight Measured", "Measurement", "LOINC", "Clinical Observation", "S", "29463-7"),
    (91000004, "Body height", "Measurement", "LOINC", "Clinical Observation", "S", "8302-2"),
    (91000005, "Neutrophils [#/volume] in Blood by Automated count", "Measurement", "LOINC", "Lab Test", "S",
     "751-8"),
    (91000006, "Bilirubin.total [Mass/volume] in Serum or Plasma", "Measurement", "LOINC", "Lab Test", "S",
     "1975-2"),
    (91000007, "INR in Platelet poor plasma by Coagulation assay", "Measurement", "LOINC", "Lab Test", "S", "6301-6"),
    (91000008, "aPTT in Blood by Coagulation assay", "Measurement", "LOINC", "Lab Test", "S", "14979-9"),
    (91000009, "Prothrombin time (PT)", "Measurement", "LOINC", "Lab Test", "S", "5902-2"),
    (91000010, "Oxygen saturation in Arterial blood by Pulse oximetry", "Measurement", "LOINC", "Clinical Observation",
     "S", "59408-5"),
    (91000011, "Left ventricular Ejection fraction", "Measurement", "LOINC", "Clinical Observation", "S", "10230-1"),
    (91000012, "FVC measured/predicted pre bronchodilation", "Measurement", "LOINC", "Clinical Observation", "S", "19871-3"),
    # UCUM units
    (8840, "milligram per deciliter", "Unit", "UCUM", "Unit", "S", "mg/dL"),
    (91100001, "micromole per liter", "Unit", "UCUM", "Unit", "S", "umol/L"),
    (91100002, "kilogram", "Unit", "UCUM", "Unit", "S", "kg"),
    (91100003, "centimeter", "Unit", "UCUM", "Unit", "S", "cm"),
    (91100004, "billion per liter", "Unit", "UCUM", "Unit", "S", "10*9/L"),
    (91100005, "gram per deciliter", "Unit", "UCUM", "Unit", "S", "g/dL"),
    (91100006, "gram per liter", "Unit", "UCUM", "Unit", "S", "g/L"),
    (91100007, "unit per liter", "Unit", "UCUM", "Unit", "S", "U/L"),
    (91100008, "second", "Unit", "UCUM", "Unit", "S", "s"),
    (91100009, "percent", "Unit", "UCUM", "Unit", "S", "%"),
    (91100010, "milligram", "Unit", "UCUM", "Unit", "S", "mg"),
    (91100011, "degree Celsius", "Unit", "UCUM", "Unit", "S", "Cel"),
    # answers, operators
    (91200001, "Positive", "Meas Value", "Meas Value", "Answer", "S", "fixture-positive"),
    (91200002, "Negative", "Meas Value", "Meas Value", "Answer", "S", "fixture-negative"),
    (91200003, "Yes", "Meas Value", "Yes/No", "Answer", "S", "Y"),
    (91200004, "No", "Meas Value", "Yes/No", "Answer", "S", "N"),
    (91200005, "<", "Meas Value Operator", "Meas Value Operator", "Meas Value Operator", "S", "fixture-lt"),
    # SNOMED CT: conditions, procedures, routes
    (91300001, "Systemic lupus erythematosus", "Condition", "SNOMED", "Clinical Finding", "S", "55464009"),
    (91300002, "Systemic sclerosis", "Condition", "SNOMED", "Clinical Finding", "S", "89155008"),
    (91300003, "Chronic kidney disease stage 5", "Condition", "SNOMED", "Clinical Finding", "S", "433146000"),
    (40481087, "Viral sinusitis", "Condition", "SNOMED", "Clinical Finding", "S", "444814009"),
    (91300004, "Transfusion of blood product", "Procedure", "SNOMED", "Procedure", "S", "116859006"),
    (91300005, "Transfusion of red blood cells", "Procedure", "SNOMED", "Procedure", "S", "116863004"),
    (91300006, "Oral", "Route", "SNOMED", "Qualifier Value", "S", "26643006"),
    (91300007, "Intravenous", "Route", "SNOMED", "Qualifier Value", "S", "47625008"),
    (91300008, "Subcutaneous", "Route", "SNOMED", "Qualifier Value", "S", "34206005"),
    # ICD-10-CM source codes
    (91400001, "Systemic sclerosis with lung involvement", "Condition", "ICD10CM", "5-char billing code", None,
     "M34.81"),
    (91400002, "Tuberculosis of lung", "Condition", "ICD10CM", "4-char billing code", None, "A15.0"),
    (91400003, "Glomerular disease in systemic lupus erythematosus", "Condition", "ICD10CM",
     "5-char billing code", None, "M32.14"),
    # RxNorm ingredients and drug products
    (1551099, "prednisone", "Drug", "RxNorm", "Ingredient", "S", "8640"),
    (1551192, "Prednisone 5 MG Oral Tablet", "Drug", "RxNorm", "Clinical Drug", "S", "312617"),
    (91500001, "mycophenolate mofetil", "Drug", "RxNorm", "Ingredient", "S", "68149"),
    (91500002, "mycophenolate mofetil 500 MG Oral Tablet", "Drug", "RxNorm Extension", "Clinical Drug", "S",
     "OMOP9150002"),
    (91500003, "cyclophosphamide", "Drug", "RxNorm", "Ingredient", "S", "3002"),
    (91500004, "cyclophosphamide 500 MG Injection", "Drug", "RxNorm Extension", "Clinical Drug", "S",
     "OMOP9150004"),
    (91500005, "filgrastim", "Drug", "RxNorm Extension", "Ingredient", "S", "OMOP9150005"),
    (91500006, "filgrastim 0.6 MG/ML Prefilled Syringe", "Drug", "RxNorm Extension", "Clinical Drug", "S",
     "OMOP9150006"),
]

LOCAL = 2_000_000_000
LOCAL_CODES = [
    "assessment:hydration_assistance", "assessment:hemodynamically_stable", "assessment:ssc_subtype",
    "assessment:ssc_progressive", "assessment:ssc_relapse_after_remission",
    "assessment:ssc_conventional_treatment_ineffective",
    "observation:anti_smith", "observation:dlco_hb_corrected_pct_predicted", "observation:igra",
    "eular_acr_2019_sle:ana_ge_1_80", "eular_acr_2019_sle:joint_involvement",
    "eular_acr_2019_sle:anti_dsdna_or_anti_smith", "eular_acr_2019_sle:low_c3_and_low_c4",
    "acr_eular_2013_ssc:met", "acr_eular_2013_ssc:skin_thickening_proximal_to_mcp",
    "acr_eular_2013_ssc:raynauds_phenomenon", "acr_eular_2013_ssc:anti_topoisomerase_i",
    "acr_eular_2013_ssc:interstitial_lung_disease", "organ_involvement:renal",
    "sledai2k:total",
]
SLEDAI = ["seizure", "psychosis", "organic_brain_syndrome", "visual_disturbance", "cranial_nerve_disorder",
          "lupus_headache", "cva", "vasculitis", "arthritis", "myositis", "urinary_casts", "hematuria",
          "proteinuria", "pyuria", "rash", "alopecia", "mucosal_ulcers", "pleurisy", "pericarditis",
          "low_complement", "increased_dna_binding", "fever", "thrombocytopenia", "leukopenia"]
ORGANS = ["renal", "neuropsychiatric", "hematologic", "musculoskeletal", "serosal", "cardiopulmonary",
          "vascular", "gastrointestinal", "ophthalmic", "mucocutaneous"]
LOCAL_CODES += [f"sledai2k:{d}" for d in SLEDAI] + [f"organ_involvement:{o}" for o in ORGANS if o != "renal"]
LOCAL_ID = {code: LOCAL + i for i, code in enumerate(LOCAL_CODES, 1)}
CONCEPTS += [(cid, code.replace(":", ": ").replace("_", " "), "Observation", "pyasp_screen", "Finding", None, code)
             for code, cid in LOCAL_ID.items()]

CID = {row[6]: row[0] for row in CONCEPTS if row[3] not in ("pyasp_screen",)}
UNIT = {row[6]: row[0] for row in CONCEPTS if row[3] == "UCUM"}
POS, NEG, YES, NO, LT = 91200001, 91200002, 91200003, 91200004, 91200005
ORAL, IV, SC = 91300006, 91300007, 91300008
PREDNISONE, PRED_5MG = 1551099, 1551192
MMF, MMF_500 = 91500001, 91500002
CYC, CYC_500 = 91500003, 91500004
FILGRASTIM, FILGRASTIM_SYRINGE = 91500005, 91500006

# (ancestor, descendant, min, max): every standard concept is its own ancestor (level 0)
ANCESTORS = [(c[0], c[0], 0, 0) for c in CONCEPTS if c[5] == "S"]
ANCESTORS += [(PREDNISONE, PRED_5MG, 1, 1), (MMF, MMF_500, 1, 1), (CYC, CYC_500, 1, 1),
              (FILGRASTIM, FILGRASTIM_SYRINGE, 1, 1), (CID["116859006"], CID["116863004"], 1, 1)]

# (drug, ingredient, amount_value, amount_unit, numerator_value, numerator_unit, denominator_value, denominator_unit)
STRENGTHS = [
    (PRED_5MG, PREDNISONE, 5, UNIT["mg"], None, None, None, None),
    (MMF_500, MMF, 500, UNIT["mg"], None, None, None, None),
    (CYC_500, CYC, None, None, 500, UNIT["mg"], 25, None),          # a concentration: no daily dose
    (FILGRASTIM_SYRINGE, FILGRASTIM, None, None, 0.3, UNIT["mg"], 0.5, None),
]

# -- persons -----------------------------------------------------------------------------------------
# (person_id, gender_concept_id, year, month, day)
PERSONS = [(1001, 8532, 1988, 5, 14), (1002, 8532, 1985, 3, 10), (1003, 8532, 1990, 7, 1),
           (2001, 8532, 1957, 6, 10), (2002, 8507, 1970, 2, 2), (2003, 8532, 1975, 9, 9),
           (1004, 8532, 1980, 1, 1)]
PERIODS = [(1001, D(2015, 1, 1), D(2026, 3, 1)), (1002, D(2018, 6, 1), D(2026, 3, 1)),
           (1003, D(2025, 12, 1), D(2026, 3, 1)), (2001, D(2012, 3, 1), D(2026, 3, 1)),
           (2002, D(2019, 1, 1), D(2026, 3, 1)), (2003, D(2016, 1, 1), D(2025, 12, 31)),
           (1004, D(2010, 1, 1), D(2026, 1, 15))]
DEATHS = [(1004, D(2026, 1, 15))]

_m = count(1)


def _meas(pid, code, day, value=None, unit=None, value_concept=None, high=None, low=None, operator=None,
          unit_source=None):
    concept = LOCAL_ID.get(code) or CID[code]
    return (next(_m), pid, concept, day, operator, value, value_concept, UNIT.get(unit, 0) if unit else 0,
            low, high, unit_source)


MEASUREMENTS = [
    # 1001: SLE, every SLE criterion met
    _meas(1001, "8061-4", D(2026, 2, 20), value_concept=POS),
    _meas(1001, "5130-0", D(2026, 2, 20), value_concept=POS),
    _meas(1001, "2160-0", D(2026, 2, 24), 70.7, "umol/L"),
    _meas(1001, "29463-7", D(2026, 2, 24), 62, "kg"),
    _meas(1001, "8302-2", D(2026, 2, 24), 165, "cm"),
    _meas(1001, "751-8", D(2026, 2, 24), 2.4, "10*9/L"),
    _meas(1001, "718-7", D(2026, 2, 24), 11.2, "g/dL"),
    _meas(1001, "1742-6", D(2026, 2, 24), 32, "U/L", high=40),
    _meas(1001, "1920-8", D(2026, 2, 24), 28, "U/L", high=40),
    _meas(1001, "1975-2", D(2026, 2, 24), 10, "umol/L", high=21),
    _meas(1001, "6301-6", D(2026, 2, 24), 1.0, high=1.2),               # INR: unit_concept_id 0
    _meas(1001, "14979-9", D(2026, 2, 24), 31, "s", high=38),
    _meas(1001, "59408-5", D(2026, 2, 24), 97, "%"),
    _meas(1001, "8331-1", D(2026, 2, 24), 36.8, "Cel"),                 # read by no criterion
    # 1002: SLE, every SLE criterion not met
    _meas(1002, "8061-4", D(2026, 2, 20), value_concept=NEG),
    _meas(1002, "5130-0", D(2026, 2, 20), value_concept=NEG),
    _meas(1002, "observation:anti_smith", D(2026, 2, 20), value_concept=NEG),
    _meas(1002, "2160-0", D(2026, 2, 25), 2.0, "mg/dL"),
    _meas(1002, "29463-7", D(2026, 2, 25), 50, "kg"),
    _meas(1002, "751-8", D(2026, 2, 25), 0.8, "10*9/L"),
    _meas(1002, "718-7", D(2026, 2, 25), 9.5, "g/dL"),
    _meas(1002, "1742-6", D(2026, 2, 25), 100, "U/L", high=40),
    _meas(1002, "1920-8", D(2026, 2, 25), 30, "U/L", high=40),
    _meas(1002, "1975-2", D(2026, 2, 25), 0.5, "mg/dL", high=1.2),
    _meas(1002, "6301-6", D(2026, 2, 25), 2.0, high=1.2),
    _meas(1002, "14979-9", D(2026, 2, 25), 70, "s", high=40),
    _meas(1002, "59408-5", D(2026, 2, 25), 88, "%"),
    # 1003: SLE, every SLE criterion unknown
    _meas(1003, "8061-4", D(2026, 2, 15), value_concept=NEG),
    _meas(1003, "2160-0", D(2026, 2, 15), 0.5, "mg/dL", operator=LT),   # "< 0.5": a bound, not read
    _meas(1003, "8061-4", D(2026, 3, 5), value_concept=POS),           # after the screening date
    # 2001: SSc, every SSc criterion met
    _meas(2001, "2160-0", D(2026, 2, 23), 0.8, "mg/dL"),
    _meas(2001, "29463-7", D(2026, 2, 23), 62, "kg"),
    _meas(2001, "751-8", D(2026, 2, 23), 3.1, "10*9/L"),
    _meas(2001, "718-7", D(2026, 2, 23), 121, "g/L"),
    _meas(2001, "1742-6", D(2026, 2, 23), 25, "U/L", high=40),
    _meas(2001, "1920-8", D(2026, 2, 23), 30, "U/L", high=40),
    _meas(2001, "1975-2", D(2026, 2, 23), 0.6, "mg/dL"),
    _meas(2001, "6301-6", D(2026, 2, 23), 1.0),
    _meas(2001, "5902-2", D(2026, 2, 23), 12.0, "s"),
    _meas(2001, "10230-1", D(2026, 2, 10), 58, "%"),
    _meas(2001, "19871-3", D(2026, 2, 10), 62, "%"),
    _meas(2001, "observation:dlco_hb_corrected_pct_predicted", D(2026, 2, 10), 45, "%"),
    _meas(2001, "observation:igra", D(2026, 2, 23), value_concept=NEG),
    # 2002: SSc, every SSc criterion not met, every exclusion met
    _meas(2002, "2160-0", D(2026, 2, 24), 309.4, None, unit_source="umol/L"),   # unit from unit_source_value
    _meas(2002, "29463-7", D(2026, 2, 24), 70, "kg"),
    _meas(2002, "751-8", D(2026, 2, 24), 0.5, "10*9/L"),
    _meas(2002, "718-7", D(2026, 2, 24), 85, "g/L"),
    _meas(2002, "1742-6", D(2026, 2, 24), 150, "U/L", high=40),
    _meas(2002, "1920-8", D(2026, 2, 24), 30, "U/L", high=40),
    _meas(2002, "1975-2", D(2026, 2, 24), 0.5, "mg/dL"),
    _meas(2002, "6301-6", D(2026, 2, 24), 2.5),
    _meas(2002, "5902-2", D(2026, 2, 24), 25, "s"),
    _meas(2002, "10230-1", D(2026, 2, 12), 30, "%"),
    _meas(2002, "19871-3", D(2026, 2, 12), 25, "%"),
    _meas(2002, "observation:igra", D(2026, 2, 24), value_concept=POS),
    # 2003: SSc, every SSc criterion unknown
    _meas(2003, "718-7", D(2026, 2, 20), 120, "g/L"),
    # 1004: died before the screening date
    _meas(1004, "718-7", D(2026, 1, 10), 100, "g/L"),
    # person_id 9999: no person row
    _meas(9999, "718-7", D(2026, 2, 1), 130, "g/L"),
]

_o = count(1)


def _obs(pid, code, day, value_concept=None, text=None, number=None):
    return (next(_o), pid, LOCAL_ID[code], day, number, text, value_concept)


OBSERVATIONS = [
    _obs(1001, "eular_acr_2019_sle:ana_ge_1_80", D(2026, 2, 20), YES),
    _obs(1001, "eular_acr_2019_sle:joint_involvement", D(2026, 2, 20), YES),
    _obs(1001, "eular_acr_2019_sle:anti_dsdna_or_anti_smith", D(2026, 2, 20), YES),
    _obs(1001, "eular_acr_2019_sle:low_c3_and_low_c4", D(2026, 2, 20), YES),
    *[_obs(1001, f"sledai2k:{d}", D(2026, 2, 24), YES)
      for d in ("arthritis", "proteinuria", "low_complement", "increased_dna_binding")],
    _obs(1001, "organ_involvement:renal", D(2026, 2, 24), YES),
    _obs(1001, "assessment:hydration_assistance", D(2026, 2, 24), NO),
    _obs(1002, "eular_acr_2019_sle:ana_ge_1_80", D(2026, 2, 20), text="No"),
    *[_obs(1002, f"sledai2k:{d}", D(2026, 2, 25), YES if d in ("rash", "mucosal_ulcers") else NO) for d in SLEDAI],
    *[_obs(1002, f"organ_involvement:{o}", D(2026, 2, 25), YES if o == "mucocutaneous" else NO) for o in ORGANS],
    _obs(1002, "assessment:hydration_assistance", D(2026, 2, 25), number=0),
    *[_obs(2001, f"acr_eular_2013_ssc:{i}", D(2026, 2, 23), YES)
      for i in ("skin_thickening_proximal_to_mcp", "raynauds_phenomenon", "anti_topoisomerase_i",
                "interstitial_lung_disease")],
    _obs(2001, "assessment:ssc_subtype", D(2026, 2, 23), text="diffuse"),
    _obs(2001, "assessment:hydration_assistance", D(2026, 2, 23), NO),
    _obs(2001, "assessment:hemodynamically_stable", D(2026, 2, 23), YES),
    _obs(2001, "assessment:ssc_conventional_treatment_ineffective", D(2026, 2, 23), YES),
    _obs(2001, "assessment:ssc_relapse_after_remission", D(2026, 2, 23), NO),
    _obs(2001, "assessment:ssc_progressive", D(2026, 2, 23), NO),
    _obs(2002, "acr_eular_2013_ssc:met", D(2026, 2, 24), NO),
    _obs(2002, "assessment:ssc_subtype", D(2026, 2, 24), text="limited"),
    _obs(2002, "assessment:hydration_assistance", D(2026, 2, 24), NO),
    _obs(2002, "assessment:hemodynamically_stable", D(2026, 2, 24), NO),
    _obs(2002, "assessment:ssc_conventional_treatment_ineffective", D(2026, 2, 24), NO),
    _obs(2002, "assessment:ssc_relapse_after_remission", D(2026, 2, 24), NO),
    _obs(2002, "assessment:ssc_progressive", D(2026, 2, 24), NO),
]

_c = count(1)
# (id, person, condition_concept_id, start, source_concept_id)
CONDITIONS = [
    (next(_c), 1001, CID["55464009"], D(2021, 9, 1), 0),
    (next(_c), 1001, CID["55464009"], D(2024, 5, 10), 0),
    (next(_c), 1001, 0, D(2025, 11, 3), CID["M32.14"]),                  # ICD-10-CM source only
    (next(_c), 1001, CID["444814009"], D(2025, 1, 20), 0),               # read by no criterion
    (next(_c), 1002, CID["55464009"], D(2025, 12, 1), 0),
    (next(_c), 1003, CID["55464009"], D(2019, 4, 1), 0),                 # before the observation period
    (next(_c), 2001, CID["89155008"], D(2023, 4, 1), 0),
    (next(_c), 2001, 0, D(2023, 10, 1), CID["M34.81"]),
    (next(_c), 2002, CID["89155008"], D(2022, 1, 1), 0),
    (next(_c), 2002, CID["433146000"], D(2025, 6, 1), 0),
    (next(_c), 2002, 0, D(2026, 1, 10), CID["A15.0"]),
    (next(_c), 2003, CID["89155008"], D(2024, 2, 1), 0),
    (next(_c), 1004, CID["55464009"], D(2015, 1, 1), 0),
]

_d = count(1)


def _monthly(pid, drug, first, last_start, quantity, days=30, route=ORAL):
    """Monthly dispensings from ``first`` while the start is on or before ``last_start``."""
    out, day = [], first
    while day <= last_start:
        out.append((next(_d), pid, drug, day, day + dt.timedelta(days=days - 1), quantity, days, route))
        day += dt.timedelta(days=days)
    return out


# (id, person, drug_concept_id, start, end, quantity, days_supply, route_concept_id)
DRUG_EXPOSURES = [
    *_monthly(1001, PRED_5MG, D(2025, 6, 1), D(2026, 2, 28), 60),        # 2 x 5 mg a day = 10 mg/day
    *_monthly(1001, MMF_500, D(2025, 3, 15), D(2026, 2, 28), 120),       # 4 x 500 mg a day = 2000 mg/day
    (next(_d), 1002, PRED_5MG, D(2026, 2, 20), D(2026, 3, 21), 30, 30, ORAL),
    *_monthly(1003, PRED_5MG, D(2025, 12, 15), D(2026, 2, 28), 30),
    (next(_d), 2001, CYC_500, D(2025, 1, 6), D(2025, 7, 31), 6, None, IV),
    *_monthly(2001, MMF_500, D(2025, 1, 6), D(2026, 2, 28), 120),
    (next(_d), 2002, FILGRASTIM_SYRINGE, D(2026, 2, 26), D(2026, 2, 26), 0.5, 1, SC),
]

# (id, person, procedure_concept_id, date)
PROCEDURES = [(1, 1002, CID["116863004"], D(2026, 2, 25))]

CDM_SOURCE = [("pyasp-screen OMOP test fixture", "pyasp-fixture", "pyasp-screen", D(2026, 3, 1),
               D(2026, 3, 1), "v5.4", "fixture")]


def tables() -> dict[str, tuple[list[str], list[tuple]]]:
    """table -> (columns, rows) of the whole fixture."""
    return {
        "concept": (["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
                     "standard_concept", "concept_code"], CONCEPTS),
        "concept_ancestor": (["ancestor_concept_id", "descendant_concept_id", "min_levels_of_separation",
                              "max_levels_of_separation"], ANCESTORS),
        "drug_strength": (["drug_concept_id", "ingredient_concept_id", "amount_value", "amount_unit_concept_id",
                           "numerator_value", "numerator_unit_concept_id", "denominator_value",
                           "denominator_unit_concept_id"], STRENGTHS),
        "person": (["person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth"], PERSONS),
        "observation_period": (["person_id", "observation_period_start_date", "observation_period_end_date"],
                               PERIODS),
        "death": (["person_id", "death_date"], DEATHS),
        "measurement": (["measurement_id", "person_id", "measurement_concept_id", "measurement_date",
                         "operator_concept_id", "value_as_number", "value_as_concept_id", "unit_concept_id",
                         "range_low", "range_high", "unit_source_value"], MEASUREMENTS),
        "observation": (["observation_id", "person_id", "observation_concept_id", "observation_date",
                         "value_as_number", "value_as_string", "value_as_concept_id"], OBSERVATIONS),
        "condition_occurrence": (["condition_occurrence_id", "person_id", "condition_concept_id",
                                  "condition_start_date", "condition_source_concept_id"], CONDITIONS),
        "drug_exposure": (["drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date",
                           "drug_exposure_end_date", "quantity", "days_supply", "route_concept_id"], DRUG_EXPOSURES),
        "procedure_occurrence": (["procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date"],
                                 PROCEDURES),
        "cdm_source": (["cdm_source_name", "cdm_source_abbreviation", "cdm_holder", "source_release_date",
                        "cdm_release_date", "cdm_version", "vocabulary_version"], CDM_SOURCE),
    }


def build(engine, schema: str | None = None) -> None:
    """Create the CDM 5.4 tables (pyasp_screen.inputs.omop.schema) in ``schema`` of a
    SQLAlchemy engine and load the fixture into them."""
    import sqlalchemy as sa

    from pyasp_screen.inputs.omop.schema import metadata

    with engine.begin() as c:
        if schema:
            c.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    md = metadata(schema, schema)
    prefix = f'"{schema}".' if schema else ""
    with engine.begin() as c:
        for t in md.sorted_tables:
            c.execute(sa.text(f"DROP TABLE IF EXISTS {prefix}{t.name}"))
    md.create_all(engine, checkfirst=False)
    with engine.begin() as c:
        for name, (cols, rows) in tables().items():
            table = md.tables[f"{schema}.{name}" if schema else name]
            c.execute(table.insert(), [dict(zip(cols, r)) for r in rows])


if __name__ == "__main__":  # python tests/omop_fixture.py duckdb:///fixture.duckdb [schema]
    import sys

    import sqlalchemy as sa

    eng = sa.create_engine(sys.argv[1].replace("postgresql://", "postgresql+psycopg://", 1))
    build(eng, sys.argv[2] if len(sys.argv) > 2 else None)
    print(f"loaded the OMOP fixture into {sys.argv[1]}")
