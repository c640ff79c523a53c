"""The finding vocabulary: the names records, FHIR mapping and knowledge bases agree on.

A record names an observation, a diagnosis or a drug either by a vocabulary name
(``anc``, ``ssc_ild``, ``mycophenolate_mofetil``) or by a standard code (LOINC, SNOMED CT,
ICD-10, RxNorm) that this module maps to a vocabulary name. Knowledge bases only ever see
vocabulary names (see docs/vocabulary.md, generated from this module).

Each observation has a canonical UCUM unit: values are converted to it (pyasp_screen.units)
before the knowledge base reads them, and a plausible range: values outside it are rejected
as impossible rather than screened.

Sources: LOINC 2.7x (loinc.org), SNOMED CT International, ICD-10 (WHO 2019),
RxNorm ingredient concepts (NLM). Only codes listed here are mapped; anything else is
reported as unmapped, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction


@dataclass(frozen=True)
class ObservationKind:
    """One observable quantity or qualitative test.

    name: vocabulary name; unit: canonical UCUM unit ("" for qualitative results);
    plausible: closed interval (low, high) in the canonical unit, values outside are impossible;
    loinc: LOINC codes mapped to it; uln: True if criteria read it as a multiple of the upper
    limit of normal; qualitative: True if its value is positive/negative.
    """

    name: str
    label: str
    unit: str
    plausible: tuple[Fraction, Fraction] | None = None
    loinc: tuple[str, ...] = ()
    uln: bool = False
    qualitative: bool = False
    # analyte-specific conversions UCUM cannot make (molar mass conventions, IU = U)
    analyte_units: dict[str, Fraction] = field(default_factory=dict)


F = Fraction
ENZYME_IU = {"IU/L": F(1), "[IU]/L": F(1)}

OBSERVATIONS: dict[str, ObservationKind] = {
    o.name: o
    for o in [
        ObservationKind("anc", "ANC", "10*9/L", (F(0), F(100)),
                        ("751-8", "753-4", "26499-4")),
        ObservationKind("hb", "Hb", "g/L", (F(10), F(250)), ("718-7",)),
        # NCT07193667 (bone marrow: "White blood cell count >= 3x10^9/L"). 6690-2 is the
        # automated count, 26464-8 the method-less leukocyte count; the upper bound leaves room
        # for hyperleukocytosis. K/uL (thousands per microlitre, not UCUM but common in lab
        # feeds) is 10*3/uL = 10*9/L.
        ObservationKind("wbc", "WBC (leukocyte count)", "10*9/L", (F(0), F(1000)),
                        ("6690-2", "26464-8"), analyte_units={"K/uL": F(1)}),
        # 1 mg/dL creatinine = 88.4 umol/L (molar mass 113.12 g/mol), the clinical convention.
        ObservationKind("creatinine", "serum creatinine", "mg/dL", (F("0.05"), F(30)),
                        ("2160-0", "38483-4", "14682-9"),
                        analyte_units={"umol/L": F(10, 884), "mmol/L": F(10000, 884)}),
        # Enzyme activity: the international unit (IU) is the enzyme unit U (1 umol/min), IFCC.
        ObservationKind("alt", "ALT", "U/L", (F(0), F(20000)), ("1742-6", "1743-4"), uln=True,
                        analyte_units=ENZYME_IU),
        ObservationKind("ast", "AST", "U/L", (F(0), F(20000)), ("1920-8",), uln=True,
                        analyte_units=ENZYME_IU),
        # 1 mg/dL bilirubin = 17.1 umol/L (molar mass 584.66 g/mol), the clinical convention.
        ObservationKind("bilirubin_total", "total bilirubin", "mg/dL", (F(0), F(60)),
                        ("1975-2", "14631-6"), uln=True,
                        analyte_units={"umol/L": F(10, 171)}),
        ObservationKind("inr", "INR", "1", (F("0.5"), F(20)), ("6301-6", "34714-6"), uln=True),
        ObservationKind("aptt", "APTT", "s", (F(10), F(250)), ("14979-9", "3173-2"), uln=True),
        ObservationKind("pt", "PT", "s", (F(5), F(250)), ("5902-2",), uln=True),
        # 59408-5 is pulse oximetry; 2708-6 (arterial blood gas) is not what SLE-IN-7e asks for.
        ObservationKind("spo2", "SpO2", "%", (F(0), F(100)), ("59408-5",)),
        ObservationKind("lvef", "LVEF", "%", (F(0), F(100)), ("10230-1", "18043-0")),
        ObservationKind("fvc_pct_predicted", "FVC % predicted", "%", (F(0), F(250)),
                        ("19876-2",)),
        ObservationKind("dlco_hb_corrected_pct_predicted", "DLCO (Hb-corrected) % predicted",
                        "%", (F(0), F(250)), ()),
        ObservationKind("weight", "body weight", "kg", (F(1), F(500)), ("29463-7", "3141-9")),
        ObservationKind("height", "body height", "cm", (F(30), F(250)), ("8302-2", "8306-3")),
        ObservationKind("ana", "ANA", "", None, ("8061-4",),
                        qualitative=True),
        ObservationKind("anti_dsdna", "anti-dsDNA", "", None, ("5130-0",),
                        qualitative=True),
        ObservationKind("anti_smith", "anti-Smith", "", None, (), qualitative=True),
        ObservationKind("igra", "IGRA (QuantiFERON / T-SPOT)", "", None,
                        (), qualitative=True),
        # NCT07193667: "positive expression of CD19 in peripheral blood B cells as determined by
        # flow cytometry". No LOINC code is mapped: the CD19 LOINC codes are counts or
        # percentages of CD19+ cells, not a positive/negative expression result.
        ObservationKind("cd19_b_cells", "CD19 expression on peripheral blood B cells (flow cytometry)",
                        "", None, (), qualitative=True),
        # Choriogonadotropin (hCG) presence in urine / in serum or plasma.
        ObservationKind("pregnancy_test", "pregnancy test (hCG)", "", None, ("2106-3", "2118-8"),
                        qualitative=True),
    ]
}

def display_unit(unit: str) -> str:
    """A UCUM code as people write it: 10*9/L is x10^9/L, the unity 1 is nothing."""
    return {"10*9/L": "x10^9/L", "1": "", "{xULN}": "x ULN"}.get(unit, unit)


LOINC_TO_OBSERVATION: dict[str, str] = {
    code: o.name for o in OBSERVATIONS.values() for code in o.loinc
}

QUALITATIVE_VALUES = {"positive": "positive", "pos": "positive", "detected": "positive",
                      "negative": "negative", "neg": "negative", "not detected": "negative",
                      "indeterminate": "indeterminate", "equivocal": "indeterminate",
                      "borderline": "indeterminate"}

# Diagnoses: vocabulary name -> (label, SNOMED CT codes, ICD-10 code prefixes).
DIAGNOSES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "sle": ("systemic lupus erythematosus", ("55464009",), ("M32",)),
    "ssc": ("systemic sclerosis", ("89155008",), ("M34",)),
    "ssc_ild": ("interstitial lung disease caused by systemic sclerosis", (), ("M34.81",)),
    "scleroderma_renal_crisis": ("scleroderma renal crisis", (), ()),
    "severe_kidney_disease": ("severe chronic kidney disease (stage 4-5)",
                              ("431857002", "433146000", "46177005"),
                              ("N18.4", "N18.5", "N18.6")),
    "active_tuberculosis": ("active tuberculosis", ("56717001",), ("A15", "A16", "A17", "A18", "A19")),
    # NCT07193667 liver-function exceptions. Inflammatory myopathy: dermatomyositis
    # (396230008) and polymyositis (31384009); ICD-10 M33 dermatopolymyositis and G72.4
    # inflammatory myopathy not elsewhere classified (G72.41 inclusion body myositis).
    "inflammatory_myopathy": ("idiopathic inflammatory myopathy",
                              ("396230008", "31384009"), ("M33", "G72.4")),
    "gilbert_syndrome": ("Gilbert syndrome", (), ("E80.4",)),
}

SNOMED_TO_DIAGNOSIS = {c: name for name, (_, sct, _) in DIAGNOSES.items() for c in sct}


def diagnosis_from_icd10(code: str) -> str | None:
    """Map an ICD-10 code to a vocabulary diagnosis by longest listed prefix, or None."""
    best = None
    for name, (_, _, prefixes) in DIAGNOSES.items():
        for prefix in prefixes:
            if code.upper().startswith(prefix) and (best is None or len(prefix) > best[1]):
                best = (name, len(prefix))
    return best[0] if best else None


# Drugs: vocabulary name -> (RxNorm ingredient codes, lowercase name fragments for free text).
DRUGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "prednisone": (("8640",), ("prednisone",)),
    "prednisolone": (("8638",), ("prednisolone",)),
    "methylprednisolone": (("6902",), ("methylprednisolone",)),
    "hydrocortisone": (("5492",), ("hydrocortisone",)),
    "cortisone": (("2878",), ("cortisone acetate",)),
    "dexamethasone": (("3264",), ("dexamethasone",)),
    "betamethasone": (("1514",), ("betamethasone",)),
    "triamcinolone": (("10759",), ("triamcinolone",)),
    "deflazacort": ((), ("deflazacort",)),
    "cyclophosphamide": (("3002",), ("cyclophosphamide",)),
    "mycophenolate_mofetil": (("68149",), ("mycophenolate mofetil", "mycophenolate")),
    "tacrolimus": (("42316",), ("tacrolimus",)),
    "methotrexate": (("6851",), ("methotrexate",)),
    "cyclosporine": (("3008",), ("cyclosporine", "ciclosporin")),
    "leflunomide": (("27169",), ("leflunomide",)),
    "azathioprine": (("1256",), ("azathioprine",)),
    "hydroxychloroquine": (("5521",), ("hydroxychloroquine",)),
    "chloroquine": (("2393",), ("chloroquine",)),
    "belimumab": ((), ("belimumab",)),
    "rituximab": (("121191",), ("rituximab", "rituxan")),
    "tocilizumab": (("612865",), ("tocilizumab", "actemra")),
    "telitacicept": ((), ("telitacicept", "tabitacicept")),
    "anifrolumab": ((), ("anifrolumab",)),
}

GLUCOCORTICOIDS = frozenset({"prednisone", "prednisolone", "methylprednisolone",
                             "hydrocortisone", "cortisone", "dexamethasone", "betamethasone",
                             "triamcinolone", "deflazacort"})

RXNORM_TO_DRUG = {c: name for name, (codes, _) in DRUGS.items() for c in codes}


def drug_from_text(text: str) -> str | None:
    """Map free text ("Prednisone 5 MG Oral Tablet") to a vocabulary drug, or None.

    The longest matching name fragment wins, so "methylprednisolone" is not read as
    "prednisolone".
    """
    low = text.lower()
    best = None
    for name, (_, fragments) in DRUGS.items():
        for frag in fragments:
            if frag in low and (best is None or len(frag) > best[1]):
                best = (name, len(frag))
    return best[0] if best else None


# Haematopoietic growth factors (SLE-IN-7b, SSC-IN-4b "growth factors").
GROWTH_FACTORS = frozenset({"filgrastim", "pegfilgrastim", "lenograstim", "lipegfilgrastim",
                            "sargramostim", "molgramostim", "epoetin_alfa", "epoetin_beta",
                            "darbepoetin_alfa", "methoxy_polyethylene_glycol_epoetin_beta",
                            "romiplostim", "eltrombopag", "avatrombopag", "g_csf", "gm_csf",
                            "erythropoietin"})

# Assessments: vocabulary name -> (allowed values, meaning).
ASSESSMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "hydration_assistance": (("yes", "no"),
                             "creatinine clearance measured with hydration assistance (IV fluids)"),
    "hemodynamically_stable": (("yes", "no"), "good hemodynamic stability at screening"),
    "ssc_subtype": (("diffuse", "limited"), "cutaneous subtype of systemic sclerosis"),
    "ssc_progressive": (("yes", "no"), "clinician assessment: progressive SSc"),
    "ssc_relapse_after_remission": (("yes", "no"), "SSc recurrence after remission"),
    "ssc_conventional_treatment_ineffective": (
        ("yes", "no"), "clinician assessment: conventional treatment ineffective"),
    # CT1190B amendment 1 (general inclusion criteria of NCT06822881)
    "informed_consent": (("yes", "no"), "informed consent form signed voluntarily"),
    "systemic_active_infection": (("yes", "no"), "systemic active infection"),
    "childbearing_potential": (("yes", "no"), "child-bearing potential"),
    "contraception_agreed": (("yes", "no"), "agrees to the contraceptive requirements"),
    # NCT07193667
    "partner_childbearing_potential": (("yes", "no"),
                                       "a male participant has a partner of child-bearing potential"),
    "crcl_decline_disease_induced": (
        ("yes", "no"),
        "clinician assessment: the decline in creatinine clearance is caused by the autoimmune disease"),
}

# Assessments that record dated occurrences rather than a state: every entry is kept (for a
# state, only the latest assessment is read).
EVENT_ASSESSMENTS = frozenset({"systemic_active_infection"})

# Closed-world categories a record may declare complete.
CATEGORIES = ("diagnoses", "medications", "transfusions", "growth_factors",
              "sledai2k_descriptors", "eular_acr_2019_sle_items", "acr_eular_2013_ssc_items",
              "organ_involvement")

# Organ systems for "active organ involvement" (SLE-IN-6).
ORGANS = ("renal", "neuropsychiatric", "hematologic", "musculoskeletal", "serosal",
          "cardiopulmonary", "vascular", "gastrointestinal", "ophthalmic", "mucocutaneous")

CLASSIFICATION_SCHEMES = {"eular_acr_2019_sle": "eular_acr_2019_sle_items",
                          "acr_eular_2013_ssc": "acr_eular_2013_ssc_items"}
