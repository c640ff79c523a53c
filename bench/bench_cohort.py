"""Benchmark `cohort` and `diff` over a generated cohort (default 10,000 patients).

    python bench/bench_cohort.py            # 10,000 patients
    python bench/bench_cohort.py -n 2000

cohort: screening plus the summary (counts, only-failing, gain, attrition).
diff:   CT1190B version 1 against amendment 1 on the same patients (two screenings).
Both read the same JSON file, as the CLI does; single process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cohort import synthetic_cohort  # noqa: E402

from pyasp_screen.cohorts.cohort import compare, summarize  # noqa: E402
from pyasp_screen.knowledge.kb import load_kb  # noqa: E402
from pyasp_screen.inputs.record import RecordError  # noqa: E402
from pyasp_screen.inputs.files import load_file
from pyasp_screen.engine.screening import screen_records  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10_000)
    args = ap.parse_args()
    v1, a1 = load_kb("ct1190b"), load_kb("ct1190b-amendment1")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cohort.json"
        path.write_text(json.dumps(synthetic_cohort(args.n)))
        list(screen_records((x for _, x in zip(range(100), load_file(path))), v1))  # warm-up

        t = time.perf_counter()
        summary = summarize(screen_records(load_file(path), v1), v1)
        t_cohort = time.perf_counter() - t
        d = summary.as_dict()
        print(f"cohort: {args.n} patients in {t_cohort:.2f} s = {args.n / t_cohort:,.0f} patients/s "
              f"(overall {d['overall']})")

        t = time.perf_counter()
        items = list(load_file(path))
        pairs = ((a, b) for a, b in zip(screen_records(iter(items), v1), screen_records(iter(items), a1))
                 if not isinstance(a, RecordError) and not isinstance(b, RecordError))
        changes, directions, n = compare(pairs, v1, a1)
        t_diff = time.perf_counter() - t
        print(f"diff v1 -> amendment 1: {n} patients in {t_diff:.2f} s = {n / t_diff:,.0f} patients/s "
              f"({len(changes)} change verdict)")


if __name__ == "__main__":
    main()
