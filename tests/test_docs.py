"""Generated documentation is up to date, and the JSON output matches its documented schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from pyasp_screen.authoring import docgen

ROOT = Path(__file__).resolve().parent.parent


def test_generated_docs_are_up_to_date():
    for path, text in docgen.targets(ROOT).items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: python -m pyasp_screen.authoring.docgen"


def test_example_records_validate_against_the_published_schema():
    import yaml
    schema = json.loads((ROOT / "docs" / "schema" / "record.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    cases = [p for p in (ROOT / "kb").glob("*/cases/*.yaml") if not p.name.endswith(".expected.yaml")]
    assert cases
    for case in cases:
        data = yaml.safe_load(case.read_text())
        data = json.loads(json.dumps(data, default=str))  # YAML dates as the strings JSON carries
        errors = list(validator.iter_errors(data))
        assert not errors, f"{case.name}: {errors[0].message}"


def test_screen_json_output_matches_its_schema():
    schema = json.loads((ROOT / "docs" / "schema" / "screen-output.schema.json").read_text())
    proc = subprocess.run([sys.executable, "-m", "pyasp_screen.cli", "screen", str(ROOT / "kb" / "ct1190b" / "cases"),
                           "--format", "json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, schema)
    assert doc["summary"]["screened"] == len(doc["results"]) > 20
