"""The recipes of docs/authoring.md work as written: every ASP block of section 1b, put together
in one knowledge base with the parameters the guide names, passes `check`, exactness included,
and decides the patients the guide describes."""

from __future__ import annotations

import re
from pathlib import Path

from pyasp_screen.authoring.cases import new_kb
from pyasp_screen.authoring.check import check_kb_dir
from pyasp_screen.engine.screening import screen_records
from pyasp_screen.inputs.files import load_file
from pyasp_screen.knowledge.kb import load_kb

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "authoring.md"

PARAMETERS = {  # name -> (kind, default, unit): the values the guide gives
    "lab_window_days": ("integer", 28, "d"), "pregnancy_window_days": ("integer", 14, "d"),
    "six_months_days": ("integer", 183, "d"), "year_days": ("integer", 365, "d"),
    "fvc_decline_min": ("quantity", 10, "%"), "mrss_rise_min": ("quantity", 3, "{score}"),
    "prednisone_max": ("quantity", 15, "mg/d"), "steroid_per_kg_max": ("quantity", 1, "mg/kg/d"),
    "csf_days": ("integer", 14, "d"), "rituximab_days": ("integer", 183, "d"),
    "history_days": ("integer", 3650, "d"), "ana_titer_min": ("quantity", 80, "{titer}"),
    "sledai2k_min": ("integer", 8, "{score}"),
}


def recipes() -> str:
    text = GUIDE.read_text()
    section = text[text.index("## 1b."):text.index("## 2. Parameters")]
    return "\n".join(re.findall(r"```prolog\n(.*?)```", section, re.S))


def build(tmp_path: Path) -> Path:
    kb = tmp_path / "guide"
    new_kb(kb)
    rules = recipes()
    (kb / "criteria.lp").write_text((kb / "criteria.lp").read_text() + "\n" + rules)
    sentences = re.findall(r'registry_sentence\("[^"]+", "([^"]+)"\)', rules)
    (kb / "protocol.txt").write_text((kb / "protocol.txt").read_text() + "\n" + "\n".join(sentences) + "\n")
    guide = GUIDE.read_text()
    titre = re.search(r"# vocabulary.yaml\nobservations:\n(  ana_titer:.*?)```", guide, re.S).group(1)
    (kb / "vocabulary.yaml").write_text('observations:\n  mrss:\n    label: modified Rodnan skin score\n'
                                        '    unit: "{score}"\n    plausible: [0, 51]\n' + titre)
    manifest = kb / "manifest.yaml"
    text = manifest.read_text().replace("programs: [lib/core.lp, criteria.lp]",
                                        "programs: [lib/core.lp, lib/dates.lp, lib/scores.lp, criteria.lp]")
    text = re.sub(r"  lab_window_days:.*?doc: [^\n]*\n", "", text, flags=re.S)
    for name, (kind, default, unit) in PARAMETERS.items():
        if re.search(rf"\b{name}\b", rules) or name == "lab_window_days":
            text += f"  {name}: {{kind: {kind}, default: {default}, unit: '{unit}', doc: from the guide}}\n"
    manifest.write_text(text)
    return kb


def test_the_guide_recipes_pass_check_with_exactness(tmp_path):
    rules = recipes()
    for predicate in ("change(", "daily_dose(", "days_before(", "current_result(", "exclusion", "result_ever(",
                      "check_ever(", "sledai2k_at_least(", "sledai2k_threshold(", "classified("):
        assert predicate in rules  # the recipes the issue asks for are there
    kb = build(tmp_path)
    assert check_kb_dir(kb) == []


def test_the_guide_recipes_decide_what_the_guide_says(tmp_path):
    kb = load_kb(build(tmp_path))
    record = tmp_path / "p.yaml"
    record.write_text("""id: P1
screening_date: 2026-03-01
sex: female
complete: [diagnoses, medications, growth_factors]
observations:
  - {code: igra, value: negative, date: 2026-02-20}
  - {code: pregnancy_test, value: negative, date: 2026-02-25}
  - {code: anc, value: 2.0, unit: 10*9/L, date: 2026-02-20}
  - {code: fvc_pct_predicted, value: 80, unit: '%', date: 2025-10-01}
  - {code: fvc_pct_predicted, value: 71, unit: '%', date: 2026-02-01}
medications:
  - {drug: prednisone, dose: 10, unit: mg, start: 2025-06-01}
growth_factors:
  - {date: 2026-02-01, drug: filgrastim}
""")
    s = list(screen_records(load_file(record, vocabulary=kb.vocabulary), kb))[0].result.statuses
    assert s["EX-2"] == "not_met"                 # no TB on a complete list, IGRA negative
    assert s["EX-3"] == "not_met"                 # pregnancy test negative
    assert s["INC-4"] == "met"                    # 80 -> 71: 11.25 % decline in 4 months
    assert s["INC-6"] == "met"                    # prednisone 10 mg/day <= 15
    assert s["INC-7"] == "met"                    # filgrastim 19 days before the ANC: outside 14
    assert s["EX-5"] == "not_met"                 # no rituximab, the list complete
    assert s["EX-4"] == "unknown"                 # mg/kg: no body weight recorded
    assert s["INC-8"] == "unknown"                # no anti-dsDNA result at all, the results open
    assert s["INC-9"] == "unknown"                # no ANA titre
    assert s["INC-10"] == "unknown" and s["INC-11"] == "unknown"  # no SLEDAI-2K, no classification


def test_the_history_recipes_read_every_result_and_rule_out_only_a_complete_list(tmp_path):
    kb = load_kb(build(tmp_path))

    def statuses(extra: str, complete: str = "[]") -> dict:
        record = tmp_path / "h.yaml"
        record.write_text(f"id: H1\nscreening_date: 2026-03-01\nsex: female\ncomplete: {complete}\n{extra}")
        return list(screen_records(load_file(record, vocabulary=kb.vocabulary), kb))[0].result.statuses

    # an old positive result counts although a newer one is negative ("documented in the history")
    history = ("observations:\n  - {code: anti_dsdna, value: positive, date: 2019-05-01}\n"
               "  - {code: anti_dsdna, value: negative, date: 2026-02-20}\n"
               "  - {code: ana_titer, value: '1:160', date: 2018-01-10}\n"
               "  - {code: ana_titer, value: '1:40', date: 2026-02-20}\n")
    s = statuses(history)
    assert s["INC-8"] == "met" and s["INC-9"] == "met"
    # negative results alone never rule it out: the record's results are an open list
    negative = ("observations:\n  - {code: anti_dsdna, value: negative, date: 2026-02-20}\n"
                "  - {code: ana_titer, value: '1:40', date: 2026-02-20}\n")
    s = statuses(negative)
    assert s["INC-8"] == "unknown" and s["INC-9"] == "unknown"
    # ... unless the record declares every result recorded; then no result at all rules it out too
    s = statuses(negative, "[results]")
    assert s["INC-8"] == "not_met" and s["INC-9"] == "not_met"
    assert statuses("", "[results]")["INC-8"] == "not_met"
    # a titre exactly at 1:80 meets ">= 1:80"; a result older than the history window is not read
    s = statuses("observations:\n  - {code: ana_titer, value: '1:80', date: 2026-02-20}\n"
                 "  - {code: anti_dsdna, value: positive, date: 2010-01-01}\n", "[results]")
    assert s["INC-9"] == "met" and s["INC-8"] == "not_met"


def test_the_sledai_recipe_reads_the_latest_assessment_within_its_window(tmp_path):
    kb = load_kb(build(tmp_path))

    def inc10(assessments: str) -> str:
        record = tmp_path / "s.yaml"
        record.write_text(f"id: S1\nscreening_date: 2026-03-01\nsledai2k:\n{assessments}")
        return list(screen_records(load_file(record, vocabulary=kb.vocabulary), kb))[0].result.statuses["INC-10"]

    eight = "  - {date: 2026-02-20, descriptors: {arthritis: true, proteinuria: true}}\n"  # 4 + 4
    assert inc10(eight) == "met"
    assert inc10("  - {date: 2026-02-20, descriptors: {arthritis: true}}\n") == "unknown"   # 4, 20 unrecorded
    assert inc10("  - {date: 2026-02-20, total: 7}\n") == "not_met"
    assert inc10("  - {date: 2026-01-01, total: 12}\n") == "unknown"   # 59 days before: outside 28
