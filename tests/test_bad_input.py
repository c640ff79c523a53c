"""Bad input gets a one-line error naming file, patient, field and reason; the rest of the
batch is still screened; nothing ends in a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pyasp_screen.knowledge.kb import load_kb
from pyasp_screen.inputs.record import RecordError
from pyasp_screen.inputs.files import load_paths
from pyasp_screen.engine.screening import Screened, screen_records

KB = load_kb("ct1190b")
GOOD = {"id": "GOOD", "screening_date": "2026-03-01", "sex": "female", "birth_date": "1980-01-01",
        "observations": [{"code": "anc", "value": 1.5, "unit": "10*9/L", "date": "2026-02-20"}]}


def screen_file(tmp_path: Path, name: str, content: str):
    path = tmp_path / name
    path.write_text(content)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD))
    return list(screen_records(load_paths([path, good]), KB))


def with_obs(**obs):
    base = {"code": "anc", "value": 1.5, "unit": "10*9/L", "date": "2026-02-20"}
    base.update(obs)
    return {"id": "BAD", "screening_date": "2026-03-01", "observations": [base]}


CASES = [
    # (description, file name, content, expected patient, field substring, reason substring)
    ("malformed YAML", "bad.yaml", "id: [unclosed\nscreening_date: 2026-03-01\n", None, None, "malformed yaml"),
    ("malformed JSON", "bad.json", '{"id": "X", ', None, None, "malformed json"),
    # YAML reads 2026-02-30 as a date that is none: the line, column and value are named
    ("impossible YAML date", "d.yaml", "id: BAD\nscreening_date: 2026-03-01\nbirth_date: 2026-02-30\n", None, None,
     "line 3, column 13: 2026-02-30 is not a date: day is out of range for month"),
    ("wrong type", "t.json", json.dumps(with_obs(value=[1, 2])), "BAD", "observations[0].value", "expected"),
    ("unknown field", "f.json", json.dumps({**GOOD, "id": "BAD", "colour": "blue"}), "BAD", None, "unknown field"),
    ("missing screening date", "m.json", json.dumps({"id": "BAD"}), "BAD", None, "screening_date"),
    ("unknown unit", "u.json", json.dumps(with_obs(unit="furlongs")), "BAD", "observations[0].unit", "not a UCUM unit"),
    ("incompatible unit", "i.json", json.dumps(with_obs(unit="mg/dL")), "BAD", "observations[0].unit", "cannot be converted"),
    ("unknown code", "c.json", json.dumps(with_obs(code="ancc")), "BAD", "observations[0].code", "did you mean anc"),
    ("unknown LOINC", "l.json", json.dumps(with_obs(code="1234-5", system="loinc")), "BAD", "observations[0].code", "not mapped"),
    ("negative creatinine", "n.json", json.dumps(with_obs(code="creatinine", value=-1.0, unit="mg/dL")),
     "BAD", "observations[0].value", "impossible"),
    ("Hb 9000 g/L", "h.json", json.dumps(with_obs(code="hb", value=9000, unit="g/L")), "BAD", "observations[0].value", "impossible"),
    ("date after screening", "d.json", json.dumps(with_obs(date="2026-03-02")), "BAD", "observations[0].date", "after the screening date"),
    ("impossible calendar date", "cd.json", json.dumps({**GOOD, "id": "BAD", "birth_date": "1980-02-30"}), "BAD", "birth_date", "date"),
    ("unknown drug", "dr.json", json.dumps({"id": "BAD", "screening_date": "2026-03-01",
                                            "medications": [{"drug": "prednisolon", "start": "2025-01-01"}]}),
     "BAD", "medications[0].drug", "did you mean prednisolone"),
    ("unknown SLEDAI descriptor", "s.json", json.dumps({"id": "BAD", "screening_date": "2026-03-01",
                                                       "sledai2k": [{"date": "2026-02-28", "descriptors": {"arthritiss": True}}]}),
     "BAD", "sledai2k[0].descriptors.arthritiss", "did you mean arthritis"),
    ("SLEDAI total out of range", "st.json", json.dumps({"id": "BAD", "screening_date": "2026-03-01",
                                                        "sledai2k": [{"date": "2026-02-28", "total": 200}]}),
     "BAD", "sledai2k[0].total", "impossible"),
    ("qualitative value", "q.json", json.dumps(with_obs(code="ana", value="maybe", unit=None)), "BAD",
     "observations[0].value", "not positive or negative"),
    ("empty file", "e.yaml", "", None, None, "empty"),
    # a FHIR file that is not a Bundle says what it is, not "unknown field resourceType"
    ("misspelt Bundle", "bundel.json", json.dumps({"resourceType": "Bundel", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1"}}]}), None, None,
     "resourceType 'Bundel' is not a FHIR Bundle (expected 'Bundle')"),
    ("lone Patient", "patient.json", json.dumps({"resourceType": "Patient", "id": "p1", "gender": "female"}),
     "p1", None, "a lone FHIR Patient resource: pyasp-screen reads a Bundle"),
    ("Bundle without Patient", "nop.json", json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Observation", "id": "o1", "code": {"text": "ANC"}}}]}), None, None,
     "the Bundle holds no Patient resource"),
    ("empty Bundle", "empty.json", json.dumps({"resourceType": "Bundle", "type": "collection"}), None, None,
     "the Bundle holds no Patient resource"),
]


@pytest.mark.parametrize("desc,name,content,patient,field,reason", CASES, ids=[c[0] for c in CASES])
def test_bad_record_is_reported_and_the_batch_goes_on(tmp_path, desc, name, content, patient, field, reason):
    outcomes = screen_file(tmp_path, name, content)
    errors = [o for o in outcomes if isinstance(o, RecordError)]
    screened = [o for o in outcomes if isinstance(o, Screened)]
    assert len(errors) == 1, outcomes
    err = errors[0]
    assert err.file.endswith(name)
    if patient:
        assert err.patient == patient
    if field:
        assert err.field == field
    message = str(err)
    assert reason.lower() in message.lower()
    assert "\n" not in message and "Traceback" not in message
    assert [s.result.patient for s in screened] == ["GOOD"]


def test_list_file_reports_each_bad_record_and_screens_the_rest(tmp_path):
    records = [GOOD, with_obs(unit="furlongs"), {**GOOD, "id": "GOOD2"}, "not a mapping", {**GOOD}]
    path = tmp_path / "cohort.yaml"
    path.write_text(yaml.safe_dump(records))
    outcomes = list(screen_records(load_paths([path]), KB))
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == ["Screened", "RecordError", "Screened", "RecordError", "RecordError"]
    assert "duplicate patient id" in outcomes[4].reason
    assert outcomes[3].patient == "#4"


def test_missing_path_is_an_error_not_a_crash(tmp_path):
    outcomes = list(screen_records(load_paths([tmp_path / "nope.yaml"]), KB))
    assert len(outcomes) == 1 and "no such file" in outcomes[0].reason


def test_cli_exit_code_1_and_one_line_per_rejected_record(tmp_path):
    (tmp_path / "good.json").write_text(json.dumps(GOOD))
    (tmp_path / "bad.json").write_text(json.dumps(with_obs(code="hb", value=9000, unit="g/L")))
    (tmp_path / "broken.yaml").write_text("id: [\n")
    proc = subprocess.run([sys.executable, "-m", "pyasp_screen.cli", "screen", str(tmp_path), "--format", "json"],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    rejected = [line for line in proc.stderr.splitlines() if line.startswith("rejected:")]
    assert len(rejected) == 2
    doc = json.loads(proc.stdout)
    assert [r["patient"] for r in doc["results"]] == ["GOOD"]
    assert {e["field"] for e in doc["errors"]} == {"observations[0].value", None}
    assert doc["summary"]["rejected"] == 2


def test_a_native_record_keeps_its_own_screening_date_and_says_so(tmp_path):
    # --screening-date applies to FHIR and OMOP; a native record's entries are checked against
    # its own date, so a different option is not used, and a note says so (never silently)
    from click.testing import CliRunner

    from pyasp_screen.cli import main
    from pyasp_screen.inputs.files import load_file

    path = tmp_path / "good.json"
    path.write_text(json.dumps(GOOD))
    jsonl = tmp_path / "good.jsonl"
    jsonl.write_text(json.dumps(GOOD) + "\n")
    note = ("--screening-date 2020-01-01 not used: this native record carries its own screening_date "
            "(2026-03-01)")
    import datetime as dt
    for file in (path, jsonl):
        [loaded] = load_file(file, dt.date(2020, 1, 1))
        assert loaded.record.screening_date == dt.date(2026, 3, 1)
        assert any(n.startswith(note) for n in loaded.record.mapping_notes), loaded.record.mapping_notes
        [same] = load_file(file, dt.date(2026, 3, 1))
        assert not same.record.mapping_notes  # the same date: nothing to say
    r = CliRunner().invoke(main, ["screen", str(path), "--screening-date", "2020-01-01"])
    assert r.exit_code == 0 and note in r.output and "screened at 2026-03-01" in r.output, r.output


def test_a_json_lines_row_cut_short_is_said_so(tmp_path):
    """A line of a JSON Lines file that stops inside its record (a copy cut off) is named as
    cut short, with its length; a line wrong in the middle keeps the decoder's column; the
    other lines are screened."""
    from pyasp_screen.inputs.sources import iter_items, materialize

    whole = json.dumps({**GOOD, "id": "CUT"})
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join([json.dumps(GOOD), whole[:40], whole.replace('"CUT"', '"MID", "x": }', 1),
                               json.dumps({**GOOD, "id": "LAST"})]) + "\n")
    outcomes = list(screen_records((materialize(it, None, KB.vocabulary) for it in iter_items([path])), KB))
    errors = {o.file: o.reason for o in outcomes if isinstance(o, RecordError)}
    assert errors[f"{path}:2"] == "malformed JSON: the line ends after 40 characters, inside its record (cut short?)"
    assert errors[f"{path}:3"].startswith("malformed JSON at column ") and "cut short" not in errors[f"{path}:3"]
    assert [o.result.patient for o in outcomes if not isinstance(o, RecordError)] == ["GOOD", "LAST"]
