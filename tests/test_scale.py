"""Cohort screening at scale (docs/scale.md): JSON Lines and FHIR Bulk input, results streamed
per patient, --jobs, a real Dask LocalCluster, and --resume after a kill.

The reference everywhere is the single-process pipeline (screen_records, in this process);
every distributed or resumed run must give the very same rows and summary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyasp_screen.cli import main
from pyasp_screen.cohorts.cohort import CohortSummary
from pyasp_screen.scale.distribute import Job, SeenIds, run
from pyasp_screen.knowledge.kb import load_kb
from pyasp_screen.inputs.record import RecordError
from pyasp_screen.engine.screening import screen_records
from pyasp_screen.inputs.sources import iter_items, materialize
from pyasp_screen.outputs.stream import Layout, ResultsFile, cohort_row, encode, error_row, read_rows

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from cohort import synthetic_cohort, write_bulk_export  # noqa: E402

FHIR = ROOT / "tests" / "data" / "fhir"


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write_jsonl(path: Path, records: list, extra_lines: list[str] = ()) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
        for line in extra_lines:
            fh.write(line + "\n")
    return path


def reference_rows(path: Path, kb) -> list[dict]:
    """Rows made by the plain single-process pipeline, independently of distribute.run."""
    items = (materialize(it) for it in iter_items([path]))
    rows = []
    for seq, o in enumerate(screen_records(items, kb)):
        rows.append(error_row(seq, o) if isinstance(o, RecordError) else cohort_row(seq, o.file, o.result, kb))
    return rows


@pytest.fixture(scope="module")
def cohort_file(tmp_path_factory) -> Path:
    """600 synthetic patients, a duplicate ID, a malformed line and an invalid record."""
    pts = synthetic_cohort(600, seed=7)
    dup = dict(pts[10])
    bad = {"id": "BAD-1", "screening_date": "2026-03-01", "sex": "female",
           "observations": [{"code": "hb", "value": 900, "unit": "g/dL", "date": "2026-02-01"}]}
    path = tmp_path_factory.mktemp("scale") / "cohort.jsonl"
    return write_jsonl(path, pts[:300] + [dup, bad] + pts[300:], extra_lines=["{not json", "", "[1, 2]"])


def test_json_lines_rows_match_the_single_process_pipeline(cohort_file, tmp_path):
    kb = load_kb()
    expected = reference_rows(cohort_file, kb)
    assert len(expected) == 604  # 602 records + 2 bad lines (the blank line is no record)
    errors = [r for r in expected if r.get("error")]
    reasons = " | ".join(r["error"]["message"] for r in errors)
    assert "duplicate patient id" in reasons
    assert "patient BAD-1: field observations[0]" in reasons
    assert "malformed JSON" in reasons and "a record must be a mapping" in reasons
    assert f"{cohort_file}:603: patient ?: malformed JSON" in reasons  # file and line are named
    assert f"{cohort_file}:605: patient ?: a record must be a mapping" in reasons

    out = tmp_path / "rows.jsonl"
    res = cli("cohort", cohort_file, "--jobs", "1", "--batch-size", "97", "--results", out,
              "--format", "json", "-o", tmp_path / "summary.json")
    assert res.exit_code == 1  # some records rejected, the rest screened
    assert read_rows(out, Layout.of((kb,))) == expected
    summary = json.loads((tmp_path / "summary.json").read_text())
    ref = CohortSummary(kb)
    for row in expected:
        ref.add_row(row)
    assert summary["screened"] == ref.screened == 600
    assert summary["rejected"] == ref.rejected_count == 4
    assert summary["overall"] == {v: ref.overall.get(v, 0) for v in ("eligible", "ineligible", "undetermined")}


def test_jobs_2_csv_and_parquet_give_the_same_rows(cohort_file, tmp_path):
    kb = load_kb()
    layout = Layout.of((kb,))
    expected = reference_rows(cohort_file, kb)
    for name in ("rows.csv", "rows.parquet"):
        res = cli("cohort", cohort_file, "--jobs", "2", "--batch-size", "50", "--results", tmp_path / name,
                  "--format", "json", "-o", tmp_path / "s.json")
        assert res.exit_code == 1
        # Flat formats keep the one-line message of a rejection, not its field apart.
        def flat(rows):
            return [{**r, "error": r["error"]["message"]} if r.get("error") else r for r in rows]

        assert flat(read_rows(tmp_path / name, layout)) == flat(expected), name
    header = (tmp_path / "rows.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["seq", "patient", "file", "overall"] and "SLE-IN-1" in header


def test_a_real_dask_local_cluster_gives_the_single_process_result(cohort_file, tmp_path):
    kb = load_kb()
    job = Job((kb,), None, "jsonl")
    local = list(run(iter_items([cohort_file]), job, jobs=0, batch_size=80))
    dask = list(run(iter_items([cohort_file]), job, scheduler="local", jobs=2, batch_size=80))
    assert [b.start for b in dask] == [b.start for b in local]  # input order, whatever finished first
    assert b"".join(b.payload for b in dask) == b"".join(b.payload for b in local)
    s_local, s_dask = CohortSummary(kb), CohortSummary(kb)
    for b in local:
        s_local.merge(b.tally)
    for b in dask:
        s_dask.merge(b.tally)
    assert s_dask.as_dict() == s_local.as_dict()
    assert s_local.screened == 600


def test_dask_scheduler_from_the_command_line(cohort_file, tmp_path):
    kb = load_kb()
    res = cli("cohort", cohort_file, "--scheduler", "local", "--jobs", "2", "--batch-size", "150",
              "--results", tmp_path / "d.jsonl", "--format", "json", "-o", tmp_path / "s.json")
    assert res.exit_code == 1, res.output
    assert read_rows(tmp_path / "d.jsonl", Layout.of((kb,))) == reference_rows(cohort_file, kb)


def test_unreachable_scheduler_is_a_one_line_error(cohort_file, tmp_path):
    res = cli("cohort", cohort_file, "--scheduler", "tcp://127.0.0.1:9", "--batch-size", "100")
    assert res.exit_code == 2
    assert "--scheduler tcp://127.0.0.1:9: cannot connect" in res.output
    assert "Traceback" not in res.output


def _rows_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("name", ["killed.jsonl", "killed.parquet"])
def test_a_killed_run_resumes_with_every_patient_exactly_once(tmp_path, name):
    kb = load_kb()
    src = write_jsonl(tmp_path / "big.jsonl", synthetic_cohort(3000, seed=11))
    out = tmp_path / name
    cmd = [sys.executable, "-m", "pyasp_screen.cli", "cohort", str(src), "--jobs", "2", "--batch-size", "40",
           "--results", str(out), "--format", "json", "-o", str(tmp_path / "first.json")]
    env = dict(os.environ, PYASP_SCREEN_PARQUET_PART_ROWS="200")
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = (len(list(out.glob("part-*.parquet"))) * 200 if out.is_dir() else _rows_in(out))
        if done >= 400:
            break
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be killed")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # no clean-up of any kind: the worst case
    proc.wait()
    partial = read_rows(out, Layout.of((kb,))) if not out.is_dir() else None
    res = subprocess.run(cmd[:-1] + [str(tmp_path / "resumed.json"), "--resume"], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "already done" in res.stderr
    rows = read_rows(out, Layout.of((kb,)))
    assert [r["seq"] for r in rows] == list(range(3000))
    assert sorted(r["patient"] for r in rows) == sorted({r["patient"] for r in rows})  # none twice
    expected = reference_rows(src, kb)
    assert rows == expected
    if partial is not None:
        assert 400 <= len(partial) < 3000  # it was really cut midway
    clean = subprocess.run(cmd[:-6] + ["--format", "json", "-o", str(tmp_path / "clean.json")],
                           env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    assert json.loads((tmp_path / "resumed.json").read_text()) == json.loads((tmp_path / "clean.json").read_text())


def test_resume_cuts_a_torn_csv_line_and_refuses_another_runs_file(tmp_path):
    kb = load_kb()
    src = write_jsonl(tmp_path / "c.jsonl", synthetic_cohort(120, seed=3))
    out = tmp_path / "r.csv"
    assert cli("cohort", src, "--jobs", "1", "--results", out, "--batch-size", "30").exit_code == 0
    full = out.read_bytes()
    lines = full.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:51]) + lines[51][:17])  # header + 50 rows + a torn row
    res = cli("cohort", src, "--jobs", "1", "--results", out, "--batch-size", "30", "--resume")
    assert res.exit_code == 0, res.output
    assert "50 patient(s) already done" in res.output
    assert out.read_bytes() == full
    # a file written under another knowledge base, or for other inputs, is not continued
    res = cli("cohort", src, "--kb", "nct07193667", "--results", out, "--resume")
    assert res.exit_code == 2 and "written by another run (knowledge_bases[0].name: 'ct1190b' then, 'nct07193667' now" in res.output
    res = cli("cohort", src, "--results", out, "--resume", "--param", "crcl_min=30")
    assert res.exit_code == 2 and "written by another run (knowledge_bases" in res.output
    other = write_jsonl(tmp_path / "other.jsonl", synthetic_cohort(200, seed=4))
    res = cli("cohort", other, "--results", out, "--resume")
    assert res.exit_code == 2 and "written by another run (inputs" in res.output
    # the same file name with other content (a new export of the warehouse) is refused too
    out.write_bytes(b"".join(lines[:51]))
    write_jsonl(src, synthetic_cohort(121, seed=3))
    res = cli("cohort", src, "--results", out, "--resume")
    assert res.exit_code == 2 and "written by another run (inputs" in res.output
    res = cli("cohort", src, "--resume")
    assert res.exit_code == 2 and "--resume needs --results" in res.output
    # a finished results file is not replaced by accident
    res = cli("cohort", src, "--results", out)
    assert res.exit_code == 2 and "already exists: add --resume" in res.output
    assert cli("cohort", src, "--results", out, "--overwrite").exit_code == 0
    assert len(read_rows(out, Layout.of((kb,)))) == 121


def test_duplicates_are_caught_across_batches_and_workers(tmp_path):
    pts = synthetic_cohort(200, seed=5)
    src = write_jsonl(tmp_path / "d.jsonl", pts + [pts[3], pts[150]])
    res = cli("cohort", src, "--jobs", "2", "--batch-size", "25", "--results", tmp_path / "r.jsonl")
    assert res.exit_code == 1
    rows = read_rows(tmp_path / "r.jsonl", Layout.of((load_kb(),)))
    dups = [r for r in rows if r.get("error")]
    assert [r["patient"] for r in dups] == [pts[3]["id"], pts[150]["id"]]
    assert f"first seen in {src}:4" in dups[0]["error"]["message"]


def test_seen_ids_in_sqlite():
    seen = SeenIds()
    try:
        assert seen.check([("a", "f:1"), ("b", "f:2"), ("a", "f:3"), (None, "f:4")]) == [None, None, "f:1", None]
        assert seen.check([("b", "g:1"), ("c", "g:2")]) == ["f:2", None]
    finally:
        seen.close()


def test_a_bulk_resource_file_alone_is_refused_and_a_bom_is_read(tmp_path):
    (tmp_path / "Observation.ndjson").write_text('{"resourceType": "Observation", "id": "o1"}\n')
    res = cli("cohort", tmp_path / "Observation.ndjson")
    assert res.exit_code == 1
    assert "give the folder that holds it" in res.output
    rec = synthetic_cohort(1, seed=2)[0]
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(rec).encode() + b"\n")
    res = cli("cohort", tmp_path / "bom.jsonl", "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["screened"] == 1


def test_bulk_export_through_cohort_and_diff(tmp_path):
    """A FHIR Bulk export screens like the same patients given as native records (the
    converter in bench/cohort.py writes both), through workers, for cohort and diff."""
    export = tmp_path / "export"
    export.mkdir()
    write_bulk_export(export, 150, seed=9)
    kb = load_kb()
    res = cli("cohort", export, "--jobs", "2", "--batch-size", "40", "--results", tmp_path / "b.jsonl",
              "--format", "json", "-o", tmp_path / "b.json")
    assert res.exit_code in (0, 1), res.output
    rows = read_rows(tmp_path / "b.jsonl", Layout.of((kb,)))
    assert len(rows) == 150 and all(r["file"].startswith(str(export)) for r in rows)
    in_process = [b"".join(b.payload for b in run(iter_items([export]), Job((kb,), None, "jsonl"), jobs=0,
                                                  batch_size=40))]
    assert (tmp_path / "b.jsonl").read_bytes() == in_process[0]
    res = cli("diff", export, "--against", "ct1190b-amendment1", "--jobs", "2", "--batch-size", "40",
              "--results", tmp_path / "diff.csv", "--format", "json", "-o", tmp_path / "diff.json")
    assert res.exit_code in (0, 1), res.output
    doc = json.loads((tmp_path / "diff.json").read_text())
    drows = read_rows(tmp_path / "diff.csv", Layout.of((kb, load_kb("ct1190b-amendment1"))))
    assert doc["compared"] == sum(1 for r in drows if not r.get("error"))
    changed = sorted(r["patient"] for r in drows if not r.get("error") and r["before"] != r["after"])
    assert sorted(p["patient"] for p in doc["patients"]) == changed


def test_diff_results_rows_equal_across_jobs(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", synthetic_cohort(300, seed=8))
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"d{jobs}.jsonl"
        res = cli("diff", src, "--against-param", "crcl_min=30", "--jobs", jobs, "--batch-size", "64",
                  "--results", out, "--format", "json", "-o", tmp_path / f"d{jobs}.json")
        assert res.exit_code == 0, res.output
        outs.append((out.read_bytes(), (tmp_path / f"d{jobs}.json").read_text()))
    assert outs[0] == outs[1]
    rows = [json.loads(line) for line in outs[0][0].splitlines()]
    assert len(rows) == 300 and all("changed" in r for r in rows)
    doc = json.loads(outs[0][1])
    assert doc["changed"] == sum(1 for r in rows if r["before"] != r["after"])


def test_encoded_rows_round_trip_through_every_format(tmp_path):
    kb = load_kb()
    layout = Layout.of((kb,))
    rows = reference_rows(write_jsonl(tmp_path / "c.jsonl", synthetic_cohort(30, seed=1),
                                      extra_lines=['{"id": "X"}']), kb)
    for name in ("r.jsonl", "r.csv", "r.parquet"):
        rf = ResultsFile.create(tmp_path / name, layout)
        rf.write(encode(rows[:10], rf.fmt, layout), 10)
        rf.write(encode(rows[10:], rf.fmt, layout), len(rows) - 10)
        rf.close()
        back = read_rows(tmp_path / name, layout)
        assert [r["seq"] for r in back] == list(range(31))
        assert [r.get("criteria") for r in back] == [r.get("criteria") for r in rows]


def test_json_lines_fast_path_reads_records_as_the_general_path(tmp_path):
    """A JSON Lines record is decoded straight into a Record when it is valid; it must be the
    very record the general path (json.loads, then validation) makes, for every example
    patient of every bundled knowledge base and a synthetic cohort."""
    import datetime as dt

    import yaml

    from pyasp_screen.inputs.record import parse_record
    from pyasp_screen.inputs.sources import RawLine

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v

    records = synthetic_cohort(200, seed=21)
    for case in sorted((ROOT / "kb").glob("*/cases/*.yaml")):
        if not case.name.endswith(".expected.yaml"):
            records.append(plain(yaml.safe_load(case.read_text())))
    assert len(records) > 350
    for i, rec in enumerate(records):
        line = json.dumps(rec).encode()
        fast = materialize(RawLine(f"x:{i}", line))
        general = parse_record(json.loads(line), f"x:{i}")
        assert fast == general, rec.get("id")


def test_text_that_is_not_utf8_is_named_so(tmp_path):
    export = tmp_path / "export"
    write_bulk_export(export, 5, seed=2)
    with open(export / "Observation.ndjson", "ab") as fh:
        fh.write(b"\xff\xfe bad\n")
    rec = json.dumps(synthetic_cohort(1, seed=2)[0]).encode()
    (tmp_path / "c.jsonl").write_bytes(rec + b"\n" + b"\x80 not text\n")
    for src in (export, tmp_path / "c.jsonl"):
        res = cli("cohort", src, "--format", "json", "-o", tmp_path / "s.json")
        assert res.exit_code == 1
        doc = json.loads((tmp_path / "s.json").read_text())
        assert doc["rejected"] == 1 and doc["screened"] >= 1
        assert "not UTF-8 text (byte 0x" in doc["errors"][0]["message"]


def test_explanations_on_every_core_are_those_of_one_process():
    """screen --explain hands patients to worker processes (scale/explain_all.py): every
    summary, in input order, is the one summarise() gives in this process, and the command
    line prints the same with --jobs 1 and --jobs 2."""
    from pyasp_screen.explain.summary import summarise
    from pyasp_screen.inputs.files import load_file
    from pyasp_screen.scale.explain_all import MIN_PER_WORKER, summarise_all

    kb = load_kb()
    cases = sorted((ROOT / "kb" / "ct1190b" / "cases").glob("*.yaml"))[:6 * MIN_PER_WORKER]
    items = [it for c in cases for it in load_file(c)]
    screened = [o for o in screen_records(items, kb) if not isinstance(o, RecordError)]
    assert len(screened) >= 2 * MIN_PER_WORKER  # enough for two workers
    here = [summarise(kb, s, max_results=5, scopes=["overall"]) for s in screened]
    assert summarise_all(kb, screened, jobs=2, max_results=5, scopes=["overall"]) == here
    one = cli("screen", *cases, "--explain", "--format", "json", "--jobs", "1")
    two = cli("screen", *cases, "--explain", "--format", "json", "--jobs", "2")
    assert one.exit_code == two.exit_code  # 1: some example files are records meant to be rejected
    assert one.output == two.output and '"explanation"' in one.output


def test_a_batch_pauses_the_collector_and_frees_what_it_leaves(cohort_file):
    """screen_batch pauses the cyclic garbage collector while it works and collects once
    after: the collector is on again afterwards, a caller that turned it off keeps it off,
    and the rows are those of a batch screened with the collector left alone."""
    import gc
    import weakref

    from pyasp_screen.scale.distribute import Batch, _screen_batch, screen_batch

    kb = load_kb()
    job = Job((kb,), None, "jsonl")
    items = [x for _, x in zip(range(40), iter_items([cohort_file]))]
    assert gc.isenabled()
    plain = _screen_batch(job, Batch(0, items))

    class Cycle:
        pass

    left = Cycle()
    left.me = left  # garbage only a collection frees
    alive = weakref.ref(left)
    del left  # (without the collection at its end, the paused batch would leave it alive)
    paused = screen_batch(job, Batch(0, items))
    assert gc.isenabled()
    assert alive() is None
    assert paused.payload == plain.payload and paused.tally.as_dict() == plain.tally.as_dict()
    gc.disable()
    try:
        screen_batch(job, Batch(0, items))
        assert not gc.isenabled()  # a caller managing the collector keeps it off
    finally:
        gc.enable()


def test_summaries_need_no_unit_registry(monkeypatch):
    """screen --explain's workers start from a fork server that does not build the UCUM
    registry (scale/explain_all.py): a summary reads findings already derived. Summarising
    every example patient with the registry made unavailable gives the same summaries."""
    from pyasp_screen.explain.summary import summarise
    from pyasp_screen.findings import units
    from pyasp_screen.inputs.files import load_file

    kb = load_kb()
    items = [it for c in sorted((ROOT / "kb" / "ct1190b" / "cases").glob("*.yaml")) for it in load_file(c)]
    screened = [o for o in screen_records(items, kb) if not isinstance(o, RecordError)]
    here = [summarise(kb, s, max_results=3, scopes=["overall"]) for s in screened]

    def no_registry():
        raise AssertionError("a summary asked for the UCUM registry")

    monkeypatch.setattr(units, "_registry", no_registry)
    assert [summarise(kb, s, max_results=3, scopes=["overall"]) for s in screened] == here


def test_ctrl_c_ends_screen_explain_and_its_workers(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) while `screen --explain
    --jobs 2` explains: the command ends at once with exit 130 and one line, and leaves no
    worker behind (a fresh user's run hung after "Aborted!", two workers left)."""
    import psutil

    src = tmp_path / "cases"
    src.mkdir()
    for i in range(6):  # enough patients that the interrupt falls while workers explain
        for case in sorted((ROOT / "kb" / "ct1190b" / "cases").glob("*.yaml")):
            if not case.name.endswith(".expected.yaml"):
                data = case.read_text()
                (src / f"{i}-{case.name}").write_text(data.replace("\nid: ", f"\nid: R{i}-", 1))
    cmd = [sys.executable, "-m", "pyasp_screen.cli", "screen", str(src), "--explain", "--jobs", "2",
           "--format", "json", "-o", str(tmp_path / "out.json")]
    proc = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    workers: list = []
    while time.monotonic() < deadline and proc.poll() is None:
        # the fork server is a child, the workers its children
        workers = [w for c in parent.children() for w in c.children()]
        if len(workers) >= 2:
            break
        time.sleep(0.05)
    if proc.poll() is not None or len(workers) < 2:
        pytest.fail("the explanations ended, or no worker started, before the interrupt")
    time.sleep(1.0)  # the workers at work
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("screen --explain did not end within 60 s of Ctrl-C")
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted", err
    assert "Traceback" not in err
    gone, alive = psutil.wait_procs(workers, timeout=10)  # (the fork server ends with the command)
    assert not alive, f"workers left running: {[p.pid for p in alive]}"
