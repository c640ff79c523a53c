"""Benchmark `screen`: patients per second, batched grounding vs one clingo Control per patient.

    python bench/bench_screen.py                 # 10,000 patients, baseline on 1,000
    python bench/bench_screen.py -n 2000 --baseline-n 300

Both figures come from the same run on the same synthetic cohort (bench/cohort.py), so the
ratio is meaningful on a noisy machine. Timed: reading the cohort file (JSON), validating
records, deriving findings, grounding and solving, and collecting results. Single process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cohort import synthetic_cohort  # noqa: E402

from pyasp_screen.knowledge.kb import load_kb  # noqa: E402
from pyasp_screen.inputs.record import RecordError  # noqa: E402
from pyasp_screen.inputs.files import load_file
from pyasp_screen.engine.screening import screen_records  # noqa: E402


def run(path: Path, kb, batch_size: int, limit: int | None = None):
    t0 = time.perf_counter()
    items = load_file(path)
    if limit is not None:
        items = (x for i, x in zip(range(limit), items))
    outcomes = list(screen_records(items, kb, batch_size=batch_size))
    return time.perf_counter() - t0, outcomes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10_000, help="cohort size (default 10000)")
    ap.add_argument("--baseline-n", type=int, default=1_000,
                    help="patients screened by the one-Control-per-patient baseline (default 1000)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--missing", type=float, default=0.15, help="probability a finding is missing")
    args = ap.parse_args()

    kb = load_kb()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cohort.json"
        path.write_text(json.dumps(synthetic_cohort(args.n, p_missing=args.missing)))
        print(f"cohort: {args.n} synthetic patients, {path.stat().st_size / 1e6:.1f} MB JSON, "
              f"p_missing={args.missing}")
        run(path, kb, args.batch_size, limit=200)  # warm-up: imports, unit registry
        t_batch, outcomes = run(path, kb, args.batch_size)
        t_base, base = run(path, kb, 1, limit=args.baseline_n)

    rejected = sum(isinstance(o, RecordError) for o in outcomes)
    verdicts = Counter(o.result.overall for o in outcomes if not isinstance(o, RecordError))
    same = all(a.result.statuses == b.result.statuses and a.result.verdicts == b.result.verdicts
               for a, b in zip(outcomes, base) if not isinstance(a, RecordError))
    pps_batch = args.n / t_batch
    pps_base = len(base) / t_base
    print(f"verdicts: {dict(verdicts)}; rejected: {rejected}")
    print(f"batched (batch {args.batch_size}): {args.n} patients in {t_batch:.2f} s = {pps_batch:,.0f} patients/s")
    print(f"baseline (fresh Control per patient): {len(base)} patients in {t_base:.2f} s = {pps_base:,.0f} patients/s")
    print(f"speed-up: {pps_batch / pps_base:.1f}x; results identical on the baseline's patients: {same}")


if __name__ == "__main__":
    main()
