"""FHIR R4 Questionnaires for what EHRs do not code (``pyasp-screen questionnaire``,
``explain --questionnaire``).

:func:`kb_questionnaire` lists every finding a knowledge base reads that has no standard code
(the items of pyasp_screen/inputs/questionnaire.py, which reads the answers back):
whether each list the criteria close is complete, clinicians' assessments, SLEDAI-2K
descriptors and total, classification-criteria assertions and items, organ involvement, tests
with no LOINC code in the vocabulary, diagnoses with no code. :func:`missing_data_questionnaire`
holds only what could change one patient's verdict: the missing data of the explanation
engine (docs/explanations.md), coded findings included (with their LOINC / SNOMED CT codes on
the item), so that a coordinator fills in exactly what matters.

Shapes follow FHIR R4 Questionnaire (https://hl7.org/fhir/R4/questionnaire.html): ``group``
items per kind, ``boolean`` / ``choice`` (answerOption codings) / ``date`` / ``integer`` /
``quantity`` (unit extension questionnaire-unit) items; the result is a plain JSON-ready dict,
valid for fhir.resources (tests/test_questionnaire.py validates it).
"""

from __future__ import annotations

from typing import Any

from pyasp_screen.findings.derive import Findings
from pyasp_screen.inputs.questionnaire import CANONICAL, NULL_FLAVOR, VALUES, YES_NO
from pyasp_screen.knowledge.kb import KnowledgeBase
from pyasp_screen.knowledge.vocabulary import Vocabulary, display_unit

UCUM = "http://unitsofmeasure.org"
UNIT_EXTENSION = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

TRISTATE = [{"valueCoding": {"system": YES_NO, "code": "Y", "display": "Yes"}},
            {"valueCoding": {"system": YES_NO, "code": "N", "display": "No"}},
            {"valueCoding": {"system": NULL_FLAVOR, "code": "UNK", "display": "Unknown"}}]

_CATEGORY_TEXT = {
    "diagnoses": "The diagnoses recorded are the patient's complete problem list",
    "medications": "The medications recorded are the patient's complete medication history",
    "transfusions": "Every blood transfusion of the patient is recorded",
    "growth_factors": "Every haematopoietic growth factor given to the patient is recorded",
    "sledai2k_descriptors": "Every SLEDAI-2K descriptor present is answered (unanswered ones are absent)",
    "eular_acr_2019_sle_items": "Every EULAR/ACR 2019 item present is answered (unanswered ones are absent)",
    "acr_eular_2013_ssc_items": "Every ACR/EULAR 2013 item present is answered (unanswered ones are absent)",
    "organ_involvement": "Every organ system involved is answered (unanswered ones are not involved)",
}


# ---------------------------------------------------------------------------------------------
# what a knowledge base reads
# ---------------------------------------------------------------------------------------------

def reads(kb: KnowledgeBase) -> dict[str, list[str]]:
    """What ``kb`` reads, by kind, from the compiled knowledge base (``kb.reads``: the facts
    its criteria read): categories it closes, assessments, schemes with their items,
    classification assertions, observations (names), diagnoses, events."""
    vocab = kb.vocabulary

    def names(pred: str, every) -> list[str]:
        got = kb.reads.get(pred, frozenset())
        return list(every) if "*" in got else [n for n in every if n in got]

    out: dict[str, list[str]] = {}
    out["assessments"] = names("assessment", vocab.assessments)
    out["complete"] = names("complete", vocab.categories)
    for cat in names("item", kb.scheme_items):
        out[f"scheme:{cat}"] = sorted(kb.scheme_items[cat])
    out["classification"] = names("classification", vocab.classification_schemes)
    obs = []
    for n in names("quantity", sorted(set(kb.reads.get("quantity", ())) - {"*"})):
        base = n.removesuffix("_x_uln")
        if base in vocab.observations:
            obs.append(base)
        elif n == "crcl":
            obs += ["creatinine", "weight", "height"]
        elif n == "fvc_decline_12mo":
            obs.append("fvc_pct_predicted")
    obs += names("qualitative", vocab.observations)
    out["observations"] = sorted(set(obs), key=list(vocab.observations).index)
    out["diagnoses"] = names("diagnosis", sorted(vocab.diagnoses))
    out["events"] = names("event", ("transfusion", "growth_factor"))
    out["sledai2k_total"] = ["total"] if "sledai2k_total" in kb.reads else []
    return out


def _coded_observation(vocab: Vocabulary, name: str) -> bool:
    return bool(vocab.observations[name].loinc)


def _coded_diagnosis(vocab: Vocabulary, name: str) -> bool:
    d = vocab.diagnoses[name]
    return bool(d.snomed or d.icd10)


# ---------------------------------------------------------------------------------------------
# items
# ---------------------------------------------------------------------------------------------

def _choice(link: str, text: str, options: list[dict] | None = None, **extra) -> dict:
    return {"linkId": link, "text": text, "type": "choice", "answerOption": options or TRISTATE, **extra}


def _value_options(values: tuple[str, ...]) -> list[dict]:
    out = []
    for v in values:
        if v in ("yes", "no"):
            out.append({"valueCoding": {"system": YES_NO, "code": v[0].upper(), "display": v.capitalize()}})
        else:
            out.append({"valueCoding": {"system": VALUES, "code": v, "display": v}})
    return out


def _observation_items(vocab: Vocabulary, name: str) -> list[dict]:
    kind = vocab.observations[name]
    code = [{"system": LOINC, "code": c} for c in kind.loinc[:1]]
    extra: dict[str, Any] = {"code": code} if code else {}
    if kind.qualitative:
        options = [{"valueCoding": {"system": VALUES, "code": v, "display": v}}
                   for v in ("positive", "negative", "indeterminate")]
        first = _choice(f"observation.{name}", kind.label, options, **extra)
    else:
        first = {"linkId": f"observation.{name}", "text": f"{kind.label} ({display_unit(kind.unit) or kind.unit})",
                 "type": "quantity", **extra,
                 "extension": [{"url": UNIT_EXTENSION,
                                "valueCoding": {"system": UCUM, "code": kind.unit}}]}
    return [first, {"linkId": f"observation.{name}.date", "text": f"{kind.label}: date of the result",
                    "type": "date"}]


def _diagnosis_items(vocab: Vocabulary, name: str, onset: bool = True) -> list[dict]:
    d = vocab.diagnoses[name]
    label, snomed, icd = d.label, d.snomed, d.icd10
    code = [{"system": SNOMED, "code": c} for c in snomed[:1]] + [{"system": ICD10CM, "code": c} for c in icd[:1]]
    items = [_choice(f"diagnosis.{name}", f"{label}: present?", **({"code": code} if code else {}))]
    if onset:
        items.append({"linkId": f"diagnosis.{name}.onset", "text": f"{label}: date of onset (diagnosis)",
                      "type": "date"})
    return items


def _group(link: str, text: str, items: list[dict]) -> dict | None:
    return {"linkId": link, "text": text, "type": "group", "item": items} if items else None


def _catalog(kb: KnowledgeBase, coded: bool) -> list[dict]:
    """Every group of items for what ``kb`` reads (with coded findings when ``coded``)."""
    r = reads(kb)
    vocab = kb.vocabulary
    groups: list[dict | None] = []
    groups.append(_group("complete", "Lists known to be complete (closed world: what is not listed is absent)",
                         [{"linkId": f"complete.{c}", "text": _CATEGORY_TEXT.get(c, c), "type": "boolean"}
                          for c in r["complete"]]))
    groups.append(_group("assessment", "Clinicians' assessments",
                         [_choice(f"assessment.{a}", vocab.assessments[a].label, _value_options(vocab.assessments[a].values))
                          for a in r["assessments"]]))
    descriptors = r.get("scheme:sledai2k_descriptors", [])
    if descriptors or r["sledai2k_total"]:
        items = [{"linkId": "sledai2k.date", "text": "SLEDAI-2K: date of the assessment", "type": "date"},
                 {"linkId": "sledai2k.total", "text": "SLEDAI-2K total score (when the descriptors are not given)",
                  "type": "integer"}]
        items += [_choice(f"sledai2k.{d}", f"SLEDAI-2K: {vocab.item_label(d)}") for d in descriptors]
        groups.append(_group("sledai2k", "SLEDAI-2K (Gladman et al., J Rheumatol 2002): descriptors present in the"
                             " last 10 days", items))
    for scheme in r["classification"]:
        cat = vocab.classification_schemes[scheme]
        items = [_choice(f"classification.{scheme}.met", f"{vocab.classification_labels.get(scheme, scheme)} classification criteria met "
                         "(clinician's assertion, used when the items are not given)"),
                 {"linkId": f"classification.{scheme}.date", "text": "date of the classification", "type": "date"}]
        items += [_choice(f"classification.{scheme}.item.{i}", f"{vocab.scheme_labels.get(cat, cat)}: {vocab.item_label(i)}")
                  for i in r.get(f"scheme:{cat}", [])]
        groups.append(_group(f"classification.{scheme}",
                             f"{vocab.classification_labels.get(scheme, scheme)} classification criteria", items))
    organs = r.get("scheme:organ_involvement", [])
    groups.append(_group("organ", "Active organ involvement at screening, per organ system",
                         [_choice(f"organ.{o}", f"{o} involvement") for o in organs]))
    obs = [o for o in r["observations"] if coded or not _coded_observation(vocab, o)]
    groups.append(_group("observation", "Results no EHR code is read for" if not coded else "Results",
                         [i for o in obs for i in _observation_items(vocab, o)]))
    dx = [d for d in r["diagnoses"] if coded or not _coded_diagnosis(vocab, d)]
    groups.append(_group("diagnosis", "Diagnoses with no code read" if not coded else "Diagnoses",
                         [i for d in dx for i in _diagnosis_items(vocab, d)]))
    if coded:
        groups.append(_group("patient", "Patient", [
            {"linkId": "patient.birth_date", "text": "Date of birth", "type": "date"},
            _choice("patient.sex", "Sex", [{"valueCoding": {"system": "http://hl7.org/fhir/administrative-gender",
                                                            "code": s, "display": s.capitalize()}}
                                           for s in ("female", "male")])]))
        groups.append(_group("event", "Events", [
            {"linkId": f"event.{e}.date", "text": f"date of the latest {e.replace('_', ' ')}", "type": "date"}
            for e in r["events"]]))
    return [g for g in groups if g is not None]


def _questionnaire(kb: KnowledgeBase, groups: list[dict], suffix: str, title: str, description: str) -> dict:
    return {
        "resourceType": "Questionnaire",
        "id": f"pyasp-screen-{kb.name}{suffix}".replace("_", "-")[:64],
        "url": f"{CANONICAL}/{kb.name}",
        "version": str(kb.version),
        "name": "".join(w.capitalize() for w in f"pyasp screen {kb.name}".replace("-", " ").split()),
        "title": title,
        "status": "active",
        "subjectType": ["Patient"],
        "description": description,
        "item": groups,
    }


def kb_questionnaire(kb: KnowledgeBase) -> dict:
    """A FHIR R4 Questionnaire (JSON dict) of everything ``kb`` reads that has no standard code."""
    return _questionnaire(
        kb, _catalog(kb, coded=False), "", f"{kb.title}: what EHRs do not code",
        f"Findings the {kb.name} knowledge base reads that no standard code carries. Answer what is known;"
        " leave the rest unanswered (unknown, never false). A QuestionnaireResponse to this Questionnaire, "
        "with the patient's FHIR resources, is read by pyasp-screen (docs/fhir.md).")


# ---------------------------------------------------------------------------------------------
# missing data of one patient
# ---------------------------------------------------------------------------------------------

def _links_of(vocab: Vocabulary, slot: str) -> list[str]:
    """The questionnaire linkIds that answer one explanation slot."""
    kind, _, rest = slot.partition(":")
    if kind == "complete":
        return [f"complete.{rest}"]
    if kind == "assessment":
        return [f"assessment.{rest}"]
    if kind == "classification":
        return [f"classification.{rest}.met", f"classification.{rest}.date"]
    if kind == "item":
        cat, _, item = rest.partition(":")
        if cat == "sledai2k_descriptors":
            return [f"sledai2k.{item}", "sledai2k.date"]
        if cat == "organ_involvement":
            return [f"organ.{item}"]
        scheme = next((s for s, c in vocab.classification_schemes.items() if c == cat), cat)
        return [f"classification.{scheme}.item.{item}", f"classification.{scheme}.date"]
    if kind == "diagnosis":
        return [f"diagnosis.{rest}"]
    if kind == "duration":
        return [f"diagnosis.{rest}", f"diagnosis.{rest}.onset"]
    if kind == "event":
        return [f"event.{rest}.date"]
    if slot == "sledai2k_total":
        return ["sledai2k.total", "sledai2k.date"]
    if slot == "age":
        return ["patient.birth_date"]
    if slot == "sex":
        return ["patient.sex"]
    if slot == "crcl":
        return [f"observation.{o}{s}" for o in ("creatinine", "weight", "height") for s in ("", ".date")]
    if slot == "prednisone_equivalent":
        return ["complete.medications"]
    if slot == "fvc_decline_12mo":
        return ["observation.fvc_pct_predicted", "observation.fvc_pct_predicted.date"]
    base = slot.removesuffix("_x_uln")
    if base in vocab.observations:
        return [f"observation.{base}", f"observation.{base}.date"]
    return []


def missing_data_questionnaire(kb: KnowledgeBase, findings: Findings, max_results: int = 10) -> dict:
    """A Questionnaire holding only the missing data that could settle this patient's
    undetermined verdict (overall, then per population), in the order the explanation engine
    finds it; empty (no item) when the verdict is already settled."""
    from pyasp_screen.explain.explainer import explain

    _, scopes = explain(kb, findings, max_results=max_results)
    wanted: list[str] = []
    verdicts = []
    for scope in scopes:
        verdicts.append(f"{scope.scope} {scope.verdict}")
        for reasons in scope.missing.values():
            for r in reasons:
                for slot in r.slots:
                    for link in _links_of(kb.vocabulary, slot):
                        if link not in wanted:
                            wanted.append(link)
    groups = []
    for g in _catalog(kb, coded=True):
        items = [i for i in g["item"] if i["linkId"] in wanted]
        if items:
            groups.append({**g, "item": sorted(items, key=lambda i: wanted.index(i["linkId"]))})
    groups.sort(key=lambda g: min(wanted.index(i["linkId"]) for i in g["item"]))
    pid = findings.patient
    return _questionnaire(
        kb, groups, "-missing", f"{kb.title}: what could decide patient {pid}",
        f"Only the missing data that could change the verdict of patient {pid} ({'; '.join(verdicts)}):"
        " each answer, or a set of them, can settle an undetermined verdict (pyasp-screen explain)."
        + ("" if groups else " The verdict is settled: nothing to ask."))
