"""Issue 13, as an attacker tries it: no record stops a batch, no input hangs or exhausts
memory, no knowledge base grounds without end, no two runs write one results file.

Every failure the issue lists is a test here. Commands run as users run them (a child
process, so a traceback, a hang or a crash is seen as such), each under a time limit.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from cohort import synthetic_cohort  # noqa: E402

GOOD = {"id": "GOOD", "screening_date": "2026-03-01", "sex": "female", "birth_date": "1980-01-01",
        "observations": [{"code": "anc", "value": 1.5, "unit": "10*9/L", "date": "2026-02-20"}]}


def cli(*args, timeout: float = 120, env: dict | None = None, cwd: Path | None = None,
        memory: int = 8 * 2**30) -> subprocess.CompletedProcess:
    """Run pyasp-screen in a child process; a run that outlives ``timeout`` fails the test
    (it hung). ``memory``: an address-space ceiling, so a runaway child cannot take the
    machine down with it (far above what any of these runs needs)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    try:
        return subprocess.run([sys.executable, "-m", "pyasp_screen.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd,
                              preexec_fn=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pyasp-screen {' '.join(map(str, args))} still running after {timeout} s")


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    for text in (proc.stdout, proc.stderr):
        assert "Traceback" not in text and "MemoryError" not in text and "RecursionError" not in text, text[-3000:]


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------------------
# 1. One record never stops a run

DEEP = ('{"id": "DEEP", "screening_date": "2026-03-01", "notes": ' + "[" * 1000 + "]" * 1000 + "}")
SURROGATE = '{"id": "S\\ud800", "screening_date": "2026-03-01"}'
HUGE_DOSE = json.dumps({"id": "DOSE", "screening_date": "2026-03-01", "medications": [
    {"drug": "prednisone", "dose": 1e308, "unit": "mg", "start": "2025-01-01"}]})
NEWLINE_ID = json.dumps({"id": "N\nL", "screening_date": "2026-03-01"})

# (name, text, patient as reported, field, words of the reason)
FAULTS = [
    ("deep", DEEP, "DEEP", "notes", "nested deeper than"),
    ("surrogate", SURROGATE, "S\\ud800", "id", "surrogate"),
    ("dose", HUGE_DOSE, "DOSE", "medications[0].dose", "impossible"),
    ("newline", NEWLINE_ID, "N\\nL", "id", "one line"),
]


@pytest.fixture(scope="module")
def faults(tmp_path_factory) -> Path:
    """A folder of one file per fault plus a good record, and a JSON Lines file of the same
    faults plus a good record."""
    base = tmp_path_factory.mktemp("faults")
    folder = base / "records"
    folder.mkdir()
    for name, text, *_ in FAULTS:
        (folder / f"{name}.json").write_text(text, encoding="utf-8")
    (folder / "good.json").write_text(json.dumps(GOOD))
    # the same faults under other IDs (a patient in both would be a duplicate)
    lines = [text.replace('"DOSE"', '"DOSE-L"') for _, text, *_ in FAULTS] + [json.dumps({**GOOD, "id": "GOOD2"})]
    (base / "lines.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return base


def _expected_errors(base: Path) -> dict[str, tuple]:
    """file (as reported) -> (patient, field, reason words)."""
    out = {}
    for n, (name, _, patient, field, words) in enumerate(FAULTS, 1):
        out[str(base / "records" / f"{name}.json")] = (patient, field, words)
        out[f"{base / 'lines.jsonl'}:{n}"] = ("DOSE-L" if patient == "DOSE" else patient, field, words)
    return out


def _check_error_rows(rows: list[dict], base: Path) -> None:
    expected = _expected_errors(base)
    errors = {r["file"]: r for r in rows if r.get("error")}
    assert sorted(errors) == sorted(expected), [r["error"]["message"] for r in errors.values()]
    for file, (patient, field, words) in expected.items():
        err = errors[file]
        assert err["patient"] == patient, err
        assert err["error"]["field"] == field, err
        assert words in err["error"]["reason"], err
        message = err["error"]["message"]
        assert message.startswith(f"{file}: patient {patient}: field {field}: "), message
        assert "\n" not in message and "\r" not in message, message
    good = [r for r in rows if not r.get("error")]
    assert sorted(r["patient"] for r in good) == ["GOOD", "GOOD2"]


@pytest.mark.parametrize("jobs", ["in-process", "jobs-2"])
@pytest.mark.parametrize("command", ["cohort", "diff"])
def test_faulty_records_are_each_one_row_and_the_run_goes_on(faults, tmp_path, command, jobs):
    out = tmp_path / "rows.jsonl"
    extra = ["--jobs", "2", "--batch-size", "1"] if jobs == "jobs-2" else []
    if command == "diff":
        extra += ["--against-param", "anc_min=1.0"]
    proc = cli(command, faults / "records", faults / "lines.jsonl", "--results", out, *extra)
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    rows = rows_of(out)
    assert [r["seq"] for r in rows] == list(range(10))
    _check_error_rows(rows, faults)


def test_faulty_records_under_screen_are_one_line_each(faults):
    proc = cli("screen", faults / "records", faults / "lines.jsonl", "--format", "json")
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    rejected = [line for line in proc.stderr.splitlines() if line.startswith("rejected: ")]
    assert len(rejected) == len(doc["errors"]) == 8, proc.stderr
    rows = [{"file": e["file"], "patient": e["patient"],
             "error": {"field": e["field"], "reason": e["reason"], "message": e["message"]}}
            for e in doc["errors"]] + [{"patient": r["patient"]} for r in doc["results"]]
    _check_error_rows(rows, faults)
    assert sorted(line.removeprefix("rejected: ") for line in rejected) == sorted(e["message"] for e in doc["errors"])


def test_faulty_records_under_screen_as_a_table_and_csv(faults, tmp_path):
    for fmt in ("table", "csv"):
        proc = cli("screen", faults / "records", faults / "lines.jsonl", "--format", fmt)
        no_traceback(proc)
        assert proc.returncode == 1, proc.stderr
        assert "GOOD2" in proc.stdout


def test_faulty_records_under_explain(faults):
    proc = cli("explain", faults / "lines.jsonl", "--format", "json")
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert [p["patient"] for p in doc["patients"]] == ["GOOD2"]
    assert len(doc["errors"]) == 4
    for name, text, patient, field, words in FAULTS:
        proc = cli("explain", faults / "records" / f"{name}.json")
        no_traceback(proc)
        assert proc.returncode == 1, proc.stderr
        [line] = proc.stderr.splitlines()
        assert line.startswith(f"rejected: {faults / 'records' / f'{name}.json'}: patient {patient}: field {field}: ")


def test_not_finite_and_other_hostile_numbers_are_named(tmp_path):
    """Numbers no record can hold: NaN and Infinity (JSON and YAML), 1e400, and values past
    clingo's integers in every numeric field."""
    lines = ['{"id": "NAN", "screening_date": "2026-03-01", "observations": '
             '[{"code": "anc", "value": NaN, "unit": "10*9/L", "date": "2026-02-20"}]}',
             '{"id": "INF", "screening_date": "2026-03-01", "observations": '
             '[{"code": "anc", "value": 1e400, "unit": "10*9/L", "date": "2026-02-20"}]}',
             json.dumps({"id": "BIGCHANGE", "screening_date": "2026-03-01", "medications": [
                 {"drug": "prednisone", "dose": 5, "unit": "mg", "start": "2025-01-01",
                  "dose_changes": [{"date": "2025-06-01", "dose": 1e308}]}]}),
             json.dumps({"id": "BIGRANGE", "screening_date": "2026-03-01", "observations": [
                 {"code": "alt", "value": 30, "unit": "U/L", "date": "2026-02-20",
                  "reference_range": {"high": 1e308, "unit": "U/L"}}]}),
             json.dumps({"id": "BIGTOTAL", "screening_date": "2026-03-01",
                         "sledai2k": [{"date": "2026-02-20", "total": 10**30}]}),
             json.dumps(GOOD)]
    src = tmp_path / "n.jsonl"
    src.write_text("\n".join(lines) + "\n")
    (tmp_path / "inf.yaml").write_text("id: YINF\nscreening_date: 2026-03-01\nobservations:\n"
                                       "- {code: anc, value: .inf, unit: 10*9/L, date: 2026-02-20}\n")
    proc = cli("cohort", src, tmp_path / "inf.yaml", "--results", tmp_path / "r.jsonl")
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    rows = rows_of(tmp_path / "r.jsonl")
    assert len(rows) == 7
    assert [r["patient"] for r in rows if not r.get("error")] == ["GOOD"]
    for r in rows[:5] + rows[6:]:
        assert r["error"]["field"], r


# ---------------------------------------------------------------------------------------
# 2. Inputs that hang or exhaust memory

def _bomb_levels(indent: str, first: str) -> list[str]:
    lines = [f"{indent}- &a {first}"]
    prev = "a"
    for n in "bcdefghi":
        lines.append(f"{indent}- &{n} {{url: u, extension: [{', '.join(['*' + prev] * 9)}]}}")
        prev = n
    return lines


def test_yaml_alias_bomb_in_a_fhir_bundle_is_refused_and_the_folder_goes_on(tmp_path):
    """A 700-byte Bundle whose aliases expand to 43 million extensions (the issue's ran
    300 s and took 2.8 GB)."""
    folder = tmp_path / "in"
    folder.mkdir()
    lines = ["resourceType: Bundle", "type: collection", "x:"] + _bomb_levels("  ", "{url: u, valueString: s}")
    lines += ["entry:", "- resource:", "    resourceType: Patient", "    id: BOMB", "    gender: female",
              "    birthDate: '1980-01-01'", "    extension: [*i]"]
    (folder / "bomb.yaml").write_text("\n".join(lines) + "\n")
    (folder / "good.json").write_text(json.dumps(GOOD))
    t0 = time.monotonic()
    proc = cli("screen", folder, "--format", "json", timeout=60, memory=3 * 2**30)
    no_traceback(proc)
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert [r["patient"] for r in doc["results"]] == ["GOOD"]
    [err] = doc["errors"]
    assert err["file"] == str(folder / "bomb.yaml") and "alias" in err["reason"], err


def test_yaml_alias_bomb_in_a_native_record_is_refused(tmp_path):
    lines = ["id: BOMB", "screening_date: 2026-03-01", "notes:"] + _bomb_levels("  ", "x")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    proc = cli("screen", tmp_path / "bomb.yaml", "--format", "json", timeout=60)
    no_traceback(proc)
    [err] = json.loads(proc.stdout)["errors"]
    assert "alias" in err["reason"] and "line" in err["reason"], err


def test_deeply_nested_yaml_is_refused(tmp_path):
    (tmp_path / "deep.yaml").write_text("id: DEEP\nscreening_date: 2026-03-01\nnotes: " + "[" * 100_000 + "]" * 100_000)
    proc = cli("screen", tmp_path / "deep.yaml", "--format", "json", timeout=60)
    no_traceback(proc)
    assert proc.returncode == 1
    [err] = json.loads(proc.stdout)["errors"]
    assert "nested deeper than" in err["reason"], err


@pytest.fixture
def folder_with(tmp_path):
    def make(name: str, special) -> Path:
        folder = tmp_path / "in"
        folder.mkdir()
        (folder / "good.json").write_text(json.dumps(GOOD))
        special(folder / name)
        return folder
    return make


@pytest.mark.parametrize("command", ["screen", "cohort"])
@pytest.mark.parametrize("kind,make,words", [
    ("fifo", os.mkfifo, "a named pipe"),
    ("dev-zero", lambda p: p.symlink_to("/dev/zero"), "a character device"),
])
def test_a_file_in_a_folder_that_is_not_regular_is_named(folder_with, command, kind, make, words):
    folder = folder_with("x.json", make)
    proc = cli(command, folder, "--format", "json", timeout=60, memory=3 * 2**30)
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    [err] = doc["errors"]
    assert err["file"] == str(folder / "x.json") and "not a regular file" in err["reason"] and words in err["reason"], err


def test_a_bulk_export_with_a_fifo_and_a_deep_line_is_read_around_them(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    (export / "Patient.ndjson").write_text(
        json.dumps({"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-01-01"}) + "\n"
        + '{"resourceType": "Patient", "id": "p2", "x": ' + "[" * 5000 + "]" * 5000 + "}\n")
    os.mkfifo(export / "Observation.ndjson")
    (export / "Condition.ndjson").symlink_to("/dev/zero")
    proc = cli("cohort", export, "--format", "json", "--screening-date", "2026-03-01", timeout=60,
               memory=3 * 2**30)
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    reasons = {e["file"]: e["reason"] for e in doc["errors"]}
    assert "not a regular file" in reasons[str(export / "Observation.ndjson")]
    assert "not a regular file" in reasons[str(export / "Condition.ndjson")]
    assert any("nested deeper than" in r for f, r in reasons.items() if f.startswith(str(export / "Patient.ndjson")))
    assert doc["screened"] == 1


@pytest.mark.parametrize("command", ["screen", "cohort"])
def test_json_lines_in_a_folder_are_read(tmp_path, command):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.json").write_text(json.dumps(GOOD))
    (folder / "sub" / "more.jsonl").write_text(json.dumps({**GOOD, "id": "L1"}) + "\n" + json.dumps({**GOOD, "id": "L2"}) + "\n")
    (folder / "README.txt").write_text("not a record")
    out = tmp_path / "r.jsonl"
    args = ["--format", "json"] if command == "screen" else ["--results", out]
    proc = cli(command, folder, *args)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    if command == "screen":
        patients = [r["patient"] for r in json.loads(proc.stdout)["results"]]
    else:
        patients = [r["patient"] for r in rows_of(out)]
    assert patients == ["GOOD", "L1", "L2"]
    assert f"note: {folder}: 1 file not read (not a record file: .yaml .yml .json .jsonl .ndjson): README.txt" \
        in proc.stderr


def test_a_bulk_export_inside_a_folder_is_read_as_an_export(tmp_path):
    folder = tmp_path / "in"
    (folder / "export").mkdir(parents=True)
    (folder / "good.json").write_text(json.dumps(GOOD))
    (folder / "export" / "Patient.ndjson").write_text(
        json.dumps({"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-01-01"}) + "\n")
    proc = cli("cohort", folder, "--results", tmp_path / "r.jsonl", "--screening-date", "2026-03-01")
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert [r["patient"] for r in rows_of(tmp_path / "r.jsonl")] == ["p1", "GOOD"]


def test_a_file_over_the_size_limit_is_named(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    big = {**GOOD, "id": "BIG", "notes": "x" * (2 * 2**20)}
    (folder / "big.json").write_text(json.dumps(big))
    (folder / "good.json").write_text(json.dumps(GOOD))
    (folder / "l.jsonl").write_text(json.dumps({**big, "id": "BIGLINE"}) + "\n" + json.dumps({**GOOD, "id": "G2"}) + "\n")
    proc = cli("cohort", folder, "--results", tmp_path / "r.jsonl", env={"PYASP_SCREEN_MAX_RECORD_MB": "1"})
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    rows = rows_of(tmp_path / "r.jsonl")
    errors = {r["file"]: r["error"]["reason"] for r in rows if r.get("error")}
    assert set(errors) == {str(folder / "big.json"), f"{folder / 'l.jsonl'}:1"}
    assert all("more than 1 MiB" in reason and "PYASP_SCREEN_MAX_RECORD_MB" in reason for reason in errors.values())
    assert sorted(r["patient"] for r in rows if not r.get("error")) == ["G2", "GOOD"]


def test_a_record_given_as_a_pipe_is_read(tmp_path):
    """A pipe named on the command line (bash's <(...)) is the user's choice: it is read."""
    (tmp_path / "g.json").write_text(json.dumps(GOOD))
    proc = subprocess.run(["bash", "-c", f"{sys.executable} -m pyasp_screen.cli screen "
                           f"<(cat {tmp_path / 'g.json'}) --format json"],
                          capture_output=True, text=True, timeout=60)
    no_traceback(proc)
    assert [r["patient"] for r in json.loads(proc.stdout)["results"]] == ["GOOD"], proc.stderr


def test_file_names_that_are_not_utf8_are_shown_escaped(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), b"bad\xff.json"), "w") as fh:
        fh.write(json.dumps(GOOD))
    proc = cli("cohort", folder, "--results", tmp_path / "r.jsonl")
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    [row] = rows_of(tmp_path / "r.jsonl")
    assert row["file"] == f"{folder}/bad\\xff.json"


# ---------------------------------------------------------------------------------------
# 4. Grounding that never ends

@pytest.fixture(scope="module")
def loop_kb(tmp_path_factory) -> Path:
    """A knowledge base made by `new`, plus one per-patient rule that grounds without end."""
    base = tmp_path_factory.mktemp("loopkb")
    proc = cli("new", base / "loopkb", cwd=base)
    assert proc.returncode == 0, proc.stderr
    with open(base / "loopkb" / "criteria.lp", "a") as fh:
        fh.write("\nq(P,0) :- patient(P).\nq(P,X+1) :- q(P,X).\n")
    return base / "loopkb"


LIMITS = {"PYASP_SCREEN_GROUND_SECONDS": "4", "PYASP_SCREEN_GROUND_MEMORY_MB": "300"}


def _ends_with_a_grounding_error(proc, kb: Path) -> None:
    no_traceback(proc)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "knowledge base loopkb" in lines[0] and "grounding" in lines[0], lines[0]


@pytest.mark.parametrize("command", [
    ["screen", "{case}"],
    ["explain", "{case}"],
    ["graph", "{case}", "-o", "{tmp}/g.json"],
    ["whatif", "{case}", "--set", "anc=2.0"],
    ["test", "{kb}"],
    ["cohort", "{cases}"],
    ["cohort", "{cases}", "--jobs", "2", "--batch-size", "1"],
    ["diff", "{cases}", "--against-param", "anc_min=2.0"],
], ids=lambda c: "-".join(c[:1] + [a for a in c[2:] if a.startswith("--j")]))
def test_a_rule_that_grounds_without_end_stops_every_command(loop_kb, tmp_path, command):
    values = {"case": loop_kb / "cases" / "eligible.yaml", "cases": loop_kb / "cases", "kb": loop_kb, "tmp": tmp_path}
    args = [a.format(**values) for a in command]
    if command[0] != "test":
        args += ["--kb", str(loop_kb)]
    t0 = time.monotonic()
    proc = cli(*args, env=LIMITS, timeout=60)
    _ends_with_a_grounding_error(proc, loop_kb)
    assert time.monotonic() - t0 < 30


def test_with_the_default_limits_it_ends_in_a_one_line_error_well_before_memory_runs_out(loop_kb):
    """The issue's run ended in MemoryError: bad_alloc after 90 s."""
    t0 = time.monotonic()
    proc = cli("screen", loop_kb / "cases" / "eligible.yaml", "--kb", loop_kb, timeout=90)
    _ends_with_a_grounding_error(proc, loop_kb)
    assert time.monotonic() - t0 < 60


# ---------------------------------------------------------------------------------------
# 5. One results file, one run

class _lock_held:
    """The lock a run writing ``path`` holds (an flock on the file or Parquet folder)."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def close(self) -> None:
        os.close(self.fd)


@pytest.mark.parametrize("flag", ["--resume", "--overwrite"])
@pytest.mark.parametrize("name", ["r.jsonl", "r.csv", "r.parquet"])
def test_a_results_file_in_use_by_another_run_is_refused(tmp_path, flag, name):
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in synthetic_cohort(30, seed=2)))
    out = tmp_path / name
    proc = cli("cohort", src, "--results", out)
    assert proc.returncode == 0, proc.stderr
    before = sorted((p.name, p.read_bytes()) for p in (out.iterdir() if out.is_dir() else [out]))
    held = _lock_held(out)  # what a run that writes it holds
    try:
        proc = cli("cohort", src, "--results", out, flag)
    finally:
        held.close()
    no_traceback(proc)
    assert proc.returncode == 2, proc.stderr
    assert f"{out} is in use by another run" in proc.stderr, proc.stderr
    assert sorted((p.name, p.read_bytes()) for p in (out.iterdir() if out.is_dir() else [out])) == before


@pytest.mark.parametrize("flag", ["--resume", "--overwrite"])
def test_two_runs_at_once_on_one_results_file_cannot_both_write(tmp_path, flag):
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in synthetic_cohort(2000, seed=3)))
    out = tmp_path / "r.jsonl"
    cmd = [sys.executable, "-m", "pyasp_screen.cli", "cohort", str(src), "--results", str(out),
           "--jobs", "1", "--batch-size", "20", flag]
    first = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size == 0):
        time.sleep(0.05)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2 and "is in use by another run" in second.stderr, second.stderr
    rows = rows_of(out)
    assert [r["seq"] for r in rows] == list(range(2000))


def test_resumed_rows_are_those_of_an_uninterrupted_run_duplicates_included(tmp_path):
    pts = synthetic_cohort(90, seed=9)
    lines = pts[:20] + [pts[5]] + pts[20:70] + [pts[3], pts[60]] + pts[70:]
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in lines))
    for name in ("r.jsonl", "r.csv"):
        out = tmp_path / name
        proc = cli("cohort", src, "--results", out, "--batch-size", "10", "--jobs", "1")
        assert proc.returncode == 1, proc.stderr
        whole = out.read_bytes()
        assert sum(b"duplicate patient id" in line for line in whole.splitlines()) == 3
        cut = whole.splitlines(keepends=True)
        keep = 41 if name == "r.csv" else 40  # a header line, then the rows
        out.write_bytes(b"".join(cut[:keep]))
        proc = cli("cohort", src, "--results", out, "--batch-size", "10", "--jobs", "1", "--resume")
        assert proc.returncode == 1, proc.stderr
        assert "40 patient(s) already done" in proc.stderr
        assert out.read_bytes() == whole


@pytest.mark.parametrize("name", ["r.jsonl", "r.csv"])
def test_a_run_stopped_before_its_first_row_and_its_record_resumes_afresh(tmp_path, name):
    """Killed between emptying the file and writing its run record: nothing to keep."""
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in synthetic_cohort(20, seed=2)))
    out = tmp_path / name
    out.write_bytes(b"")
    proc = cli("cohort", src, "--results", out, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_bytes().splitlines()) == 20 + name.endswith(".csv")
