"""pyasp-screen serve, through HTTP but without a browser (tests/test_web_browser.py drives
Chromium): the JSON API answers exactly what the CLI prints, every bad input gets the CLI's
one-line error and a 4xx (never a traceback), uploads leave nothing behind, the records
folder cannot be escaped."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from pyasp_screen.cli import main
from pyasp_screen.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "kb" / "ct1190b" / "cases"
FHIR = ROOT / "tests" / "data" / "fhir"
EXCLUDED, UNDETERMINED, ELIGIBLE = "sle-in-7b-not-met.yaml", "sle-in-1-unknown.yaml", "sle-eligible.yaml"
BUNDLE = "Angelic_Mueller_29d755a6-32fa-482e-8fdd-081300209df8.json"

BAD_UNIT_BUNDLE = {"resourceType": "Bundle", "type": "collection", "entry": [
    {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1990-01-01"}},
    {"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                  "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
                  "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-02-20",
                  "valueQuantity": {"value": 1.5, "unit": "furlongs", "system": "http://unitsofmeasure.org",
                                    "code": "furlongs"}}}]}


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(records=CASES, allowed_hosts=["testserver"]), raise_server_exceptions=False)


def cli(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run the CLI in-process in ``cwd`` (so a file is named as the upload is)."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        os.chdir(old)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def here(tmp_path):
    """A folder holding copies of the records used below under their own names."""
    for name in (EXCLUDED, UNDETERMINED, ELIGIBLE):
        shutil.copy(CASES / name, tmp_path / name)
    shutil.copy(FHIR / BUNDLE, tmp_path / BUNDLE)
    (tmp_path / "bad-unit.json").write_text(json.dumps(BAD_UNIT_BUNDLE))
    native = _yaml(CASES / EXCLUDED)
    next(o for o in native["observations"] if o.get("unit"))["unit"] = "furlongs"
    (tmp_path / "bad-unit-native.json").write_text(json.dumps(native))
    (tmp_path / "malformed.yaml").write_text("id: X\nobservations: [unclosed\n")
    return tmp_path


# ---------------------------------------------------------------------------------------
# The API answers what the CLI prints
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [EXCLUDED, UNDETERMINED, ELIGIBLE, BUNDLE])
def test_api_screen_and_explain_are_the_cli_output_byte_for_byte(client, here, name):
    body = (here / name).read_bytes()
    for command, extra in (("screen", ["--param", "crcl_min=40"]), ("explain", ["--max", "3"])):
        code, out, _ = cli([command, name, "--format", "json", *extra], here)
        query = "&".join(["name=" + name] + ["param=crcl_min=40" if command == "screen" else "max=3"])
        r = client.post(f"/api/{command}?{query}", content=body)
        assert (r.status_code, code) == (200, 0)
        assert r.headers["content-type"].startswith("application/json")
        assert r.content == out.encode("utf-8"), f"{command} {name}: the API differs from the CLI"


@pytest.mark.parametrize("name,args", [
    (EXCLUDED, ["--set", "anc=1.2"]),
    (UNDETERMINED, ["--set", "hb=11g/dL", "--unset", "inr", "--param", "crcl_min=40"]),
    (ELIGIBLE, ["--param", "sle_hb_min=120"]),
])
def test_api_whatif_is_the_cli_output_byte_for_byte(client, here, name, args):
    code, out, _ = cli(["whatif", name, *args, "--format", "json"], here)
    assert code == 0
    query = [f"{k.lstrip('-')}={v}" for k, v in zip(args[::2], args[1::2])]
    r = client.post("/api/whatif?" + "&".join(query), content=(here / name).read_bytes())
    assert r.status_code == 200
    assert r.content == out.encode("utf-8")


def test_api_whatif_changes_the_verdict(client):
    r = client.post("/api/whatif?set=anc=1.2", content=(CASES / EXCLUDED).read_bytes())
    doc = r.json()
    assert (doc["before"]["overall"], doc["after"]["overall"]) == ("ineligible", "eligible")
    assert {"id": "SLE-IN-7b", "before": "not_met", "after": "met"} in doc["criteria_changed"]


@pytest.mark.parametrize("name", [EXCLUDED, BUNDLE])
def test_the_native_record_a_page_carries_screens_as_the_file_does(client, here, name):
    """The page carries the validated record (native JSON) between requests instead of the
    upload: screening that record answers what the CLI answers for the original file, a
    FHIR Bundle included."""
    from pyasp_screen.inputs.files import load_file
    from pyasp_screen.web.service import native_json

    [loaded] = list(load_file(here / name))
    for command in ("screen", "explain"):
        _, out, _ = cli([command, name, "--format", "json"], here)
        r = client.post(f"/api/{command}", files={"record": (None, native_json(loaded.record)),
                                                 "name": (None, name)})
        assert r.status_code == 200
        assert r.content == out.encode("utf-8")


def test_api_graph_is_the_cli_graph(client, here):
    if shutil.which("dot") is None:
        pytest.fail("Graphviz 'dot' is not installed (apt-get install graphviz; .ci/run installs it)")
    code, _, _ = cli(["graph", EXCLUDED, "-o", "g.svg"], here)
    assert code == 0
    r = client.post(f"/api/graph?name={EXCLUDED}", content=(here / EXCLUDED).read_bytes())
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    cli_svg = (here / "g.svg").read_text(encoding="utf-8")
    assert r.text == cli_svg[cli_svg.index("<svg"):]


def test_api_questionnaire_is_what_explain_questionnaire_writes(client, here):
    code, _, _ = cli(["explain", UNDETERMINED, "--questionnaire", "q.json"], here)
    assert code == 0
    r = client.post(f"/api/questionnaire?name={UNDETERMINED}", content=(here / UNDETERMINED).read_bytes())
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    assert r.content == (here / "q.json").read_bytes()
    assert r.json()["resourceType"] == "Questionnaire" and r.json()["item"]
    page = client.get(f"/record?path={UNDETERMINED}").text
    assert "Questionnaire of the missing data" in page
    assert "Questionnaire of the missing data" not in client.get(f"/record?path={EXCLUDED}").text
    bad = client.post("/api/questionnaire?name=m.yaml", content=b"id: [")
    assert bad.status_code == 422 and bad.json()["error"].startswith("rejected: m.yaml")


def test_api_accepts_a_multipart_upload_and_curl_default_content_type(client, here):
    _, out, _ = cli(["screen", EXCLUDED, "--format", "json"], here)
    data = (here / EXCLUDED).read_bytes()
    r = client.post("/api/screen", files={"file": (EXCLUDED, data, "application/octet-stream")})
    assert r.content == out.encode()
    # curl --data-binary @file sends application/x-www-form-urlencoded: still the record
    r = client.post(f"/api/screen?name={EXCLUDED}", content=data,
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.content == out.encode()


# ---------------------------------------------------------------------------------------
# Bad input: the CLI's one line, a 4xx, never a traceback
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,status", [("malformed.yaml", 422), ("bad-unit-native.json", 422)])
def test_a_rejected_record_gets_the_cli_line_from_the_api_and_the_page(client, here, name, status):
    code, out, err = cli(["screen", name, "--format", "json"], here)
    assert code == 1
    line = err.strip().removeprefix("rejected: ")
    r = client.post(f"/api/screen?name={name}", content=(here / name).read_bytes())
    assert r.status_code == status
    assert r.content == out.encode()  # the CLI document, its errors[] naming the record
    assert r.json()["errors"][0]["message"] == line
    page = client.post("/open", files={"file": (name, (here / name).read_bytes())})
    assert page.status_code == status
    assert f"rejected: {line}" in _text(page.text)
    assert "Traceback" not in page.text


def test_a_fhir_result_with_an_unknown_unit_is_named_as_the_cli_names_it(client, here):
    """The FHIR reader does not use a result whose unit is not UCUM and says so in a note
    (the record is still screened): the API and the page say what the CLI says."""
    code, out, _ = cli(["screen", "bad-unit.json", "--format", "json"], here)
    r = client.post("/api/screen?name=bad-unit.json", content=(here / "bad-unit.json").read_bytes())
    assert (r.status_code, code) == (200, 0) and r.content == out.encode()
    [note] = [n for n in r.json()["results"][0]["notes"] if "furlongs" in n]
    assert "Observation/o1" in note and "not a UCUM unit" in note and "not used" in note
    page = client.post("/open", files={"file": ("bad-unit.json", (here / "bad-unit.json").read_bytes())})
    assert page.status_code == 200 and note in _text(page.text)


@pytest.mark.parametrize("body,reason", [
    (b"- 1\n- 2\n", "a record must be a mapping, got int"),
    (b"just some words\n", "a record must be a mapping, got str"),
    (b'{"resourceType": "Patient", "id": "x"}', "unknown field"),
    (b"\xff\xfe\x00binary", "not a text file"),
])
def test_a_non_record_is_rejected_in_one_line(client, body, reason):
    r = client.post("/api/screen?name=thing.yaml", content=body)
    assert r.status_code == 422
    messages = [e["message"] for e in r.json()["errors"]]
    assert messages and all(m.startswith("thing.yaml: ") and "\n" not in m for m in messages)
    assert any(reason in m for m in messages), messages


def test_a_body_over_the_limit_is_refused_with_413():
    small = TestClient(create_app(max_upload=1000, allowed_hosts=["testserver"]), raise_server_exceptions=False)
    big = b"id: X\n" + b"#" * 5000
    r = small.post("/api/screen", content=big)
    assert r.status_code == 413
    assert r.json() == {"error": "the request is larger than the limit of 0.000953674 MB "
                                 "(pyasp-screen serve --max-upload MB raises it)"}

    def chunks():  # no Content-Length: refused once the limit is passed
        for _ in range(10):
            yield b"#" * 500

    r = small.post("/api/explain", content=chunks())
    assert r.status_code == 413 and "larger than the limit" in r.json()["error"]
    page = small.post("/open", files={"file": ("big.yaml", big)})
    assert page.status_code == 413
    assert "larger than the limit" in page.text and "Traceback" not in page.text


def test_the_default_limit_refuses_a_huge_body(client):
    r = client.post("/api/screen", content=b"#" * (17 << 20))
    assert r.status_code == 413 and "16 MB" in r.json()["error"]


@pytest.mark.parametrize("url,body,status,message", [
    ("/api/screen", b"", 400, "the request holds no record"),
    ("/api/screen?param=crcl_min=abc", None, 400, "--param crcl_min: 'abc' is not a number"),
    ("/api/screen?param=nonsense=1", None, 400, "nonsense"),
    ("/api/screen?param=novalue", None, 400, "is not NAME=VALUE"),
    ("/api/explain?max=0", None, 400, "--max 0: not in the range 1 to 1000"),
    ("/api/screen?screening_date=2026-02-30", None, 400, "not a date YYYY-MM-DD"),
    ("/api/whatif", None, 400, "nothing to change"),
    ("/api/whatif?set=ancc=1", None, 400, "unknown finding 'ancc' (did you mean anc"),
    ("/api/whatif?set=anc=lots", None, 400, "expected a number"),
])
def test_usage_errors_are_400_with_one_line(client, url, body, status, message):
    r = client.post(url, content=(CASES / EXCLUDED).read_bytes() if body is None else body)
    assert r.status_code == status
    error = r.json()["error"]
    assert message in error and "\n" not in error


def test_whatif_of_a_rejected_record_is_422(client):
    r = client.post("/api/whatif?set=anc=1.2&name=m.yaml", content=b"id: [")
    assert r.status_code == 422
    assert r.json()["error"].startswith("rejected: m.yaml: patient ?: malformed YAML")


def test_whatif_cli_messages_match(client, here):
    """The 400 message is the CLI's usage-error text."""
    result = CliRunner().invoke(main, ["whatif", str(CASES / EXCLUDED), "--set", "ancc=1"])
    assert result.exit_code == 2
    r = client.post("/api/whatif?set=ancc=1", content=(CASES / EXCLUDED).read_bytes())
    assert r.json()["error"] in result.stderr


def test_an_unexpected_failure_is_one_line_not_a_traceback(monkeypatch):
    from pyasp_screen.web import service

    def boom(*a, **k):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(service, "screen_document", boom)
    c = TestClient(create_app(allowed_hosts=["testserver"]), raise_server_exceptions=False)
    r = c.post("/api/screen", content=(CASES / EXCLUDED).read_bytes())
    assert r.status_code == 500
    assert r.json() == {"error": "internal error: RuntimeError: disk on fire second line "
                                 "(the server's log has the details)"}


# ---------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------

def _text(html: str) -> str:
    import html as h
    import re

    return h.unescape(re.sub(r"<[^>]+>", "", html))


def test_index_lists_the_records_folder(client):
    r = client.get("/")
    assert r.status_code == 200
    assert EXCLUDED in r.text and "expected.yaml" not in r.text


@pytest.mark.parametrize("name,verdict", [(EXCLUDED, "ineligible"), (UNDETERMINED, "undetermined"),
                                          (ELIGIBLE, "eligible")])
def test_patient_page_shows_verdict_criteria_sentences_and_graph(client, name, verdict):
    from pyasp_screen.knowledge.kb import load_kb

    r = client.get(f"/record?path={name}")
    assert r.status_code == 200
    assert f'id="overall-verdict" data-verdict="{verdict}"' in r.text
    text = _text(r.text)
    for c in load_kb().criteria:  # every criterion, with its registry sentence
        assert c.id in text and c.sentence in text
    assert "<svg" in r.text and 'class="node"' in r.text  # the graph, drawn by Graphviz


def test_at_a_glance_answers_first(client):
    excluded = _text(client.get(f"/record?path={EXCLUDED}").text)
    glance = excluded[excluded.index("At a glance"):excluded.index("What if")]
    assert "Excluded by" in glance and "ANC 0.9 x10^9/L (2026-02-24)" in glance
    assert "Nearest miss" in glance and "eligible for SLE if ANC >= 1 x10^9/L" in glance
    undetermined = _text(client.get(f"/record?path={UNDETERMINED}").text)
    glance = undetermined[undetermined.index("At a glance"):undetermined.index("What if")]
    assert "Measure next" in glance and "onset 6 completed months before screening" in glance


def test_whatif_form_without_javascript(client):
    page = client.get(f"/record?path={EXCLUDED}")
    record = _hidden(page.text, "record")
    r = client.post("/whatif", data={"name": EXCLUDED, "record": record, "set.finding": ["anc", ""],
                                     "set.value": ["1.2", ""], "unset": "", "param.crcl_min": "50"})
    assert r.status_code == 200
    text = _text(r.text)
    assert "What if anc=1.2:" in text  # crcl_min=50 is the default: not an edit
    assert "SLE-IN-7b:" in text  # among the criteria whose status changes
    fragment = client.post("/whatif", headers={"X-Fragment": "1"},
                           data={"name": EXCLUDED, "record": record, "param.anc_min": "0.5"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'data-after="overall">eligible<' in fragment.text
    bad = client.post("/whatif", headers={"X-Fragment": "1"},
                      data={"name": EXCLUDED, "record": record, "set.finding": "ancc", "set.value": "1"})
    assert bad.status_code == 400 and "unknown finding &#39;ancc&#39;" in bad.text


def test_the_page_whatif_answers_what_the_api_answers(client):
    page = client.get(f"/record?path={EXCLUDED}")
    record = _hidden(page.text, "record")
    api = client.post("/api/whatif?set=anc=1.2", files={"record": (None, record), "name": (None, EXCLUDED)}).json()
    direct = client.post("/api/whatif?set=anc=1.2", content=(CASES / EXCLUDED).read_bytes()).json()
    assert api == direct


def _hidden(html: str, name: str) -> str:
    import html as h
    import re

    return h.unescape(re.search(rf'name="{name}" value="([^"]*)"', html).group(1))


def test_a_file_of_several_records_lists_the_others(client, tmp_path):
    recs = [json.loads(json.dumps(_yaml(CASES / n))) for n in (EXCLUDED, ELIGIBLE)]
    r = client.post("/open", files={"file": ("two.json", json.dumps(recs))})
    assert r.status_code == 200
    assert "two.json holds 2 patients" in r.text and "SLE-ELIGIBLE" in r.text


def test_a_file_of_many_records_links_the_first_hundred(client):
    base = _yaml(CASES / EXCLUDED)
    recs = [{**base, "id": f"P{i:03d}"} for i in range(150)]
    r = client.post("/open", files={"file": ("many.json", json.dumps(recs))})
    assert r.status_code == 200
    assert "many.json holds 150 patients" in r.text and "and 49 more" in r.text
    assert r.text.count('class="link">P') == 100


def _yaml(path):
    import yaml

    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))


def test_the_records_folder_cannot_be_escaped(client, tmp_path):
    for bad in ("../manifest.yaml", "../../../pyproject.toml", "/etc/passwd", "..%2F..%2Fmanifest.yaml",
                "sle-eligible.expected.yaml/../../manifest.yaml"):
        r = client.get(f"/record?path={bad}")
        assert r.status_code in (400, 404), bad
        assert "not a file of the records folder" in r.text or "not a record file" in r.text \
            or "no such file" in r.text
        assert "programs:" not in r.text  # the manifest's content


def test_a_link_out_of_the_records_folder_is_refused(tmp_path):
    (tmp_path / "cases").mkdir()
    secret = tmp_path / "secret.yaml"
    shutil.copy(CASES / EXCLUDED, secret)
    (tmp_path / "cases" / "link.yaml").symlink_to(secret)
    c = TestClient(create_app(records=tmp_path / "cases", allowed_hosts=["testserver"]))
    r = c.get("/record?path=link.yaml")
    assert r.status_code == 400 and "not a file of the records folder" in r.text


def test_uploads_leave_nothing_behind(client, monkeypatch, tmp_path):
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    client.post("/open", files={"file": (EXCLUDED, (CASES / EXCLUDED).read_bytes())})
    client.post("/api/explain", content=(CASES / EXCLUDED).read_bytes())
    client.post("/api/screen", content=b"id: [")
    assert list(spool.iterdir()) == []


def test_a_hostile_patient_id_is_shown_as_text(client):
    record = _yaml(CASES / EXCLUDED)
    record["id"] = '<script>alert("x")</script>'
    r = client.post("/open", files={"file": ("x.json", json.dumps(record))})
    assert r.status_code == 200
    assert "<script>alert" not in r.text
    assert "&lt;script&gt;alert" in r.text


def test_other_hosts_are_refused():
    c = TestClient(create_app(), base_url="http://evil.example")
    assert c.get("/").status_code == 400
    assert TestClient(create_app(), base_url="http://127.0.0.1:8000").get("/").status_code == 200


def test_upload_page_errors(client):
    r = client.post("/open", files={"file": ("", b"")})
    assert r.status_code in (400, 422)
    assert "Traceback" not in r.text
    r = client.post("/open", files={"file": ("x.yaml", b"")})
    assert r.status_code == 422 and "x.yaml: patient ?: the file is empty" in _text(r.text)


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("blocked", ["starlette", "jinja2", "uvicorn", "python_multipart"])
def test_serve_without_the_web_extra_names_it(monkeypatch, blocked):
    import sys

    monkeypatch.setitem(sys.modules, blocked, None)  # import BLOCKED now fails
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("Error: serve (the web page) needs the 'web' extra: "
                                     "pip install 'pyasp-screen[web]'")


def test_serve_with_a_bad_kb_is_a_usage_error():
    result = CliRunner().invoke(main, ["serve", "--kb", "no-such-kb"])
    assert result.exit_code == 2 and "no-such-kb" in result.stderr and "Traceback" not in result.stderr


def test_a_bulk_export_in_the_records_folder_is_one_entry(tmp_path):
    """A FHIR Bulk export folder is listed once and read whole, as `screen FOLDER` reads it;
    its patients are each a link."""
    exp = tmp_path / "records" / "export"
    exp.mkdir(parents=True)
    patients = [{"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1980-01-01"}
                for pid in ("P1", "P2")]
    (exp / "Patient.ndjson").write_text("".join(json.dumps(p) + "\n" for p in patients))
    shutil.copy(CASES / EXCLUDED, tmp_path / "records" / EXCLUDED)
    c = TestClient(create_app(records=tmp_path / "records", allowed_hosts=["testserver"]))
    index = c.get("/").text
    assert "export/" in index and "Patient.ndjson" not in index and EXCLUDED in index
    r = c.get("/record?path=export/")  # no clinical date: the CLI's message
    assert r.status_code == 422
    assert "P1: field screening_date: no clinical date in the resources: give the screening date" in r.text
    r = c.get("/record?path=export/&screening_date=2026-03-01")
    assert r.status_code == 200 and 'id="patient-id">P1<' in r.text
    assert "patient=P2&amp;screening_date=2026-03-01" in r.text
    r = c.get("/record?path=export/&patient=P2&screening_date=2026-03-01")
    assert r.status_code == 200 and 'id="patient-id">P2<' in r.text
    assert c.get("/record?path=export/&patient=P9&screening_date=2026-03-01").status_code == 404
