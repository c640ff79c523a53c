"""Benchmark `screen`: patients per second, batched and compiled vs one clingo Control per patient.

    python bench/bench_screen.py                 # 10,000 patients, baseline on 1,000
    python bench/bench_screen.py -n 2000 --baseline-n 300

Three runs over the same synthetic cohort (bench/cohort.py), in one process, one after the
other, so the ratios are meaningful on a noisy machine:

    fast       the pipeline as shipped: batches of --batch-size patients, each one grounding
               of the knowledge base specialised to its static facts (pyasp_screen.engine.engine)
    reference  batches as fast, the knowledge base as written (pyasp_screen.engine.reference,
               the engine before the compiled path)
    baseline   the reference engine with a fresh clingo Control per patient, on the first
               --baseline-n patients

Timed: reading the cohort file (JSON), validating records, deriving findings, grounding and
solving, and collecting results. Single process. Every patient's statuses, verdicts and
overall verdict must be identical across the three; the script says so, and exits 1 if not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cohort import synthetic_cohort  # noqa: E402

from pyasp_screen.engine.reference import ReferenceEngine  # noqa: E402
from pyasp_screen.engine.screening import screen_records  # noqa: E402
from pyasp_screen.inputs.files import load_file  # noqa: E402
from pyasp_screen.inputs.record import RecordError  # noqa: E402
from pyasp_screen.knowledge.kb import load_kb  # noqa: E402


def run(path: Path, kb, batch_size: int, limit: int | None = None, engine=None):
    t0 = time.perf_counter()
    items = load_file(path)
    if limit is not None:
        items = (x for i, x in zip(range(limit), items))
    outcomes = list(screen_records(items, kb, batch_size=batch_size, engine=engine))
    return time.perf_counter() - t0, outcomes


def same(a, b) -> bool:
    if isinstance(a, RecordError) or isinstance(b, RecordError):
        return isinstance(a, RecordError) and isinstance(b, RecordError) and a.reason == b.reason
    x, y = a.result, b.result
    return (x.patient, x.statuses, x.verdicts, x.overall, sorted(x.contradictions)) == \
        (y.patient, y.statuses, y.verdicts, y.overall, sorted(y.contradictions))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10_000, help="cohort size (default 10000)")
    ap.add_argument("--baseline-n", type=int, default=1_000,
                    help="patients screened by the one-Control-per-patient baseline (default 1000)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--missing", type=float, default=0.15, help="probability a finding is missing")
    ap.add_argument("--kb", default=None, help="knowledge base (default ct1190b)")
    args = ap.parse_args()

    kb = load_kb(args.kb)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cohort.json"
        path.write_text(json.dumps(synthetic_cohort(args.n, p_missing=args.missing)))
        print(f"cohort: {args.n} synthetic patients, {path.stat().st_size / 1e6:.1f} MB JSON, "
              f"p_missing={args.missing}, knowledge base {kb.name}")
        run(path, kb, args.batch_size, limit=200)  # warm-up: imports, unit registry, compiled KB
        run(path, kb, args.batch_size, limit=200, engine=ReferenceEngine(kb))
        t_fast, fast = run(path, kb, args.batch_size)
        t_ref, ref = run(path, kb, args.batch_size, engine=ReferenceEngine(kb))
        t_base, base = run(path, kb, 1, limit=args.baseline_n, engine=ReferenceEngine(kb))

    rejected = sum(isinstance(o, RecordError) for o in fast)
    verdicts = Counter(o.result.overall for o in fast if not isinstance(o, RecordError))
    same_ref = len(fast) == len(ref) and all(same(a, b) for a, b in zip(fast, ref))
    same_base = all(same(a, b) for a, b in zip(fast, base))
    pps_fast, pps_ref, pps_base = args.n / t_fast, len(ref) / t_ref, len(base) / t_base
    print(f"verdicts: {dict(verdicts)}; rejected: {rejected}")
    print(f"fast (batch {args.batch_size}, compiled KB): {args.n} patients in {t_fast:.2f} s = {pps_fast:,.0f} patients/s")
    print(f"reference (batch {args.batch_size}, KB as written): {len(ref)} patients in {t_ref:.2f} s = {pps_ref:,.0f} patients/s")
    print(f"baseline (fresh Control per patient): {len(base)} patients in {t_base:.2f} s = {pps_base:,.0f} patients/s")
    print(f"speed-up: fast {pps_fast / pps_base:.1f}x the baseline (aim: at least 100x); "
          f"reference {pps_ref / pps_base:.1f}x; fast {pps_fast / pps_ref:.2f}x the reference")
    print(f"results identical: fast = reference on all {len(fast)} patients: {same_ref}; "
          f"fast = baseline on its {len(base)}: {same_base}")
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not (same_ref and same_base):
        sys.exit(1)


if __name__ == "__main__":
    main()
