"""Benchmark `explain`: time per patient, and the brute-force oracle's time on the same patients.

    python bench/bench_explain.py               # 200 synthetic patients + 100 small records
    python bench/bench_explain.py -n 50 --small 30

Two runs in one process:
1. realistic synthetic patients (bench/cohort.py): median, 95th percentile and maximum time of
   `explain` (overall and both populations, --max 10), all steps included (grounding the
   per-patient program, enumeration, values); then, beside it, explain plus the answer at a
   glance (explain/summary.py: what `pyasp-screen explain` prints), on the same patients;
2. small records (at most 7 known and 3 unknown findings, as in tests/test_explain.py), where
   the brute-force oracle is feasible: the same statistics for `explain` and for the oracle,
   which screens every subset of findings and every value combination.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from cohort import synthetic_cohort  # noqa: E402

from pyasp_screen.explain.explainer import explain  # noqa: E402
from pyasp_screen.findings.derive import derive  # noqa: E402
from pyasp_screen.knowledge.kb import load_kb  # noqa: E402
from pyasp_screen.inputs.record import parse_record  # noqa: E402


def stats(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return f"median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms   (n={len(ms)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200, help="synthetic patients (default 200)")
    ap.add_argument("--small", type=int, default=100, help="small records for the oracle comparison")
    args = ap.parse_args()
    kb = load_kb()

    findings = [derive(parse_record(r, "cohort").record, kb) for r in synthetic_cohort(args.n, seed=7)]
    explain(kb, findings[0])  # warm-up
    times, verdicts = [], {}
    for f in findings:
        t = time.perf_counter()
        _, scopes = explain(kb, f, max_results=10)
        times.append(time.perf_counter() - t)
        verdicts[scopes[0].verdict] = verdicts.get(scopes[0].verdict, 0) + 1
    print(f"explain, synthetic cohort ({verdicts}):")
    print("  " + stats(times))

    from pyasp_screen.engine.engine import Engine  # noqa: E402
    from pyasp_screen.engine.screening import Screened  # noqa: E402
    from pyasp_screen.explain.summary import summarise  # noqa: E402

    results = Engine(kb).screen(findings)
    t_summary = []
    for f, r in zip(findings, results):
        t = time.perf_counter()
        summarise(kb, Screened("bench", f, r), 10)
        t_summary.append(time.perf_counter() - t)
    print("explain + summary (the answer at a glance, as `pyasp-screen explain` prints it), same patients:")
    print("  " + stats(t_summary))

    import test_explain as oracle  # the tests' brute-force oracle and small-record builder
    from oracle import SLOTS

    rng = random.Random(11)
    names = sorted(SLOTS)
    t_explain, t_oracle = [], []
    for _ in range(args.small):
        chosen = rng.sample(names, rng.randint(1, 7))
        n_unknown = rng.randint(0, min(3, len(chosen) - 1))
        unknown = chosen[:n_unknown]
        known = {s: rng.randrange(len(SLOTS[s])) for s in chosen[n_unknown:]}
        t = time.perf_counter()
        _, got = oracle.explained(known, unknown)
        t_explain.append(time.perf_counter() - t)
        t = time.perf_counter()
        _, want = oracle.brute_force(known, unknown)
        t_oracle.append(time.perf_counter() - t)
        assert got == want, (known, unknown)
    print("small records (<= 7 known, <= 3 unknown findings), results identical: True")
    print("  explain: " + stats(t_explain))
    print("  oracle:  " + stats(t_oracle))


if __name__ == "__main__":
    main()
