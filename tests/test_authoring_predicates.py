"""The library predicates for what protocols say (issue 12.4), against hand-computed cases.

- change/5 (kb/lib/core.lp): "FVC decline >= 10% within 6 months", "mRSS increase >= 3";
- daily_dose/3: "prednisone <= 15 mg/day", and per kg of the current body weight;
- days_before/4 and days_around/4 (kb/lib/dates.lp): "within N days of" an anchor date.

Each is checked on and beside its boundary, and the knowledge base using them all passes
`check`, exactness included (the brute-force completion oracle).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pyasp_screen.authoring.cases import new_kb
from pyasp_screen.authoring.check import check_kb_dir
from pyasp_screen.engine.screening import screen_records
from pyasp_screen.inputs.files import load_file
from pyasp_screen.inputs.record import RecordError
from pyasp_screen.knowledge.kb import KBError, load_kb

SENTENCES = {
    "FVC-1": "FVC decline of at least 10 percentage points within 6 months.",
    "FVC-2": "Relative FVC decline of at least 10% within 6 months.",
    "SKIN-1": "mRSS increase of at least 3 within 12 months.",
    "GC-1": "Prednisone at most 15 mg/day.",
    "GC-2": "Glucocorticoids at most 1 mg/kg/day prednisone equivalent.",
    "CSF-1": "No growth factor within 14 days before the neutrophil count.",
    "RTX-1": "Rituximab within 180 days before screening.",
    "ECHO-1": "ANC measured within 3 days of the echocardiography.",
}

RULES = """
window(fvc_pct_predicted, long_window_days).
window(skin_score, long_window_days).
window(lvef, long_window_days).

change(fvc_drop, fvc_pct_predicted, decrease, absolute, six_months_days).
change(fvc_drop_rel, fvc_pct_predicted, decrease, relative, six_months_days).
change(skin_rise, skin_score, increase, absolute, year_days).
daily_dose(prednisone_mg, prednisone, mg).
daily_dose(gc_per_kg, prednisone_equivalent, mg_per_kg).

days_before(csf_before_anc, event(growth_factor), result(anc), csf_days).
days_before(rituximab_recent, course(rituximab), screening, rituximab_days).
days_around(anc_near_echo, result(anc), result(lvef), echo_days).

criterion("FVC-1", main, inclusion).
registry_sentence("FVC-1", "{FVC-1}").
check("FVC-1", fvc_drop, ge, fvc_drop_min).

criterion("FVC-2", main, inclusion).
registry_sentence("FVC-2", "{FVC-2}").
check("FVC-2", fvc_drop_rel, ge, fvc_drop_rel_min).

criterion("SKIN-1", main, inclusion).
registry_sentence("SKIN-1", "{SKIN-1}").
check("SKIN-1", skin_rise, ge, skin_rise_min).

criterion("GC-1", main, inclusion).
registry_sentence("GC-1", "{GC-1}").
check("GC-1", prednisone_mg, le, prednisone_max).

criterion("GC-2", main, exclusion).
registry_sentence("GC-2", "{GC-2}").
check("GC-2", gc_per_kg, gt, gc_per_kg_max).

criterion("CSF-1", main, inclusion).
registry_sentence("CSF-1", "{CSF-1}").
holds(P,"CSF-1") :- not_in_days(P,csf_before_anc).
fails(P,"CSF-1") :- in_days(P,csf_before_anc).

criterion("RTX-1", main, exclusion).
registry_sentence("RTX-1", "{RTX-1}").
holds(P,"RTX-1") :- in_days(P,rituximab_recent).
fails(P,"RTX-1") :- not_in_days(P,rituximab_recent).

criterion("ECHO-1", main, inclusion).
registry_sentence("ECHO-1", "{ECHO-1}").
holds(P,"ECHO-1") :- in_days(P,anc_near_echo).
"""

PARAMETERS = """
  long_window_days: {kind: integer, default: 400, unit: d, range: [0, 3650], doc: look-back}
  six_months_days: {kind: integer, default: 183, unit: d, range: [1, 3650], doc: six months}
  year_days: {kind: integer, default: 365, unit: d, range: [1, 3650], doc: a year}
  fvc_drop_min: {kind: quantity, default: 10, unit: "%", range: [0, 100], doc: points}
  fvc_drop_rel_min: {kind: quantity, default: 10, unit: "%", range: [0, 100], doc: percent}
  skin_rise_min: {kind: quantity, default: 3, unit: "{score}", range: [0, 51], doc: points}
  prednisone_max: {kind: quantity, default: 15, unit: mg/d, range: [0, 1000], doc: mg/day}
  gc_per_kg_max: {kind: quantity, default: 1, unit: mg/kg/d, range: [0, 100], doc: mg/kg/day}
  csf_days: {kind: integer, default: 14, unit: d, range: [0, 365], doc: days}
  rituximab_days: {kind: integer, default: 180, unit: d, range: [0, 3650], doc: days}
  echo_days: {kind: integer, default: 3, unit: d, range: [0, 365], doc: days}
"""


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("predicates") / "trial"
    new_kb(path)
    (path / "vocabulary.yaml").write_text('observations:\n  skin_score:\n    label: modified Rodnan skin score\n'
                                          '    unit: "{score}"\n    plausible: [0, 51]\n')
    rules = RULES
    for cid, sentence in SENTENCES.items():
        rules = rules.replace("{" + cid + "}", sentence)
    (path / "criteria.lp").write_text((path / "criteria.lp").read_text() + rules)
    (path / "protocol.txt").write_text((path / "protocol.txt").read_text() + "\n" + "\n".join(SENTENCES.values()))
    manifest = path / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("programs: [lib/core.lp, criteria.lp]",
                                                     "programs: [lib/core.lp, lib/dates.lp, criteria.lp]")
                        + PARAMETERS)
    return path


@pytest.fixture(scope="module")
def kb(kb_dir):
    return load_kb(kb_dir)


def statuses(kb, tmp_path, body: str, name="p.yaml") -> dict[str, str]:
    path = tmp_path / name
    path.write_text("id: P1\nscreening_date: 2026-03-01\nsex: female\nbirth_date: 1970-01-01\n"
                    + textwrap.dedent(body))
    out = list(screen_records(load_file(path, vocabulary=kb.vocabulary), kb))[0]
    assert not isinstance(out, RecordError), out
    return out.result.statuses


def fvc(*pairs) -> str:
    return "observations:\n" + "".join(f"  - {{code: fvc_pct_predicted, value: {v}, unit: '%', date: {d}}}\n"
                                       for d, v in pairs)


def test_the_knowledge_base_using_every_predicate_passes_check_and_exactness(kb_dir):
    assert check_kb_dir(kb_dir) == []


# -- change/5 -----------------------------------------------------------------------------

@pytest.mark.parametrize("pairs, absolute, relative", [
    # 80 -> 70: 10 points, 12.5 %; both thresholds met
    ([("2025-10-01", 80), ("2026-02-01", 70)], "met", "met"),
    # 80 -> 72: 8 points (not met), exactly 10 % (met: the boundary counts)
    ([("2025-10-01", 80), ("2026-02-01", 72)], "not_met", "met"),
    # 80 -> 72.0008: 9.99 % relative, just below
    ([("2025-10-01", 80), ("2026-02-01", 72.0008)], "not_met", "not_met"),
    # 80 -> 70.001: 9.999 points, just below; exactly 10 points is met
    ([("2025-10-01", 80), ("2026-02-01", 70.001)], "not_met", "met"),
    ([("2025-10-01", 80), ("2026-02-01", 70.0)], "met", "met"),
    # the largest earlier value within the window counts (75 and 80 before 70)
    ([("2025-09-01", 80), ("2025-12-01", 75), ("2026-02-01", 70)], "met", "met"),
    # day 183 before the latest counts, day 184 does not (then nothing to compare: unknown)
    ([("2025-08-02", 80), ("2026-02-01", 70)], "met", "met"),
    ([("2025-08-01", 80), ("2026-02-01", 70)], "unknown", "unknown"),
    # a rise is a negative decline: not met
    ([("2025-10-01", 60), ("2026-02-01", 70)], "not_met", "not_met"),
    # one result: unknown
    ([("2026-02-01", 70)], "unknown", "unknown"),
    # two differing results on the latest day: 80 -> [70, 71] is a decline of 9 to 10 points
    # (10 points unknown) and of 11.25 % to 12.5 % (10 % met)
    ([("2025-10-01", 80), ("2026-02-01", 70), ("2026-02-01", 71)], "unknown", "met"),
])
def test_change_decrease(kb, tmp_path, pairs, absolute, relative):
    s = statuses(kb, tmp_path, fvc(*pairs))
    assert (s["FVC-1"], s["FVC-2"]) == (absolute, relative)


@pytest.mark.parametrize("values, expected", [
    ([("2025-06-01", 12), ("2026-02-01", 15)], "met"),        # +3: the boundary
    ([("2025-06-01", 12), ("2026-02-01", 14.999)], "not_met"),
    ([("2025-06-01", 10), ("2025-09-01", 14), ("2026-02-01", 13)], "met"),  # from the lowest: +3
    ([("2025-02-01", 10), ("2026-02-01", 20)], "met"),        # 365 days before the latest: counted
    ([("2025-01-31", 10), ("2026-02-01", 20)], "unknown"),    # 366 days: nothing to compare
])
def test_change_increase(kb, tmp_path, values, expected):
    body = "observations:\n" + "".join(f"  - {{code: skin_score, value: {v}, unit: '{{score}}', date: {d}}}\n"
                                       for d, v in values)
    assert statuses(kb, tmp_path, body)["SKIN-1"] == expected


def test_a_change_is_exact_and_labelled(kb, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("id: P1\nscreening_date: 2026-03-01\n" + fvc(("2025-10-01", 80), ("2026-02-01", 72)))
    f = list(screen_records(load_file(path, vocabulary=kb.vocabulary), kb))[0].findings
    rel = next(x for x in f.findings if x.name == "fvc_drop_rel")
    assert rel.fact == 'quantity("P1",fvc_drop_rel,20000,20000,28)'  # exactly 10 %: 2 * 1000 * 10; 28 days
    assert rel.text.startswith("FVC % predicted decrease over 183 days (relative): 10 %")
    assert kb.vocabulary.quantity_label("fvc_drop") == ("FVC % predicted decrease over 183 days", "%")


# -- daily_dose/3 -------------------------------------------------------------------------

def course(drug, dose, start="2025-12-01", end=None, changes=(), route="oral", unit="mg") -> str:
    out = f"  - {{drug: {drug}, dose: {dose}, unit: {unit}, start: {start}, route: {route}"
    out += f", end: {end}" if end else ""
    if changes:
        out += ", dose_changes: [" + ", ".join(f"{{date: {d}, dose: {x}}}" for d, x in changes) + "]"
    return out + "}\n"


@pytest.mark.parametrize("meds, complete, expected", [
    ([course("prednisone", 15)], True, "met"),                   # exactly 15 mg/day
    ([course("prednisone", 15.5)], True, "not_met"),
    ([course("prednisone", 30, changes=[("2026-02-01", 10)])], True, "met"),   # the current dose
    ([course("prednisone", 10), course("prednisone", 6)], True, "not_met"),    # two courses: 16
    ([course("prednisone", 40, end="2026-01-01")], True, "met"),               # ended: 0 mg
    ([], True, "met"),                                                         # none: 0 mg
    ([course("prednisone", 10)], False, "unknown"),              # more may be unrecorded
    ([course("prednisone", 20)], False, "not_met"),              # at least 20 already
    ([course("prednisone", None)], True, "unknown"),             # dose unknown
    ([course("prednisolone", 40)], True, "met"),                 # another drug: not prednisone
])
def test_daily_dose_in_mg(kb, tmp_path, meds, complete, expected):
    body = ("complete: [medications]\n" if complete else "") + ("medications:\n" + "".join(meds) if meds else "")
    assert statuses(kb, tmp_path, body.replace("dose: None, ", ""))["GC-1"] == expected


@pytest.mark.parametrize("meds, weight, expected", [
    ([course("prednisone", 60)], 60, "not_met"),                 # exactly 1 mg/kg: not above
    ([course("prednisone", 60)], 59.9, "met"),                   # 1.0017 mg/kg: above
    ([course("methylprednisolone", 48)], 60, "not_met"),         # 48 mg = 60 mg prednisone: 1 mg/kg
    ([course("methylprednisolone", 48, route="iv")], 59, "met"),  # iv counts (systemic)
    ([course("prednisone", 200, route="topical")], 60, "not_met"),  # topical does not
    ([course("prednisone", 60)], None, "unknown"),               # no weight
    ([], None, "not_met"),                                       # none taken: 0 whatever the weight
])
def test_daily_dose_per_kg(kb, tmp_path, meds, weight, expected):
    body = "complete: [medications]\n" + ("medications:\n" + "".join(meds) if meds else "")
    if weight:
        body += f"observations:\n  - {{code: weight, value: {weight}, unit: kg, date: 2026-02-20}}\n"
    assert statuses(kb, tmp_path, body)["GC-2"] == expected


# -- days_before/4, days_around/4 (kb/lib/dates.lp) ---------------------------------------

@pytest.mark.parametrize("anc_date, csf_date, complete, expected", [
    ("2026-02-20", "2026-02-06", True, "not_met"),   # 14 days before the ANC: within
    ("2026-02-20", "2026-02-05", True, "met"),       # 15 days before: outside
    ("2026-02-20", "2026-02-25", True, "met"),       # after the ANC: not before it
    ("2026-02-20", "2026-02-20", True, "not_met"),   # the same day counts
    ("2026-02-20", None, True, "met"),
    ("2026-02-20", None, False, "unknown"),          # the list of growth factors not complete
    (None, "2026-02-06", True, "unknown"),           # no ANC: no anchor
])
def test_days_before_a_result(kb, tmp_path, anc_date, csf_date, complete, expected):
    body = ("complete: [growth_factors]\n" if complete else "")
    if anc_date:
        body += f"observations:\n  - {{code: anc, value: 2, unit: 10*9/L, date: {anc_date}}}\n"
    if csf_date:
        body += f"growth_factors:\n  - {{date: {csf_date}, drug: filgrastim}}\n"
    assert statuses(kb, tmp_path, body)["CSF-1"] == expected


@pytest.mark.parametrize("end, complete, expected", [
    ("2025-09-02", True, "met"),        # ended 180 days before screening: within
    ("2025-09-01", True, "not_met"),    # 181 days: outside
    (None, True, "met"),                # ongoing
    ("2025-09-01", False, "unknown"),   # another course may be unrecorded
])
def test_days_before_screening_with_a_course(kb, tmp_path, end, complete, expected):
    body = ("complete: [medications]\n" if complete else "") + "medications:\n" + \
        course("rituximab", 1000, start="2025-03-01", end=end, route="iv")
    assert statuses(kb, tmp_path, body)["RTX-1"] == expected


@pytest.mark.parametrize("anc, lvef, expected", [
    ("2026-02-20", "2026-02-23", "met"),      # 3 days after
    ("2026-02-20", "2026-02-17", "met"),      # 3 days before
    ("2026-02-20", "2026-02-24", "unknown"),  # 4 days: not proven (a list of results is never complete)
])
def test_days_around(kb, tmp_path, anc, lvef, expected):
    body = (f"observations:\n  - {{code: anc, value: 2, unit: 10*9/L, date: {anc}}}\n"
            f"  - {{code: lvef, value: 55, unit: '%', date: {lvef}}}\n")
    assert statuses(kb, tmp_path, body)["ECHO-1"] == expected


# -- declarations are checked ---------------------------------------------------------------

@pytest.mark.parametrize("rule, message", [
    ("change(x, ana, decrease, absolute, six_months_days).", "ana is not a numeric finding"),
    ("change(x, anc, down, absolute, six_months_days).", "the direction is decrease or increase"),
    ("change(anc, hb, decrease, absolute, six_months_days).", "anc is already a name of the vocabulary"),
    ("daily_dose(x, aspirin, mg).", "aspirin is not a drug of the vocabulary"),
    ("daily_dose(x, prednisone, g).", "per is mg or mg_per_kg"),
])
def test_bad_declarations_are_refused_with_their_place(kb_dir, tmp_path, rule, message):
    import shutil

    copy = tmp_path / "trial"
    shutil.copytree(kb_dir, copy)
    lp = copy / "criteria.lp"
    lp.write_text(lp.read_text() + rule + "\n")
    line = len(lp.read_text().splitlines())
    with pytest.raises(KBError, match=message) as e:
        load_kb(copy)
    assert f"criteria.lp:{line}:" in str(e.value)
    assert any(message in p.message for p in check_kb_dir(copy))
