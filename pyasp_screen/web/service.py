"""What the web pages and the JSON API do, without HTTP: the same library calls as the CLI.

Every function here takes records as they arrive over HTTP (bytes and the name the user gave
them) and returns the very documents the CLI prints: :func:`screen_document` is
``pyasp-screen screen --format json``, :func:`explain_document` is ``explain --format json``,
:func:`whatif_document` is ``whatif --format json`` (built by ``outputs.render`` and
``cohorts.whatif``, never re-done here). Nothing here imports the web framework.

Uploads are written, under a sanitised name, into a fresh temporary folder that is removed
before the function returns: they are read by the same readers as files given to the CLI
(``inputs.sources.iter_items``), and the temporary path is replaced by the user's name in
every message and result, so an upload of ``patient.yaml`` reads exactly as
``pyasp-screen screen patient.yaml`` does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import msgspec

from pyasp_screen.engine.screening import Screened, screen_records
from pyasp_screen.inputs.files import RECORD_SUFFIXES
from pyasp_screen.inputs.record import Loaded, Record, RecordError, parse_record
from pyasp_screen.inputs.sources import JSONL_SUFFIXES, iter_items, materialize
from pyasp_screen.knowledge.kb import KBError, KnowledgeBase, load_kb
from pyasp_screen.knowledge.vocabulary import Vocabulary
from pyasp_screen.outputs import render

#: Suffixes an upload or a ``--records`` file may have (as the CLI reads them).
SUFFIXES = RECORD_SUFFIXES + JSONL_SUFFIXES

# clingo runs one solve at a time per page request; two cores are shared by everything on
# the machine, and a coordinator's page makes one request at a time anyway.
_SOLVE = threading.Lock()


class InputError(ValueError):
    """A request the CLI would refuse as a usage error (exit 2): one line, no record read."""


# ---------------------------------------------------------------------------------------
# Knowledge bases
# ---------------------------------------------------------------------------------------

class KnowledgeBases:
    """The server's knowledge base, loaded once per set of parameter values.

    ``get({})`` is the knowledge base as given to ``serve --kb``; ``get({"crcl_min": "30"})``
    the same with a parameter changed (as ``--param crcl_min=30``). Raises InputError with
    the CLI's one-line message for an unknown parameter or a bad value.
    """

    def __init__(self, kb: str | Path | None = None, most: int = 32):
        self.kb = kb
        self.most = most
        self._cache: dict[tuple, KnowledgeBase] = {}
        self._lock = threading.Lock()
        self.base = self.get({})

    def get(self, params: dict[str, str]) -> KnowledgeBase:
        key = tuple(sorted(params.items()))
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        try:
            knowledge = load_kb(self.kb, dict(params))
        except KBError as e:
            raise InputError(str(e)) from None
        with self._lock:
            if len(self._cache) >= self.most:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = knowledge
        return knowledge


def parse_params(values: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` texts (as ``--param``) into a mapping; InputError for one without '='."""
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--param {v!r} is not NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def parse_date(text: str | None) -> dt.date | None:
    """A screening date YYYY-MM-DD (as ``--screening-date``), or None for none given."""
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--screening-date {text!r}: not a date YYYY-MM-DD") from None


# ---------------------------------------------------------------------------------------
# Reading records
# ---------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def display_name(name: str | None, default: str = "record.json") -> str:
    """The file name a user gave an upload, without any folder, control characters or
    leading dots; ``default`` when there is none."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).replace("\\", "/")
    base = PurePosixPath(text).name.strip().lstrip(".")
    return base[:200] or default


def _rename(item: Loaded | RecordError, tmp: str, name: str) -> Loaded | RecordError:
    if item.file.startswith(tmp):
        item = dataclasses.replace(item, file=name + item.file[len(tmp):])
    if isinstance(item, RecordError) and tmp in item.reason:
        item = dataclasses.replace(item, reason=item.reason.replace(tmp, name))
    return item


def read_upload(data: bytes, name: str, screening_date: dt.date | None = None,
                vocabulary: Vocabulary | None = None) -> list[Loaded | RecordError]:
    """Every record of one uploaded file (native YAML/JSON, a FHIR Bundle, JSON Lines), each
    a Loaded or the RecordError that rejects it, named ``name`` as the CLI names a file.

    The bytes are written into a new temporary folder (removed before this returns) under
    a sanitised name with the same suffix, and read by ``inputs.sources``: ``.json`` is
    JSON, ``.jsonl``/``.ndjson`` JSON Lines, anything else YAML, as for the CLI. FHIR codes
    are mapped with ``vocabulary`` (the knowledge base's), as the CLI maps them.
    """
    name = display_name(name)
    safe = _UNSAFE.sub("_", name) or "record.json"
    with tempfile.TemporaryDirectory(prefix="pyasp-screen-upload-") as folder:
        path = Path(folder) / safe
        path.write_bytes(data)
        return [_rename(materialize(item, screening_date, vocabulary), str(path), name)
                for item in iter_items([path], screening_date, vocabulary=vocabulary)]


def read_native(text: str, name: str) -> Loaded | RecordError:
    """A validated native record carried by a page (the JSON of :func:`native_json`)."""
    try:
        data = json.loads(text)
    except ValueError as e:
        return RecordError(name, None, None, f"malformed JSON: {e}")
    return parse_record(data, name)


def native_json(record: Record) -> str:
    """The validated record as native JSON (docs/records.md): what a page carries between
    requests, so an upload never has to be kept on the server."""
    return msgspec.json.encode(record).decode("utf-8")


def records_in(folder: Path, most: int = 2000) -> list[str]:
    """What the start page lists of ``folder`` (``serve --records``), relative, sorted: its
    record files, and each FHIR Bulk export folder in it as one entry ending in ``/`` (its
    ``.ndjson`` files are read together, as ``pyasp-screen screen FOLDER`` reads them); the
    folder itself is ``./`` when it is an export."""
    from pyasp_screen.inputs.bulk import is_bulk_export

    root = folder.resolve()
    if is_bulk_export(root):
        return ["./"]
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames.sort()
        for d in list(dirnames):
            if is_bulk_export(here / d):
                out.append((here / d).relative_to(root).as_posix() + "/")
                dirnames.remove(d)
        for f in sorted(filenames):
            if (Path(f).suffix.lower() in SUFFIXES
                    and not f.endswith((".expected.yaml", ".expected.yml"))):
                out.append((here / f).relative_to(root).as_posix())
        if len(out) >= most:
            break
    return sorted(out)[:most]


def record_path(folder: Path, relative: str) -> Path:
    """The file (or FHIR Bulk export folder) ``relative`` names under ``folder``; InputError
    for one outside it (``..``, an absolute path, a link out of it), missing, or not a
    record file."""
    from pyasp_screen.inputs.bulk import is_bulk_export

    root = folder.resolve()
    path = (root / relative).resolve()
    if root != path and root not in path.parents:
        raise InputError(f"{relative}: not a file of the records folder")
    if path.is_dir() and is_bulk_export(path):
        return path
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(f"{relative}: not a record file ({', '.join(SUFFIXES)})")
    if not path.is_file():
        raise InputError(f"{relative}: no such file in the records folder")
    return path


def read_path(path: Path, screening_date: dt.date | None = None,
              vocabulary: Vocabulary | None = None) -> list[Loaded | RecordError]:
    """Every record of a file (or FHIR Bulk export folder) on disk, as the CLI reads it."""
    return [materialize(item, screening_date, vocabulary)
            for item in iter_items([path], screening_date, vocabulary=vocabulary)]


# ---------------------------------------------------------------------------------------
# The CLI's documents
# ---------------------------------------------------------------------------------------

def screen(items: list[Loaded | RecordError], kb: KnowledgeBase) -> list[Screened | RecordError]:
    with _SOLVE:
        return list(screen_records(items, kb, freeze=False))


def screen_document(items: list[Loaded | RecordError], kb: KnowledgeBase) -> dict:
    """``pyasp-screen screen --format json`` for these records."""
    return render.screen_document(screen(items, kb), kb)


def explain_document(items: list[Loaded | RecordError], kb: KnowledgeBase, max_results: int = 10) -> dict:
    """``pyasp-screen explain --format json --max N`` for these records: each patient's
    answer-first summary (``explain.summary.summarise``)."""
    from pyasp_screen.explain.explainer import explain
    from pyasp_screen.explain.summary import summarise

    outcomes = screen(items, kb)
    docs = []
    with _SOLVE:
        for s in outcomes:
            if isinstance(s, Screened):
                explained = explain(kb, s.findings, max_results=max_results)
                docs.append(summarise(kb, s, max_results, None, explained))
    return render.explain_document(docs, [o for o in outcomes if isinstance(o, RecordError)], kb)


def questionnaire_document(items: list[Loaded | RecordError], kb: KnowledgeBase, name: str,
                           max_results: int = 10) -> dict:
    """The FHIR Questionnaire ``pyasp-screen explain NAME --questionnaire FILE`` writes: the
    missing data that could settle this patient's verdict (``outputs.questionnaire``).
    Raises Rejected (every record rejected) or InputError (not exactly one patient)."""
    from pyasp_screen.outputs.questionnaire import missing_data_questionnaire

    outcomes = screen(items, kb)
    screened = [o for o in outcomes if isinstance(o, Screened)]
    if not screened:
        raise Rejected([o for o in outcomes if isinstance(o, RecordError)])
    if len(screened) != 1:
        raise InputError(f"--questionnaire needs one screened patient ({len(screened)} here)")
    with _SOLVE:
        return missing_data_questionnaire(kb, screened[0].findings, max_results=max_results)


def whatif_document(items: list[Loaded | RecordError], kbs: KnowledgeBases, sets: list[str],
                    unsets: list[str], params: dict[str, str], name: str = "the record") -> dict:
    """``pyasp-screen whatif --format json`` for one record. Raises InputError (the CLI's
    usage errors: nothing to change, a bad edit, several records) and Rejected (the record
    is rejected; the CLI's ``rejected:`` lines)."""
    from pyasp_screen.cohorts.whatif import EditError, compare

    sets = [s for s in sets if s.strip()]
    unsets = [u for u in unsets if u.strip()]
    if not (sets or unsets or params):
        raise InputError("nothing to change: give --set, --unset, --param or --params")
    new_kb = kbs.get(params)
    errors = [o for o in items if isinstance(o, RecordError)]
    if errors:
        raise Rejected(errors)
    if len(items) != 1:
        raise InputError(f"{name} holds {len(items)} records; whatif takes one")
    try:
        with _SOLVE:
            return compare(items[0].record, sets, unsets, kbs.base, new_kb).document()
    except EditError as e:
        raise InputError(str(e)) from None


class Rejected(Exception):
    """Every record of the input was rejected (the CLI's ``rejected:`` lines)."""

    def __init__(self, errors: list[RecordError]):
        super().__init__("; ".join(f"rejected: {e}" for e in errors))
        self.errors = errors


# ---------------------------------------------------------------------------------------
# One patient's page
# ---------------------------------------------------------------------------------------

@dataclass
class PatientView:
    """Everything the patient page shows, all of it from the library: the ``screen`` result
    and ``explain`` document of one patient, its explanation graph as SVG (or why there is
    none), and the native record the page carries for what-if."""

    screened: Screened
    result: dict            # render.result_dict: the results[] item of screen --format json
    explanation: dict       # render.explanation_dict: the patients[] item of explain --format json
    record_json: str
    screening_date: dt.date | None = None
    svg: str | None = None
    svg_error: str | None = None
    others: list[dict] = field(default_factory=list)


def patient_view(loaded: Loaded, kb: KnowledgeBase, max_results: int = 10) -> PatientView | RecordError:
    """Screen and explain one patient (its ``explain --format json`` summary) and draw its
    graph as ``pyasp-screen graph -o x.svg`` draws it (the chosen explanation)."""
    from pyasp_screen.explain.explainer import explain
    from pyasp_screen.explain.summary import summarise
    from pyasp_screen.outputs import graph as graphs

    outcome = screen([loaded], kb)[0]
    if isinstance(outcome, RecordError):
        return outcome
    with _SOLVE:
        explained = explain(kb, outcome.findings, max_results=max_results)
        summary = summarise(kb, outcome, max_results, None, explained)
        g = graphs.build_explanation(summary, kb)
    view = PatientView(outcome, render.result_dict(outcome, kb), render.explanation_dict(summary),
                       native_json(loaded.record), loaded.record.screening_date)
    with tempfile.TemporaryDirectory(prefix="pyasp-screen-graph-") as folder:
        out = Path(folder) / "graph.svg"
        try:
            graphs.write(g, kb, out)
            view.svg = _inline_svg(out.read_text(encoding="utf-8"))
        except graphs.GraphError as e:
            view.svg_error = str(e).replace(str(out), "the graph")
    return view


def _inline_svg(text: str) -> str:
    """Graphviz's SVG file without its XML prologue and DOCTYPE, to sit inside HTML."""
    start = text.find("<svg")
    return text[start:] if start >= 0 else text
