"""Benchmark the web API: one patient's screen and explain through HTTP, beside the same calls
in process (the baseline), in the same run.

    python bench/bench_web.py              # 40 requests of each kind per record
    python bench/bench_web.py -n 100

The server is `pyasp-screen serve` in its own process on a free loopback port (as a
coordinator runs it); the client keeps one HTTP/1.1 connection open (http.client), posts the
record file as the body and reads the whole answer. The baseline calls what the endpoint
calls (pyasp_screen.web.service: read the upload, screen or explain, render the JSON text)
in this process, without HTTP. Both are warmed up first (3 calls each). Each answer is
checked to be the same bytes over HTTP as in process.

"page" is the whole patient page (GET /record?path=..., the server started with --records
at the repository root): screen, explain, the explanation graph rendered by Graphviz, and
the HTML around them; its baseline is the same library work in process
(service.patient_view), without the template.

Records: an excluded patient (kb/ct1190b/cases/sle-in-7b-not-met.yaml), an undetermined one
(sle-in-1-unknown.yaml) and a Synthea FHIR R4 Bundle (tests/data/fhir/Tom_Goodwin_...json:
615 KB, 191 resources of one patient's history).
"""

from __future__ import annotations

import argparse
import http.client
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyasp_screen.outputs.render import json_text  # noqa: E402
from pyasp_screen.web import service  # noqa: E402

RECORDS = [ROOT / "kb/ct1190b/cases/sle-in-7b-not-met.yaml", ROOT / "kb/ct1190b/cases/sle-in-1-unknown.yaml",
           ROOT / "tests/data/fhir/Tom_Goodwin_e20de9eb-6f2d-4871-a43f-bbede53293ed.json"]


def stats(times: list[float]) -> tuple[float, float]:
    ms = sorted(t * 1000 for t in times)
    return statistics.median(ms), ms[min(len(ms) - 1, int(0.95 * len(ms)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "from pyasp_screen.cli import main; main()", "serve",
                             "--port", str(port), "--records", str(ROOT)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"pyasp-screen serve stopped: {proc.stderr.read().decode()}")
            time.sleep(0.2)
    proc.kill()
    sys.exit("pyasp-screen serve did not start within 60 s")


def in_process(kind: str, data: bytes, name: str, kbs) -> bytes:
    if kind == "page":  # what the page computes: read, screen, explain, the graph drawn by dot
        view = service.patient_view(service.read_upload(data, name, None, kbs.base.vocabulary)[0], kbs.base)
        return view.svg.encode("utf-8")
    items = service.read_upload(data, name, None, kbs.base.vocabulary)
    doc = (service.screen_document(items, kbs.base) if kind == "screen"
           else service.explain_document(items, kbs.base, 10))
    return json_text(doc).encode("utf-8")


def over_http(conn: http.client.HTTPConnection, kind: str, data: bytes, name: str, path: Path) -> bytes:
    if kind == "page":
        conn.request("GET", "/record?path=" + urllib.parse.quote(path.relative_to(ROOT).as_posix()))
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            sys.exit(f"page {name}: HTTP {response.status}")
        return body
    conn.request("POST", f"/api/{kind}?name={urllib.parse.quote(name)}", body=data,
                 headers={"Content-Type": "application/octet-stream"})
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        sys.exit(f"/api/{kind} {name}: HTTP {response.status}: {body[:300]!r}")
    return body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=40, help="requests of each kind per record (default 40)")
    args = ap.parse_args()
    kbs = service.KnowledgeBases()
    port = free_port()
    proc = start_server(port)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        print(f"pyasp-screen serve on 127.0.0.1:{port}; {args.n} calls of each kind per record, after 3 warm-up calls")
        print(f"{'record':<34} {'call':<8} {'in process (baseline)':>24} {'over HTTP (the API)':>24} {'HTTP adds':>10}")
        print(f"{'':<34} {'':<8} {'median':>11} {'p95':>12} {'median':>11} {'p95':>12} {'(median)':>10}")
        for path in RECORDS:
            data, name = path.read_bytes(), path.name
            for kind in ("screen", "explain", "page"):
                for _ in range(3):
                    expected = in_process(kind, data, name, kbs)
                    got = over_http(conn, kind, data, name, path)
                if kind == "page":
                    if expected not in got:
                        sys.exit(f"{name}: the page's graph differs from the in-process one")
                elif got != expected:
                    sys.exit(f"{name} {kind}: the API's answer differs from the in-process one")
                local, remote = [], []
                for _ in range(args.n):  # interleaved, so both see the same machine load
                    t = time.perf_counter()
                    in_process(kind, data, name, kbs)
                    local.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    over_http(conn, kind, data, name, path)
                    remote.append(time.perf_counter() - t)
                (lm, lp), (rm, rp) = stats(local), stats(remote)
                label = name if len(name) <= 34 else name[:31] + "..."
                print(f"{label:<34} {kind:<8} {lm:8.1f} ms {lp:9.1f} ms {rm:8.1f} ms {rp:9.1f} ms {rm - lm:+7.1f} ms")
        conn.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
