"""Benchmark the OMOP CDM route: persons/s and peak memory from DuckDB and PostgreSQL, beside the
native JSON Lines route of the same persons, in the same run.

    python bench/bench_omop.py                                # 10,000 persons, DuckDB and PostgreSQL
    python bench/bench_omop.py --sizes 100000 1000000 --jobs 2
    python bench/bench_omop.py --postgres postgresql://u:pw@127.0.0.1:5432/db   # default: $PYASP_SCREEN_TEST_POSTGRES

For each size, bench/omop_cohort.py writes the synthetic cohort of bench/cohort.py as CDM tables
(CSV, then loaded into a DuckDB file and into a PostgreSQL schema with COPY and person_id
indexes, as the CDM's DDL has) and, beside them, the same persons as native records restricted
to what the CDM expresses (JSON Lines). Then, one after the other, each as its own process:

    jsonl      pyasp-screen cohort native.jsonl
    duckdb     pyasp-screen cohort duckdb:///cdm.duckdb --screening-date 2026-03-01
    postgres   pyasp-screen cohort postgresql://... --cdm-schema bench_N --screening-date 2026-03-01
    read:*     the OMOP reader alone (rows to validated native records, no screening), in one process

with --jobs N and --results rows.jsonl. Timed: the whole command. Peak memory: the largest sum of
the resident sets of the command and its descendants, sampled every 0.2 s (bench_scale.measure).
The three routes' rows are compared patient by patient (statuses and verdicts; the row's file
differs by route): the script prints how many agree.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scale import measure  # noqa: E402
from omop_cohort import load_duckdb, load_postgres, write_omop  # noqa: E402

CLI = [sys.executable, "-m", "pyasp_screen.cli"]


def read_only(url: str, schema: str | None) -> None:
    """The reader alone: every person to a validated native record, nothing screened."""
    import datetime as dt

    from pyasp_screen.inputs.omop.source import OmopSource
    from pyasp_screen.inputs.sources import materialize

    n = 0
    for p in OmopSource(url, cdm_schema=schema).open().persons():
        materialize(p, dt.date(2026, 3, 1))
        n += 1
    print(n)


def rows(path: Path) -> dict:
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            out[r["patient"]] = (r.get("overall"), r.get("verdicts"), r.get("criteria"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--postgres", default=os.environ.get("PYASP_SCREEN_TEST_POSTGRES"),
                    help="a PostgreSQL database to load the bench CDM into (default $PYASP_SCREEN_TEST_POSTGRES)")
    ap.add_argument("--data", type=Path, help="folder for the generated data (kept); default: a temporary one")
    ap.add_argument("--routes", nargs="+", default=["jsonl", "duckdb", "postgres", "read"],
                    choices=["jsonl", "duckdb", "postgres", "read"],
                    help="what to time (read: the OMOP reader alone); default: all")
    ap.add_argument("--read-only", nargs=2, metavar=("URL", "SCHEMA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.read_only:
        read_only(args.read_only[0], None if args.read_only[1] == "-" else args.read_only[1])
        return
    tmp = None
    data = args.data
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="pyasp-bench-omop-")
        data = Path(tmp.name)
    print(f"pyasp-screen OMOP benchmark, --jobs {args.jobs}, {os.cpu_count()} cores"
          + ("" if args.postgres else " (no PostgreSQL: give --postgres or $PYASP_SCREEN_TEST_POSTGRES)"))
    for n in args.sizes:
        folder = data / f"omop-{n}"
        t0 = time.perf_counter()
        if not (folder / "native.jsonl").exists():
            write_omop(folder, n)
        db = folder / "cdm.duckdb"
        if not db.exists():
            load_duckdb(folder, db)
        schema = f"bench_{n}"
        use_pg = bool(args.postgres) and ("postgres" in args.routes or "read" in args.routes)
        if use_pg:
            load_postgres(folder, args.postgres, schema)
        print(f"\n{n:,} persons (data written and loaded in {time.perf_counter() - t0:.0f} s)")
        routes = {"jsonl": [str(folder / "native.jsonl")],
                  "duckdb": [f"duckdb:///{db}", "--screening-date", "2026-03-01"]}
        if use_pg:
            routes["postgres"] = [args.postgres, "--cdm-schema", schema, "--screening-date", "2026-03-01"]
        routes = {k: v for k, v in routes.items() if k in args.routes}
        results = {}
        print(f"  {'route':<16} {'seconds':>9} {'persons/s':>10} {'peak MiB':>9}")
        for route, src in routes.items():
            out = folder / f"rows-{route}.jsonl"
            cmd = CLI + ["cohort", *src, "--jobs", str(args.jobs), "--results", str(out), "--overwrite",
                         "--format", "json", "-o", str(folder / f"summary-{route}.json")]
            wall, peak, rc = measure(cmd)
            results[route] = out
            print(f"  {route:<16} {wall:9.1f} {n / wall:10,.0f} {peak:9,.0f}" + ("" if rc in (0, 1) else f"  exit {rc}"),
                  flush=True)
        for route, src in (("read:duckdb", (f"duckdb:///{db}", "-")),
                           ("read:postgres", (args.postgres, schema)) if use_pg else (None, None)):
            if route is None or "read" not in args.routes:
                continue
            wall, peak, rc = measure([sys.executable, str(Path(__file__)), "--read-only", *src])
            print(f"  {route:<16} {wall:9.1f} {n / wall:10,.0f} {peak:9,.0f}" + ("" if rc == 0 else f"  exit {rc}"),
                  flush=True)
        if "jsonl" not in results:
            continue
        ref = rows(results["jsonl"])
        for route in routes:
            if route == "jsonl":
                continue
            got = rows(results[route])
            same = sum(1 for k, v in ref.items() if got.get(k) == v)
            print(f"  {route}: {same:,} of {len(ref):,} persons with the JSON Lines route's statuses and verdicts"
                  + ("" if same == len(ref) else "  <-- DIFFERENT"))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
