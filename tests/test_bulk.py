"""Tests for pyasp_screen.inputs.bulk: FHIR Bulk Data (NDJSON) exports -> per-patient resources.

Hand-made exports are built in this file. The Synthea sample bundles are the ones already in
tests/data/fhir/ (origin and licence: tests/data/fhir/SOURCE.md, copied from
../shared/fhir); test_to_record_equals_the_bundle_route splits them into an export.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import multiprocessing
import os
import pickle
import sys
import zlib
from pathlib import Path

import msgspec
import pytest

from pyasp_screen.inputs import files, record
from pyasp_screen.inputs.bulk import (JOINED, PatientResources, is_bulk_export, iter_bulk_patients,
                               to_record)
from pyasp_screen.inputs.record import Loaded, RecordError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
FHIR_DATA = Path(__file__).parent / "data" / "fhir"
BUNDLES = sorted(FHIR_DATA.glob("*.json"))


# --- building exports ----------------------------------------------------------------------

def write(folder: Path, name: str, lines: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with path.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def patient(pid: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1980-02-03"}


def obs(oid: str, ref: str | None, day: int = 1) -> dict:
    r = {"resourceType": "Observation", "id": oid, "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
         "effectiveDateTime": f"2024-01-{day:02d}",
         "valueQuantity": {"value": 12.5, "unit": "g/dL"}}
    if ref is not None:
        r["subject"] = {"reference": ref}
    return r


def cond(cid: str, ref: str) -> dict:
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": ref},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]},
            "onsetDateTime": "2019-05-06"}


def med(mid: str, ref: str, rt: str = "MedicationStatement") -> dict:
    r = {"resourceType": rt, "id": mid, "subject": {"reference": ref},
         "medicationCodeableConcept": {"text": "Prednisone 5 MG Oral Tablet"}}
    if rt == "MedicationStatement":
        r.update(status="active", effectivePeriod={"start": "2023-10-01"})
    else:
        r.update(status="active", intent="order", authoredOn="2023-10-01")
    return r


PIDS = [f"P{i:02d}" for i in range(12)]


def small_export(folder: Path) -> dict[str, list[str]]:
    """12 patients in two Patient files; their resources spread over two Observation files
    and the Condition / Medication* files, with three reference styles; an ignored type and a
    manifest. Returns pid -> expected resource ids after the Patient line, in output order."""
    write(folder, "Patient.000.ndjson", [patient(p) for p in PIDS[:6]])
    write(folder, "Patient.001.ndjson", [patient(p) for p in PIDS[6:]])

    def ref(p: str) -> str:
        return {"P03": "urn:uuid:P03", "P04": "https://ehr.example/fhir/Patient/P04",
                "P05": "Patient/P05/_history/2"}.get(p, f"Patient/{p}")

    obs0, obs1, conds, stmts, reqs = [], [], [], [], []
    for n, p in enumerate(PIDS):
        for k in range(n % 4):  # 0..3 observations per patient, alternating between files
            (obs0 if k % 2 == 0 else obs1).append(obs(f"{p}-o{k}", ref(p), k + 1))
        if n % 3 == 0:
            conds.append(cond(f"{p}-c", ref(p)))
        if n % 2 == 0:
            stmts.append(med(f"{p}-s", ref(p)))
        if n % 5 == 0:
            reqs.append(med(f"{p}-r", ref(p), "MedicationRequest"))
    # files are read in name order: Observation.000 before Observation.001, lines in order
    write(folder, "Observation.001.ndjson", obs1[::-1])
    write(folder, "Observation.000.ndjson", obs0[::-1])
    write(folder, "Condition.ndjson", conds)
    write(folder, "MedicationStatement.ndjson", stmts)
    write(folder, "MedicationRequest.ndjson", reqs)
    write(folder, "Encounter.ndjson", [{"resourceType": "Encounter", "id": "e1", "status":
                                        "finished", "subject": {"reference": "Patient/P00"}}])
    outputs = [{"type": f.name.split(".")[0], "url": f"https://ehr.example/bulk/{f.name}"}
               for f in sorted(folder.glob("*.ndjson"))]
    (folder / "output.json").write_text(json.dumps({"transactionTime": "2024-01-01",
                                                    "output": outputs, "error": []}))
    expected: dict[str, list[str]] = {p: [] for p in PIDS}
    for r in obs0[::-1] + obs1[::-1] + conds + stmts + reqs:  # type order, then file/line
        expected[r["id"].split("-")[0]].append(r["id"])
    for p in PIDS:
        expected[p].sort(key=lambda i: JOINED.index(
            {"o": "Observation", "c": "Condition", "s": "MedicationStatement",
             "r": "MedicationRequest"}[i.split("-")[1][0]]))
    return expected


def ids(p: PatientResources) -> list[str]:
    return [json.loads(line)["id"] for line in p.lines]


def export_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.ndjson"))


# --- grouping and order ----------------------------------------------------------------------

@pytest.mark.parametrize("partition_bytes", [300, 1500, 64 * 2**20])
def test_grouping_across_files_and_partitions(tmp_path, partition_bytes):
    expected = small_export(tmp_path / "exp")
    out = list(iter_bulk_patients(tmp_path / "exp", workdir=tmp_path,
                                  partition_bytes=partition_bytes))
    assert all(isinstance(p, PatientResources) for p in out), [str(p) for p in out]
    assert sorted(p.patient for p in out) == PIDS
    for p in out:
        assert ids(p) == [p.patient] + expected[p.patient]
        assert json.loads(p.lines[0])["resourceType"] == "Patient"
        n = PIDS.index(p.patient)
        name, line = ("Patient.000.ndjson", n + 1) if n < 6 else ("Patient.001.ndjson", n - 5)
        assert p.file == f"{tmp_path / 'exp' / name}:{line}"
    # order: partition (crc32 of the id modulo K), then Patient line order
    k = -(-export_size(tmp_path / "exp") // partition_bytes)
    key = [(zlib.crc32(p.patient.encode()) % k, PIDS.index(p.patient)) for p in out]
    assert key == sorted(key)
    if partition_bytes == 300:
        assert len({part for part, _ in key}) >= 4  # several partitions really exercised


def test_order_is_deterministic_across_runs(tmp_path):
    small_export(tmp_path / "exp")
    (tmp_path / "w1").mkdir()
    (tmp_path / "w2").mkdir()
    a = list(iter_bulk_patients(tmp_path / "exp", workdir=tmp_path / "w1", partition_bytes=700))
    b = list(iter_bulk_patients(tmp_path / "exp", workdir=tmp_path / "w2", partition_bytes=700))
    assert a == b and len(a) == 12
    assert [p.patient for p in a] != PIDS  # several partitions reorder the patients


def test_is_bulk_export(tmp_path):
    small_export(tmp_path / "exp")
    assert is_bulk_export(tmp_path / "exp")
    assert not is_bulk_export(tmp_path / "exp" / "Patient.000.ndjson")
    assert not is_bulk_export(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert not is_bulk_export(tmp_path / "empty")
    # A folder of NDJSON is an export even when it is a broken one, so that its problems are
    # reported line by line (no Patient at all; a bad first line) instead of the folder
    # being read as a folder of record files.
    write(tmp_path / "obs-only", "Observation.ndjson", [obs("o1", "Patient/P1")])
    assert is_bulk_export(tmp_path / "obs-only")
    write(tmp_path / "odd", "part-1.ndjson", ["{broken", patient("X")])
    assert is_bulk_export(tmp_path / "odd")


# --- bad input -------------------------------------------------------------------------------

def test_each_bad_input_gives_one_line_and_the_rest_comes_out(tmp_path):
    exp = tmp_path / "exp"
    write(exp, "Patient.ndjson", [patient("P1"), patient("P2"), "", patient("P1"),
                                  {"resourceType": "Patient", "gender": "male"}])
    write(exp, "Observation.ndjson", [
        obs("o1", "Patient/P1"),
        '{"resourceType": "Observation", "id": "o2", ',      # 2: malformed JSON
        {"id": "o3", "subject": {"reference": "Patient/P1"}},  # 3: no resourceType
        "[1, 2]",                                              # 4: not an object
        obs("o5", None),                                       # 5: no patient reference
        obs("o6", "Patient/GHOST"),                            # 6: patient not exported
        obs("o7", "Patient/P2"),
        {"resourceType": "Encounter", "id": "e8"},             # 8: ignored type, no error
        obs("o9", "Patient/GHOST"),                            # 9: same missing patient
        {"resourceType": "Observation", "id": "o10", "subject": {"reference": 5}},
    ])
    write(exp, "Condition.ndjson", [cond("c1", "Group/7"), cond("c2", "Patient/P2")])
    out = list(iter_bulk_patients(exp, workdir=tmp_path, partition_bytes=400))
    good = {p.patient: ids(p) for p in out if isinstance(p, PatientResources)}
    assert good == {"P1": ["P1", "o1"], "P2": ["P2", "o7", "c2"]}
    errors = [e for e in out if isinstance(e, RecordError)]
    for e in errors:
        assert "\n" not in str(e)
    got = {(Path(e.file.rsplit(":", 1)[0]).name, int(e.file.rsplit(":", 1)[1]), e.patient, e.field)
           for e in errors}
    assert got == {
        ("Patient.ndjson", 4, "P1", "id"),                       # duplicate Patient id
        ("Patient.ndjson", 5, None, "id"),                       # Patient without id
        ("Observation.ndjson", 2, None, None),                   # malformed JSON
        ("Observation.ndjson", 3, None, "resourceType"),
        ("Observation.ndjson", 4, None, None),                   # not an object
        ("Observation.ndjson", 5, None, "subject.reference"),
        ("Observation.ndjson", 6, "GHOST", "subject.reference"),  # one error for o6 and o9
        ("Observation.ndjson", 10, None, "subject.reference"),
        ("Condition.ndjson", 1, None, "subject.reference"),
    }
    reasons = {(Path(e.file).name, e.field): e.reason for e in errors}
    assert reasons["Observation.ndjson:2", None].startswith("malformed JSON")
    assert "JSON object" in reasons["Observation.ndjson:4", None]
    assert "no patient reference" in reasons["Observation.ndjson:5", "subject.reference"]
    assert "not a Patient reference" in reasons["Condition.ndjson:1", "subject.reference"]
    assert ("Patient/GHOST is not in the export's Patient files: its 2 resources"
            " (Observation x2)") in reasons["Observation.ndjson:6", "subject.reference"]
    assert "duplicate Patient id (first at " in reasons["Patient.ndjson:4", "id"]
    assert str(errors[1]).startswith(str(exp / "Observation.ndjson") + ":2: patient ?: ")
    # reading-pass errors come first, in file order (Condition < Observation < Patient)
    first_pass = [Path(e.file).name for e in out[:7]]
    assert first_pass == ["Condition.ndjson:1", "Observation.ndjson:2", "Observation.ndjson:3",
                          "Observation.ndjson:4", "Observation.ndjson:5", "Observation.ndjson:10",
                          "Patient.ndjson:5"]


def test_empty_exports(tmp_path):
    (tmp_path / "none").mkdir()
    [e] = list(iter_bulk_patients(tmp_path / "none"))
    assert isinstance(e, RecordError) and "no .ndjson file" in e.reason
    write(tmp_path / "nopat", "Observation.ndjson", [obs("o1", "Patient/P1")])
    write(tmp_path / "nopat", "Patient.ndjson", [""])
    [e] = list(iter_bulk_patients(tmp_path / "nopat"))
    assert isinstance(e, RecordError) and "no Patient resource" in e.reason
    assert "\n" not in str(e)
    [e] = list(iter_bulk_patients(tmp_path / "missing"))
    assert isinstance(e, RecordError) and "cannot read" in e.reason


def test_crlf_bom_and_blank_lines(tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "Patient.ndjson").write_bytes(b"\xef\xbb\xbf" + json.dumps(patient("P1")).encode()
                                         + b"\r\n\r\n")
    write(exp, "Observation.ndjson", [obs("o1", "Patient/P1"), "   "])
    [p] = list(iter_bulk_patients(exp))
    assert ids(p) == ["P1", "o1"] and not p.lines[0].endswith(b"\r")


# --- temporary files ---------------------------------------------------------------------------

def test_temp_files_removed_after_a_run_and_on_early_close(tmp_path):
    small_export(tmp_path / "exp")
    work = tmp_path / "work"
    work.mkdir()
    assert len(list(iter_bulk_patients(tmp_path / "exp", workdir=work, partition_bytes=500))) == 12
    assert os.listdir(work) == []
    gen = iter_bulk_patients(tmp_path / "exp", workdir=work, partition_bytes=500)
    first = next(gen)
    assert isinstance(first, PatientResources)
    [tmp] = os.listdir(work)
    assert os.listdir(work / tmp)  # partition files are there while the run goes on
    gen.close()
    assert os.listdir(work) == []
    # an error out of the consumer (generator dropped) cleans up too
    gen = iter_bulk_patients(tmp_path / "exp", workdir=work, partition_bytes=500)
    next(gen)
    del gen
    assert os.listdir(work) == []


# --- to_record -------------------------------------------------------------------------------

def bundles_as_export(folder: Path, keep_all_types: bool = True) -> None:
    """The sample bundles split into one NDJSON file per resource type, as an export would."""
    lines: dict[str, list[dict]] = {}
    for path in BUNDLES:
        for e in json.loads(path.read_text(encoding="utf-8"))["entry"]:
            r = e["resource"]
            if keep_all_types or r["resourceType"] in ("Patient", *JOINED):
                lines.setdefault(r["resourceType"], []).append(r)
    for rt, rs in lines.items():
        write(folder, f"{rt}.ndjson", rs)


def comparable(rec: record.Record) -> dict:
    """A record without what names its source: the source and the bundle-summary notes."""
    d = msgspec.structs.asdict(rec)
    d.pop("source")
    d["mapping_notes"] = [n for n in rec.mapping_notes
                          if not n.startswith(("FHIR Bundle (", "FHIR Bulk Data export:",
                                               "resource types not read"))]
    return d


@pytest.mark.parametrize("screening_date", [None, dt.date(2020, 1, 15)])
def test_to_record_equals_the_bundle_route(tmp_path, screening_date):
    from pyasp_screen.knowledge.kb import load_kb
    from pyasp_screen.engine.screening import screen_records

    bundles_as_export(tmp_path / "exp")
    items = list(iter_bulk_patients(tmp_path / "exp", partition_bytes=10**6))
    assert len(items) == len(BUNDLES) == 5
    via_bulk = {p.patient: to_record(p, screening_date) for p in items}
    via_bundle = {}
    for path in BUNDLES:
        [loaded] = list(files.load_file(path, screening_date))
        via_bundle[loaded.record.id] = loaded
    assert sorted(via_bulk) == sorted(via_bundle)
    for pid, loaded in via_bulk.items():
        assert isinstance(loaded, Loaded), str(loaded)
        assert loaded.record.source.startswith("FHIR Bulk Data export ")
        assert comparable(loaded.record) == comparable(via_bundle[pid].record)
    kb = load_kb("ct1190b")

    def outcomes(items):  # results, or rejections (a result dated after the screening date)
        return sorted((s.patient, s.field, s.reason) if isinstance(s, RecordError)
                      else (s.result.patient, repr(s.result)) for s in screen_records(items, kb))

    a, b = outcomes(iter(via_bulk.values())), outcomes(iter(via_bundle.values()))
    assert a == b and len(a) == 5


def test_to_record_error_names_the_resource(tmp_path):
    bad = obs("o1", "Patient/P1")
    bad["valueQuantity"]["value"] = "abc"
    write(tmp_path / "exp", "Patient.ndjson", [patient("P1")])
    write(tmp_path / "exp", "Observation.ndjson", [bad])
    [p] = list(iter_bulk_patients(tmp_path / "exp"))
    err = to_record(p)
    assert isinstance(err, RecordError)
    assert (err.file, err.patient) == (p.file, "P1")
    assert err.field == "Observation/o1.valueQuantity.value" and "abc" in err.reason


def test_to_record_in_a_worker_process(tmp_path):
    small_export(tmp_path / "exp")
    items = list(iter_bulk_patients(tmp_path / "exp"))
    assert pickle.loads(pickle.dumps(items)) == items
    local = [to_record(p) for p in items]
    assert all(isinstance(x, Loaded) for x in local)
    ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        remote = list(pool.map(to_record, items))
    assert remote == local
    prednisone = next(x for x in local if x.record.id == "P00").record
    # a statement and an order of the same drug from the same day are one course
    assert [m.drug for m in prednisone.medications] == ["prednisone"]
    assert [d.code for d in prednisone.diagnoses] == ["sle"]


# --- the synthetic cohort as FHIR (bench/cohort.py) ----------------------------------------------

def test_synthetic_fhir_export_matches_the_native_records(tmp_path):
    from cohort import SCREENING, fhir_expressible, synthetic_cohort, write_bulk_export, write_jsonl

    from pyasp_screen.knowledge.kb import load_kb
    from pyasp_screen.engine.screening import screen_records

    n = 60
    counts = write_bulk_export(tmp_path / "exp", n, seed=7)
    assert counts["Patient"] == n
    natives = synthetic_cohort(n, seed=7)
    write_jsonl(tmp_path / "cohort.jsonl", n, seed=7)
    lines = (tmp_path / "cohort.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == natives

    by_id = {r["id"]: r for r in natives}
    fhir = [to_record(p, SCREENING) for p in iter_bulk_patients(tmp_path / "exp")]
    assert all(isinstance(x, Loaded) for x in fhir)
    expressible = [record.parse_record(fhir_expressible(by_id[x.record.id]), "native")
                   for x in fhir]

    def core(rec: record.Record) -> tuple:
        def rows(items, fields):
            return sorted(repr({f: getattr(x, f) for f in fields}) for x in items)
        return (rec.id, rec.sex, rec.birth_date, rec.screening_date,
                rows(rec.observations, ("code", "date", "value", "unit", "reference_range")),
                rows(rec.diagnoses, ("code", "onset", "present")),
                rows(rec.medications, ("drug", "start", "end", "dose", "unit", "route")))

    for f, e in zip(fhir, expressible):
        assert core(f.record) == core(e.record)
    kb = load_kb("ct1190b")
    a = [s.result.overall for s in screen_records(iter(fhir), kb)]
    b = [s.result.overall for s in screen_records(iter(expressible), kb)]
    assert a == b
