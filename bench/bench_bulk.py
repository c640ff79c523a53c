"""Benchmark the FHIR Bulk Data reader (pyasp_screen.inputs.bulk) on synthetic exports.

    python bench/bench_bulk.py                      # 10,000 and 100,000 patients
    python bench/bench_bulk.py -n 10000 -n 100000 --to-record-limit 10000
    python bench/bench_bulk.py --agreement 2000     # native vs FHIR verdicts only
    python bench/bench_bulk.py -n 2000 --route 5000 # native vs FHIR route, patients/s end to end

For each size: write the export (bench/cohort.py write_bulk_export), then, each in a fresh
process so that its peak RSS is its own:
  iter      iter_bulk_patients alone (lines/s, patients/s, peak RSS);
  to_record to_record on the first --to-record-limit patients, single process (patients/s).
The route step screens the same synthetic patients end to end (read, findings, engine), each
route in a fresh process: native JSON Lines, the FHIR Bulk export (typed decoding), and the
export with full fhir.resources validation; the first two --repeat times, interleaved, and the
best run of each is compared (the ratio to the native route is printed, with every run).
The agreement step screens the same synthetic patients natively and through FHIR
(native_to_fhir -> export -> to_record) with the CT1190B knowledge base and compares the
overall verdicts, also against the native record restricted to what FHIR carries.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cohort import SCREENING, fhir_expressible, iter_synthetic, write_bulk_export  # noqa: E402

from pyasp_screen.inputs import bulk  # noqa: E402
from pyasp_screen.inputs.record import Loaded, RecordError, parse_record  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def step_iter(folder: Path, partition_mb: float) -> dict:
    t = time.perf_counter()
    n_pat = n_lines = n_err = 0
    for item in bulk.iter_bulk_patients(folder, partition_bytes=int(partition_mb * 2**20)):
        if isinstance(item, RecordError):
            n_err += 1
        else:
            n_pat += 1
            n_lines += len(item.lines)
    dt = time.perf_counter() - t
    return {"patients": n_pat, "lines": n_lines, "errors": n_err, "seconds": dt,
            "lines_per_s": n_lines / dt, "patients_per_s": n_pat / dt, "peak_rss_mb": peak_rss_mb()}


def step_to_record(folder: Path, limit: int) -> dict:
    items = []
    for item in bulk.iter_bulk_patients(folder):
        if not isinstance(item, RecordError):
            items.append(item)
            if len(items) >= limit:
                break
    bulk.to_record(items[0], SCREENING)  # imports and builds the fhir.resources models
    t = time.perf_counter()
    ok = sum(isinstance(bulk.to_record(p, SCREENING), Loaded) for p in items)
    dt = time.perf_counter() - t
    return {"patients": len(items), "loaded": ok, "seconds": dt, "patients_per_s": len(items) / dt,
            "ms_per_patient": 1000 * dt / len(items), "peak_rss_mb": peak_rss_mb()}


def step_route(kind: str, n: int, seed: int, validate: bool = False) -> dict:
    """Screen the same n synthetic patients end to end (read, findings, engine) in one process:
    from native JSON Lines records, or from their FHIR Bulk export (typed decoding, or with
    full fhir.resources validation). Imports, the knowledge base and a first batch are warmed
    up before the clock starts."""
    from cohort import write_jsonl

    from pyasp_screen.engine.screening import screen_records
    from pyasp_screen.inputs.sources import iter_items, materialize
    from pyasp_screen.knowledge.kb import load_kb

    kb = load_kb("ct1190b")
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "native":
            src = Path(tmp) / "cohort.jsonl"
            write_jsonl(src, n, seed)
        else:
            src = Path(tmp) / "export"
            write_bulk_export(src, n, seed)
        warm = list(iter_items([src]))[:50]
        list(screen_records((materialize(it, SCREENING, validate_fhir=validate) for it in warm), kb))
        t = time.perf_counter()
        items = (materialize(it, SCREENING, validate_fhir=validate) for it in iter_items([src], SCREENING))
        outcomes = list(screen_records(items, kb))
        dt = time.perf_counter() - t
    screened = sum(not isinstance(o, RecordError) for o in outcomes)
    return {"patients": n, "screened": screened, "seconds": dt, "patients_per_s": n / dt}


def step_agreement(n: int, seed: int) -> dict:
    from pyasp_screen.knowledge.kb import load_kb
    from pyasp_screen.engine.screening import screen_records

    kb = load_kb("ct1190b")
    with tempfile.TemporaryDirectory() as tmp:
        write_bulk_export(Path(tmp), n, seed)
        fhir_items = [bulk.to_record(p, SCREENING) for p in bulk.iter_bulk_patients(Path(tmp))]
    natives = list(iter_synthetic(n, seed))
    full = [parse_record(r, "native") for r in natives]
    expressible = [parse_record(fhir_expressible(r), "native-expressible") for r in natives]

    def results(items):
        return {s.result.patient: s.result
                for s in screen_records(iter(items), kb) if not isinstance(s, RecordError)}

    r_fhir, r_full, r_expr = results(fhir_items), results(full), results(expressible)
    v_fhir, v_full, v_expr = ({p: r.overall for p, r in x.items()} for x in (r_fhir, r_full, r_expr))
    # Why verdicts differ: the top-level criteria whose status differs, native -> FHIR.
    causes: Counter = Counter()
    for p, r in r_full.items():
        if p in r_fhir and r.overall != r_fhir[p].overall:
            for c in kb.criteria:
                a, b = r.statuses.get(c.id), r_fhir[p].statuses.get(c.id)
                if a != b:
                    causes[f"{c.id} {a}->{b}"] += 1
    pairs = Counter((v_full[p], v_fhir.get(p, "error")) for p in v_full)
    same = sum(v_full[p] == v_fhir.get(p) for p in v_full)
    same_expr = sum(v_expr[p] == v_fhir.get(p) for p in v_expr)
    return {"patients": n, "fhir_errors": sum(isinstance(x, RecordError) for x in fhir_items),
            "agree_full": same, "agree_full_rate": same / n,
            "agree_expressible": same_expr, "agree_expressible_rate": same_expr / n,
            "native_to_fhir_pairs": {f"{a} -> {b}": c for (a, b), c in sorted(pairs.items())},
            "causes": dict(causes.most_common(12))}


def child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, action="append", help="patients (repeatable)")
    ap.add_argument("--seed", type=int, default=1190)
    ap.add_argument("--partition-mb", type=float, default=64)
    ap.add_argument("--to-record-limit", type=int, default=10_000)
    ap.add_argument("--agreement", type=int, default=2000, help="patients (0: skip)")
    ap.add_argument("--route", type=int, default=5000,
                    help="patients screened end to end from native records and from FHIR (0: skip)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each route (the best is compared)")
    ap.add_argument("--step", choices=["iter", "to_record", "agreement", "route"], help=argparse.SUPPRESS)
    ap.add_argument("--kind", choices=["native", "fhir", "fhir-validated"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.step == "iter":
        print(json.dumps(step_iter(args.dir, args.partition_mb)))
        return
    if args.step == "to_record":
        print(json.dumps(step_to_record(args.dir, args.to_record_limit)))
        return
    if args.step == "agreement":
        print(json.dumps(step_agreement(args.n[0], args.seed)))
        return
    if args.step == "route":
        print(json.dumps(step_route(args.kind.split("-")[0], args.n[0], args.seed,
                                    validate=args.kind == "fhir-validated")))
        return

    for n in args.n or [10_000, 100_000]:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            counts = write_bulk_export(Path(tmp), n, args.seed)
            size = sum(f.stat().st_size for f in Path(tmp).glob("*.ndjson"))
            print(f"\n{n:,} patients: export written in {time.perf_counter() - t:.1f} s,"
                  f" {sum(counts.values()):,} lines, {size / 2**20:.1f} MiB ({counts})")
            r = child(["--step", "iter", "--dir", tmp, "--partition-mb", str(args.partition_mb)])
            print(f"  iter_bulk_patients (partition {args.partition_mb:g} MiB):"
                  f" {r['seconds']:.2f} s, {r['lines_per_s']:,.0f} lines/s,"
                  f" {r['patients_per_s']:,.0f} patients/s, peak RSS {r['peak_rss_mb']:.0f} MiB"
                  f" ({r['errors']} errors)")
            r = child(["--step", "to_record", "--dir", tmp,
                       "--to-record-limit", str(args.to_record_limit)])
            print(f"  to_record (single process, first {r['patients']:,} patients):"
                  f" {r['seconds']:.1f} s, {r['patients_per_s']:,.0f} patients/s"
                  f" ({r['ms_per_patient']:.2f} ms/patient), {r['loaded']} loaded,"
                  f" peak RSS {r['peak_rss_mb']:.0f} MiB")
    if args.route:
        n = args.route
        print(f"\nend to end, one process, the same {n:,} synthetic patients screened with CT1190B"
              " (read + findings + engine):")
        # Each route runs --repeat times, the routes interleaved, each in a fresh process; the
        # best run of each is compared (on a shared machine the others' load only slows a run).
        runs: dict[str, list[dict]] = {"native": [], "fhir": [], "fhir-validated": []}
        for i in range(args.repeat):
            for kind in runs:
                if kind == "fhir-validated" and i:
                    continue  # once is enough for the slow reference
                runs[kind].append(child(["--step", "route", "--kind", kind, "-n", str(n),
                                         "--seed", str(args.seed)]))
        best = {k: max(v, key=lambda r: r["patients_per_s"]) for k, v in runs.items()}
        base = best["native"]["patients_per_s"]
        labels = {"native": "native records (JSON Lines)", "fhir": "FHIR Bulk export (typed decoding)",
                  "fhir-validated": "FHIR Bulk export, --validate-fhir"}
        for kind, r in best.items():
            all_runs = ", ".join(f"{x['patients_per_s']:,.0f}" for x in runs[kind])
            print(f"  {labels[kind]:<36} {r['seconds']:6.1f} s  {r['patients_per_s']:8,.0f} patients/s"
                  f"  ({r['patients_per_s'] / base:.2f} x native; {r['screened']} screened; runs: {all_runs})")
    if args.agreement:
        r = child(["--step", "agreement", "-n", str(args.agreement), "--seed", str(args.seed)])
        print(f"\nnative vs FHIR route, CT1190B overall verdict, {r['patients']} patients"
              f" ({r['fhir_errors']} FHIR-route errors):")
        print(f"  full native record:        {r['agree_full']} agree"
              f" ({100 * r['agree_full_rate']:.1f} %)")
        print(f"  FHIR-expressible part only: {r['agree_expressible']} agree"
              f" ({100 * r['agree_expressible_rate']:.1f} %)")
        for k, v in r["native_to_fhir_pairs"].items():
            print(f"    native {k} (FHIR): {v}")
        print("  criteria whose status differs among the patients whose verdict differs:")
        for k, v in r["causes"].items():
            print(f"    {k}: {v}")


if __name__ == "__main__":
    main()
