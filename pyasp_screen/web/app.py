"""The web application of ``pyasp-screen serve`` (Starlette, Jinja2 templates, uvicorn).

Pages (server-rendered HTML; a little JavaScript only fetches what-if answers in place):

    GET  /                 open a record: upload one, or pick one of ``serve --records DIR``
    POST /open             an uploaded file (multipart ``file``) -> the patient page
    GET  /record?path=P    a file of the records folder (``&patient=ID`` in a file of several)
    POST /view             a native record carried by a page (``name``, ``record``)
    POST /whatif           the same, with edits: ``set`` (FINDING=VALUE, repeatable), ``unset``,
                           ``param.NAME`` -> the page with what changes (``X-Fragment: 1``:
                           that part of the page only)

JSON API (the body is the record: YAML, JSON, a FHIR Bundle, JSON Lines, whatever its
Content-Type; or a multipart form with ``file``, or ``record`` and ``name``). Each answer is, byte for byte, what the CLI prints:

    POST /api/screen   ?name=&param=&screening_date=            screen --format json
    POST /api/explain  ?name=&param=&screening_date=&max=       explain --format json
    POST /api/whatif   ?name=&set=&unset=&param=                whatif --format json
    POST /api/graph    ?name=&param=&screening_date=            graph -o x.svg (image/svg+xml)
    POST /api/questionnaire  ?name=&param=&screening_date=&max= explain --questionnaire FILE

HTTP status mirrors the CLI's exit code: 200 (exit 0); 422 when a record is rejected (exit
1; the document's ``errors`` name each in one line, or ``{"error": ..., "errors": [...]}``
where the CLI prints no document); 400 for what the CLI calls a usage error (exit 2,
``{"error": "one line"}``); 413 for a body over the limit (``serve --max-upload``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pyasp_screen.inputs.record import Loaded, RecordError
from pyasp_screen.outputs import render
from pyasp_screen.web import service
from pyasp_screen.web.service import InputError, KnowledgeBases, Rejected

HERE = Path(__file__).resolve().parent
MB = 1 << 20
DEFAULT_MAX_UPLOAD = 16 * MB
LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
MOST_OTHERS = 100  # a file of more patients is a cohort: its first 100 others are linked
log = logging.getLogger("pyasp_screen.web")


# ---------------------------------------------------------------------------------------
# A body over the limit: 413, before it is read whole
# ---------------------------------------------------------------------------------------

class _TooLarge(Exception):
    pass


def _too_large_message(limit: int) -> str:
    return (f"the request is larger than the limit of {limit / MB:g} MB "
            "(pyasp-screen serve --max-upload MB raises it)")


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 and one line, whether
    it announces its length (refused unread) or not (refused once the limit is passed)."""

    def __init__(self, app, limit: int, page):
        self.app, self.limit, self.page = app, limit, page

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        try:
            announced = int(headers.get(b"content-length", b"0"))
        except ValueError:
            announced = 0
        if announced > self.limit:
            return await self._refuse(scope, receive, send)
        seen = 0
        started = False

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        async def watched(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope, receive, send):
        message = _too_large_message(self.limit)
        if scope["path"].startswith("/api/"):
            response = JSONResponse({"error": message}, status_code=413)
        else:
            response = self.page(Request(scope), message, 413)
        await response(scope, receive, send)


# ---------------------------------------------------------------------------------------
# The application
# ---------------------------------------------------------------------------------------

def create_app(kb: str | Path | None = None, records: Path | None = None,
               max_upload: int = DEFAULT_MAX_UPLOAD, allowed_hosts: list[str] | None = None) -> Starlette:
    """The application. ``kb``: the knowledge base (a folder or a bundled name, as ``--kb``);
    ``records``: a folder whose record files the index page lists; ``max_upload``: the
    largest request body accepted, in bytes; ``allowed_hosts``: the Host headers answered
    (default: this machine's loopback names, which keeps other web pages from reaching the
    server through DNS rebinding). Raises InputError for a knowledge base that does not load.
    """
    kbs = KnowledgeBases(kb)
    shown = records  # as given on the command line: files are named as the CLI names them
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(verdict_class=_verdict_class, population_label=render.population_label,
                                 edits_text=_edits_text)

    def page(request: Request, name: str, context: dict, status: int = 200) -> HTMLResponse:
        base = {"kb": kbs.base, "records_dir": records, "max_upload_mb": f"{max_upload / MB:g}"}
        return templates.TemplateResponse(request, name, {**base, **context}, status_code=status)

    def index_page(request: Request, error: str | list[str] | None = None, status: int = 200) -> HTMLResponse:
        errors = [error] if isinstance(error, str) else (error or [])
        files = service.records_in(records) if records else []
        return page(request, "index.html", {"errors": errors, "files": files}, status)

    def patient_page(request: Request, items: list, source: dict, chosen: str | None = None,
                     whatif: dict | None = None, status: int = 200) -> HTMLResponse:
        """The page of one patient of ``items`` (the one named ``chosen``, else the first
        screened); the file's other records listed; its rejected records named."""
        kb = kbs.base
        errors = [e for e in items if isinstance(e, RecordError)]
        loaded = [i for i in items if isinstance(i, Loaded)]
        if chosen is not None:
            picked = [i for i in loaded if i.record.id == chosen]
            if not picked:
                return index_page(request, f"{source['name']}: no patient {chosen!r} in this file", 404)
            loaded = picked + [i for i in loaded if i is not picked[0]]
        view = None
        while loaded and view is None:
            got = service.patient_view(loaded[0], kb)
            if isinstance(got, RecordError):
                errors.append(got)
                loaded.pop(0)
            else:
                view = got
        if view is None:
            return index_page(request, [f"rejected: {e}" for e in errors], 422)
        rest = [i for i in items if isinstance(i, Loaded) and i is not loaded[0]]
        others = [{"patient": i.record.id, "record": None if source.get("path") else service.native_json(i.record)}
                  for i in rest[:MOST_OTHERS]]
        return page(request, "patient.html", {
            "view": view, "r": view.result, "x": view.explanation, "source": source,
            "others": others, "more_others": len(rest) - len(others), "errors": [f"rejected: {e}" for e in errors],
            "criteria": {c.id: c for c in kb.criteria},
            "parameters": _parameter_fields(kbs, (whatif or {}).get("form_params", {})),
            "settable": _settable(kb), "whatif": whatif, "glance": view.explanation["answer"],
        }, status)

    # -- pages --------------------------------------------------------------------------

    async def index(request: Request):
        return index_page(request)

    async def open_upload(request: Request):
        async with request.form(max_files=1, max_fields=20, max_part_size=max_upload) as form:
            upload = form.get("file")
            when = form.get("screening_date") or None
            if not isinstance(upload, UploadFile) or not upload.filename:
                return index_page(request, "choose a record file to open (YAML/JSON record or FHIR Bundle)", 400)
            data = await upload.read()
            name = service.display_name(upload.filename)
        try:
            items = await run_in_threadpool(service.read_upload, data, name, service.parse_date(when),
                                            kbs.base.vocabulary)
        except InputError as e:
            return index_page(request, str(e), 400)
        if not items:
            return index_page(request, f"{name}: the file holds no record", 422)
        return await run_in_threadpool(patient_page, request, items, {"name": name})

    async def open_record(request: Request):
        if records is None:
            return index_page(request, "no records folder: start the server with serve --records DIR", 404)
        rel = request.query_params.get("path", "")
        try:
            path = service.record_path(records, rel)
            when = service.parse_date(request.query_params.get("screening_date"))
        except InputError as e:
            return index_page(request, str(e), 404 if "no such file" in str(e) else 400)
        rel = path.relative_to(records.resolve()).as_posix()
        where = Path(shown) / rel if rel != "." else Path(shown)
        items = await run_in_threadpool(service.read_path, where, when, kbs.base.vocabulary)
        display = str(where)
        source = {"name": display, "path": rel, "screening_date": when.isoformat() if when else ""}
        return await run_in_threadpool(patient_page, request, items, source, request.query_params.get("patient"))

    async def view(request: Request):
        async with request.form(max_files=0, max_fields=20, max_part_size=max_upload) as form:
            name = service.display_name(form.get("name"))
            loaded = service.read_native(str(form.get("record") or ""), name)
        if isinstance(loaded, RecordError):
            return index_page(request, f"rejected: {loaded}", 422)
        return await run_in_threadpool(patient_page, request, [loaded], {"name": name})

    async def whatif(request: Request):
        async with request.form(max_files=0, max_fields=500, max_part_size=max_upload) as form:
            name = str(form.get("name") or "record.json")
            loaded = service.read_native(str(form.get("record") or ""), name)
            sets = _form_sets(form)
            unsets = [u.strip() for u in str(form.get("unset") or "").replace(",", " ").split() if u.strip()]
            form_params = {k[len("param."):]: str(v).strip() for k, v in form.multi_items()
                           if k.startswith("param.")}
        fragment = request.headers.get("x-fragment") == "1"
        if isinstance(loaded, RecordError):
            return index_page(request, f"rejected: {loaded}", 422)
        params = _changed_params(kbs, form_params)
        result = {"sets": sets, "unsets": unsets, "form_params": form_params}
        status = 200
        try:
            result["doc"] = await run_in_threadpool(service.whatif_document, [loaded], kbs, sets, unsets, params, name)
        except InputError as e:
            result["error"], status = str(e), 400
        except Rejected as e:
            result["error"], status = str(e), 422
        if fragment:
            return page(request, "whatif_result.html", {"whatif": result, "criteria": {c.id: c for c in kbs.base.criteria}},
                        status)
        return await run_in_threadpool(patient_page, request, [loaded], {"name": name}, None, result, status)

    # -- JSON API -----------------------------------------------------------------------

    async def api_screen(request: Request):
        items, _ = await _api_items(request, max_upload, kbs)
        kb = kbs.get(service.parse_params(request.query_params.getlist("param")))
        doc = await run_in_threadpool(service.screen_document, items, kb)
        return _json(doc, 422 if doc["errors"] else 200, request)

    async def api_explain(request: Request):
        items, _ = await _api_items(request, max_upload, kbs)
        kb = kbs.get(service.parse_params(request.query_params.getlist("param")))
        most = _int(request.query_params.get("max", "10"), "--max", 1, 1000)
        doc = await run_in_threadpool(service.explain_document, items, kb, most)
        return _json(doc, 422 if doc["errors"] else 200, request)

    async def api_whatif(request: Request):
        items, name = await _api_items(request, max_upload, kbs, dated=False)
        q = request.query_params
        params = service.parse_params(q.getlist("param"))
        try:
            doc = await run_in_threadpool(service.whatif_document, items, kbs, q.getlist("set"),
                                          q.getlist("unset"), params, name)
        except Rejected as e:
            return JSONResponse({"error": str(e), "errors": [render.error_dict(x) for x in e.errors]},
                                status_code=422)
        return _json(doc, 200, request)

    async def api_questionnaire(request: Request):
        items, name = await _api_items(request, max_upload, kbs)
        kb = kbs.get(service.parse_params(request.query_params.getlist("param")))
        most = _int(request.query_params.get("max", "10"), "--max", 1, 1000)
        try:
            doc = await run_in_threadpool(service.questionnaire_document, items, kb, name, most)
        except Rejected as e:
            return JSONResponse({"error": str(e), "errors": [render.error_dict(x) for x in e.errors]},
                                status_code=422)
        headers = ({"Content-Disposition": 'attachment; filename="questionnaire.json"'}
                   if request.query_params.get("download") else {})
        return Response(render.json_text(doc), media_type="application/fhir+json", headers=headers)

    async def api_graph(request: Request):
        items, name = await _api_items(request, max_upload, kbs)
        kb = kbs.get(service.parse_params(request.query_params.getlist("param")))
        errors = [i for i in items if isinstance(i, RecordError)]
        loaded = [i for i in items if isinstance(i, Loaded)]
        if len(loaded) != 1:
            if not loaded:
                return JSONResponse({"error": "; ".join(f"rejected: {e}" for e in errors) or f"{name}: no record",
                                     "errors": [render.error_dict(e) for e in errors]}, status_code=422)
            raise InputError(f"{name} holds {len(loaded)} patients; graph draws one")
        got = await run_in_threadpool(service.patient_view, loaded[0], kb)
        if isinstance(got, RecordError):
            return JSONResponse({"error": f"rejected: {got}", "errors": [render.error_dict(got)]}, status_code=422)
        if got.svg is None:
            return JSONResponse({"error": got.svg_error}, status_code=503)
        headers = ({"Content-Disposition": 'attachment; filename="graph.svg"'}
                   if request.query_params.get("download") else {})
        return Response(got.svg, media_type="image/svg+xml", status_code=422 if errors else 200, headers=headers)

    # -- errors -------------------------------------------------------------------------

    async def input_error(request: Request, exc: InputError):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc)}, status_code=400)
        return index_page(request, str(exc), 400)

    async def http_error(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "bad request"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=exc.status_code)
        return index_page(request, message, exc.status_code)

    async def server_error(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        message = f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())} (the server's log has the details)"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=500)
        return HTMLResponse(f"<!doctype html><title>error</title><p>{_escape(message)}</p>", status_code=500)

    def refuse_page(request: Request, message: str, status: int) -> HTMLResponse:
        return index_page(request, message, status)

    routes = [
        Route("/", index),
        Route("/open", open_upload, methods=["POST"]),
        Route("/record", open_record),
        Route("/view", view, methods=["POST"]),
        Route("/whatif", whatif, methods=["POST"]),
        Route("/api/screen", api_screen, methods=["POST"]),
        Route("/api/explain", api_explain, methods=["POST"]),
        Route("/api/whatif", api_whatif, methods=["POST"]),
        Route("/api/graph", api_graph, methods=["POST"]),
        Route("/api/questionnaire", api_questionnaire, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOCAL_HOSTS),
                  Middleware(BodyLimit, limit=max_upload, page=refuse_page)]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={InputError: input_error, HTTPException: http_error,
                                        Exception: server_error})
    app.state.kbs = kbs
    return app


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

_JSON_TYPES = ("application/json", "application/fhir+json", "text/json")
_JSONL_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/fhir+ndjson")


async def _api_items(request: Request, limit: int, kbs: KnowledgeBases, dated: bool = True) -> tuple[list, str]:
    """The records of an API request: the body itself, or a form's ``file`` or ``record``."""
    q = request.query_params
    when = service.parse_date(q.get("screening_date")) if dated else None
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":  # any other type is the record itself (curl -d sends
        # x-www-form-urlencoded by default: it is read as the record, not as a form)
        async with request.form(max_files=1, max_fields=20, max_part_size=limit) as form:
            upload = form.get("file")
            if isinstance(upload, UploadFile):
                data, name = await upload.read(), upload.filename or q.get("name")
            elif form.get("record"):
                name = service.display_name(str(form.get("name") or q.get("name") or ""))
                return [service.read_native(str(form.get("record")), name)], name
            else:
                raise InputError("the form has no 'file' (an upload) nor 'record' (a native record)")
    else:
        data, name = await request.body(), q.get("name")
    if not data.strip():
        raise InputError("the request holds no record: send a YAML/JSON record or a FHIR Bundle as its body")
    if not name:
        head = data.lstrip()[:1]
        name = ("record.jsonl" if ctype in _JSONL_TYPES else
                "record.json" if ctype in _JSON_TYPES or head in (b"{", b"[") else "record.yaml")
    name = service.display_name(name)
    items = await run_in_threadpool(service.read_upload, data, name, when, kbs.base.vocabulary)
    if not items:
        raise InputError(f"{name}: the file holds no record")
    return items, name


def _json(doc: dict, status: int, request: Request) -> Response:
    headers = {}
    if request.query_params.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="{request.url.path.rsplit("/", 1)[-1]}.json"'
    return Response(render.json_text(doc), status_code=status, media_type="application/json", headers=headers)


def _int(text: str, option: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{option} {text!r}: not a whole number") from None
    if not low <= value <= high:
        raise InputError(f"{option} {value}: not in the range {low} to {high}")
    return value


def _form_sets(form) -> list[str]:
    """``set`` fields (FINDING=VALUE) and ``set.finding``/``set.value`` pairs of a form;
    a pair without a value is no edit (the coordinator cleared it)."""
    out = [str(v).strip() for k, v in form.multi_items() if k == "set" and str(v).strip()]
    names, values = form.getlist("set.finding"), form.getlist("set.value")
    for n, v in zip(names, values):
        n, v = str(n).strip(), str(v).strip()
        if v:  # a row whose value was cleared is no edit
            out.append(f"{n}={v}")
    return out


def _number_text(p) -> str:
    text = p.display()
    return text.split(" ")[0] if p.kind in ("quantity", "integer") else text


def _changed_params(kbs: KnowledgeBases, form_params: dict[str, str]) -> dict[str, str]:
    """The form's parameter fields that differ from the server's knowledge base."""
    base = kbs.base.parameters
    return {k: v for k, v in form_params.items() if k in base and v != _number_text(base[k]) and v != ""}


def _parameter_fields(kbs: KnowledgeBases, form_params: dict[str, str]) -> list[dict]:
    out = []
    for p in kbs.base.parameters.values():
        now = _number_text(p)
        out.append({"name": p.name, "kind": p.kind, "value": form_params.get(p.name, now), "default": now,
                    "unit": "" if p.unit in ("", "1") else p.unit, "doc": p.doc,
                    "choices": list(p.choices) if p.kind == "choice" else
                    (["true", "false"] if p.kind == "boolean" else [])})
    return out


def _settable(kb) -> list[str]:
    from pyasp_screen.cohorts.whatif import settable_names

    return settable_names(kb.vocabulary)


def _verdict_class(word: str) -> str:
    return {"eligible": "good", "met": "good", "ineligible": "bad", "not_met": "bad",
            "undetermined": "unknown", "unknown": "unknown"}.get(word, "")


def _edits_text(doc: dict) -> str:
    """The edits of a what-if document as the CLI's text output names them."""
    e = doc["edits"]
    return ", ".join(list(e["set"]) + [f"unset {u}" for u in e["unset"]]
                     + [f"{k}={v}" for k, v in e["parameters"].items()]) or "nothing changed"


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))
