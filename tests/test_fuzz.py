"""Fuzzing the readers (issue 13): valid records mutated as an attacker would (hostile
values put anywhere in the structure, fields dropped or invented, bytes flipped, cut,
repeated, hostile JSON and YAML tokens spliced in), read as JSON Lines and as record files
by ``cohort``. Whatever a record holds, the run ends normally (exit 0 or 1), with no
traceback, and the results file has exactly one row per input, each error on one line.

PYASP_SCREEN_FUZZ_EXAMPLES sets the number of hypothesis examples of each test (default 25;
each example is a cohort of 12 mutated lines, or 8 mutated files).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyasp_screen.cli import main

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from cohort import paths_of, replaced, synthetic_cohort  # noqa: E402

EXAMPLES = int(os.environ.get("PYASP_SCREEN_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

BUNDLE = {"resourceType": "Bundle", "type": "collection", "entry": [
    {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1", "gender": "female",
                                            "birthDate": "1980-01-01"}},
    {"fullUrl": "urn:uuid:o1", "resource": {
        "resourceType": "Observation", "id": "o1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
        "subject": {"reference": "urn:uuid:p1"}, "effectiveDateTime": "2026-02-20",
        "valueQuantity": {"value": 2.1, "unit": "10*9/L", "system": "http://unitsofmeasure.org",
                          "code": "10*9/L"}}}]}
BASES = synthetic_cohort(20, seed=13) + [BUNDLE]


# Nesting too deep to build and serialize as Python objects (json.dumps would hit the
# recursion limit, at a depth that depends on the caller's stack): a placeholder, replaced
# in the serialized text by the nesting itself.
DEEP = {f"@@DEEP{n}@@": b"[" * n + b"]" * n for n in (1100, 70)}


def _nest(text: bytes) -> bytes:
    for key, raw in DEEP.items():
        for quoted in (f'"{key}"', f"'{key}'", key):
            text = text.replace(quoted.encode(), raw)
    return text


HOSTILE = [
    *DEEP, {"a": {"b": {"c": "@@DEEP70@@"}}},
    "\ud800", "x\udfffy", "N\nL", "\x00", "\u2028", "\x1b[31m", "A" * 5000, "",
    1e308, -1e308, float("nan"), float("inf"), -float("inf"), 10 ** 30, -(10 ** 30), 0, -1, 2 ** 31, 2 ** 63,
    None, True, False, [], {}, [None], {"": None},
    "2026-02-30", "0001-01-01", "9999-12-31", "2026-13-01", "1e308", "NaN",
    "prednisolon", "anc", "10*9/L", "furlongs", "mg/dL", "loinc", "rxnorm",
    {"resourceType": "Bundle"}, {"resourceType": "Patient", "id": "x"},
]
TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"\"\\ud800\"", b"\"\\udc00x\"", b"[" * 1200,
          b"{" * 300, b"\"\\u0000\"", b"\xff\xfe", b"\xc3", b"\xef\xbb\xbf", b"9" * 5000, b"&a", b"*a",
          b"!!python/object:os.system", b"!!binary", b"<<: *a", b"---", b"\t", b"\r", b"\\", b"\"",
          b"{\"id\": \"DUP\"}", b"\x00"]




def _delete(node: object, path: tuple) -> object:
    if len(path) == 1:
        if isinstance(node, dict):
            return {k: v for k, v in node.items() if k != path[0]}
        return [v for i, v in enumerate(node) if i != path[0]]
    head = path[0]
    if isinstance(node, dict):
        return {**node, head: _delete(node[head], path[1:])}
    copy = list(node)
    copy[head] = _delete(copy[head], path[1:])
    return copy


@st.composite
def mutated_record(draw) -> object:
    """A base record with one to three structural mutations."""
    rec: object = draw(st.sampled_from(BASES))
    for _ in range(draw(st.integers(1, 3))):
        paths = paths_of(rec)
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if kind == "replace" and path:
            rec = replaced(rec, path, draw(st.sampled_from(HOSTILE)))
        elif kind == "delete" and path:
            rec = _delete(rec, path)
        else:
            target = rec
            for p in path:
                target = target[p]
            if isinstance(target, dict):
                key = draw(st.sampled_from(["colour", "id", "\ud800", "x\ny", "", "value", "resourceType"]))
                rec = replaced(rec, path, {**target, key: draw(st.sampled_from(HOSTILE))})
            elif isinstance(target, list):
                rec = replaced(rec, path, target + [draw(st.sampled_from(HOSTILE))])
    return rec


@st.composite
def mutated_bytes(draw, data: bytes, *, newline_free: bool, keep_first: bool) -> bytes:
    """``data`` with zero to three byte-level mutations: flips, cuts, repeats, hostile
    tokens spliced in."""
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        lo = 1 if keep_first and len(data) > 1 else 0
        i = draw(st.integers(lo, len(data)))
        kind = draw(st.sampled_from(["flip", "cut", "repeat", "token", "token"]))
        if kind == "flip" and i < len(data):
            data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
        elif kind == "cut":
            data = data[:i] + data[i + draw(st.integers(1, 64)):]
        elif kind == "repeat":
            data = data[:i] + data[i:i + draw(st.integers(1, 64))] * draw(st.integers(2, 50)) + data[i:]
        else:
            data = data[:i] + draw(st.sampled_from(TOKENS)) + data[i:]
    if newline_free:
        data = data.replace(b"\n", b" ")
    return data


def _json(rec: object) -> bytes:
    return _nest(json.dumps(rec).encode("ascii"))


def _run(*args) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output, result.output[-3000:]
    assert result.exit_code in (0, 1), result.output[-3000:]
    return result


def _rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    for r in rows:
        if r.get("error"):
            message = r["error"]["message"]
            assert "\n" not in message and "\r" not in message and "Traceback" not in message, message
            message.encode("utf-8")  # every output can encode it
        elif r.get("patient") is not None:
            r["patient"].encode("utf-8")
    return rows


@FUZZ
@given(st.lists(mutated_record(), min_size=12, max_size=12), st.data())
def test_mutated_json_lines_give_one_row_each_and_no_traceback(tmp_path_factory, records, data):
    tmp = tmp_path_factory.mktemp("fuzz-jsonl")
    lines = [data.draw(mutated_bytes(_json(r), newline_free=True, keep_first=False)) for r in records]
    src = tmp / "fuzz.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp / "rows.jsonl"
    _run("cohort", src, "--results", out, "--batch-size", "5", "--jobs", "1")
    rows = _rows(out)
    expected = [f"{src}:{n}" for n, line in enumerate(lines, 1) if line.strip()]
    assert [r["file"] for r in rows] == expected


def _file_bytes(rec: object, suffix: str) -> bytes:
    if suffix == ".json":
        return _json(rec)
    try:
        text = yaml.safe_dump(rec, allow_unicode=False, sort_keys=False, width=10**6)
    except yaml.YAMLError:  # a value YAML cannot write (a lone surrogate): as JSON, which YAML reads
        return _json(rec)
    return _nest(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.lists(st.tuples(mutated_record(), st.sampled_from([".json", ".yaml"])), min_size=8, max_size=8),
       st.data())
def test_mutated_record_files_give_one_row_each_and_no_traceback(tmp_path_factory, files, data):
    tmp = tmp_path_factory.mktemp("fuzz-files")
    folder = tmp / "in"
    folder.mkdir()
    names = []
    for i, (rec, suffix) in enumerate(files):
        raw = data.draw(mutated_bytes(_file_bytes(rec, suffix), newline_free=False, keep_first=True))
        if isinstance(rec, dict) and "patients" in rec:
            continue  # {"patients": [...]} is a list of records, several rows
        name = folder / f"r{i:02d}{suffix}"
        name.write_bytes(raw)
        names.append(name)
    out = tmp / "rows.jsonl"
    _run("cohort", folder, "--results", out, "--batch-size", "3", "--jobs", "1")
    rows = _rows(out)
    assert [r["file"] for r in rows] == [str(n) for n in names]
