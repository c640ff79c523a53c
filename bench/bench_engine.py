"""Where a batch's time goes: each step of screening, for the compiled engine and the reference
engine, on the same synthetic patients in one run (CPU time of this process, per patient).

    python bench/bench_engine.py                  # 5,000 patients in batches of 500
    python bench/bench_engine.py -n 2000 --batch-size 1000

Steps: reading and validating the records (JSON, msgspec), deriving findings, then per batch:
grouping the facts by predicate, parsing them as clingo terms, adding the program (parsing the
knowledge base's text), grounding (the facts reach clingo through a context function here),
solving and reading the shown atoms, and turning them into results (the fast engine's
decoding). Both engines must give the same results; the script says so.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import clingo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cohort import synthetic_cohort  # noqa: E402

from pyasp_screen.engine.batch import batch_facts, term_facts  # noqa: E402
from pyasp_screen.engine.engine import Engine  # noqa: E402
from pyasp_screen.engine.reference import ReferenceEngine  # noqa: E402
from pyasp_screen.findings import units  # noqa: E402
from pyasp_screen.findings.derive import derive  # noqa: E402
from pyasp_screen.inputs.record import parse_record  # noqa: E402
from pyasp_screen.knowledge.kb import load_kb  # noqa: E402

STEPS = ("group facts", "facts as terms", "add program", "ground", "solve + read", "results")


def batch_steps(engine, batch) -> tuple[dict[str, float], list, int]:
    c = time.process_time
    t = c()
    _, _, groups = batch_facts(list(batch))
    steps = {"group facts": c() - t}
    t = c()
    context, rules = term_facts(groups)
    steps["facts as terms"] = c() - t
    t = c()
    ctl = clingo.Control(engine._args)
    ctl.add("base", [], engine._program + rules)
    steps["add program"] = c() - t
    t = c()
    ctl.ground([("base", [])], context=context)
    steps["ground"] = c() - t
    t = c()
    with ctl.solve(yield_=True) as handle:
        model = next(iter(handle))
        symbols = model.symbols(shown=True)
        raw = getattr(symbols, "_p_symbols", None)
        keys = list(raw) if raw is not None else list(symbols)
    steps["solve + read"] = c() - t
    atoms = ctl.statistics["problem"]["lp"]["atoms"]
    t = c()
    ids = [f.patient for f in batch]
    if isinstance(engine, Engine):
        results = engine._results(ids, keys, symbols)
    else:  # the reference engine's own decoding, through its public path
        results = engine.screen(batch)
    steps["results"] = c() - t if isinstance(engine, Engine) else 0.0
    return steps, results, atoms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=500)
    args = ap.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    kb = load_kb()
    records = json.loads(json.dumps(synthetic_cohort(args.n)))
    t = time.process_time()
    loaded = [parse_record(r, "cohort").record for r in records]
    t_parse = time.process_time() - t
    gc.freeze()  # the cohort held in memory is not the pipeline's: keep the collector off it
    units.load_registry()  # built once per process (not a cost per patient)
    derive(loaded[0], kb)
    findings, t_derive = [], 0.0
    for i in range(0, len(loaded), args.batch_size):  # batch by batch, as screening does
        t = time.process_time()
        findings += [derive(r, kb) for r in loaded[i:i + args.batch_size]]
        t_derive += time.process_time() - t
        gc.freeze()  # as screen_records does after each batch
    batches = [findings[i:i + args.batch_size] for i in range(0, len(findings), args.batch_size)]
    engines = {"fast": Engine(kb), "reference": ReferenceEngine(kb)}
    for e in engines.values():  # warm-up: compiled program, decoded atoms
        for b in batches:
            e.screen(b)
    out: dict[str, dict[str, float]] = {name: dict.fromkeys(STEPS, 0.0) for name in engines}
    results: dict[str, list] = {}
    atoms: dict[str, int] = {}
    for name, e in engines.items():
        results[name] = []
        atoms[name] = 0
        for b in batches:
            steps, res, a = batch_steps(e, b)
            for k, v in steps.items():
                out[name][k] += v
            atoms[name] += a
            results[name] += [(r.patient, r.statuses, r.verdicts, r.overall) for r in res]
    # A worker replaced after BATCHES_PER_WORKER batches meets every shown atom anew: the
    # results step again with an empty table of decoded atoms.
    cold = Engine(kb)
    cold._decoded = {}
    t_cold = 0.0
    for b in batches:
        t = time.process_time()
        cold.screen(b)
        t_cold += time.process_time() - t
    n = len(findings)
    print(f"{n} synthetic patients, batches of {args.batch_size}; CPU µs per patient")
    print(f"  records (validate, msgspec):  {t_parse / n * 1e6:7.1f}")
    print(f"  derive findings:              {t_derive / n * 1e6:7.1f}")
    print(f"  {'step':28} {'fast':>8} {'reference':>10}")
    for k in STEPS:
        ref = f"{out['reference'][k] / n * 1e6:10.1f}" if k != "results" else "       (*)"
        print(f"  {k:28} {out['fast'][k] / n * 1e6:8.1f} {ref}")
    tot = {name: sum(v.values()) / n * 1e6 for name, v in out.items()}
    print(f"  {'engine total':28} {tot['fast']:8.1f} {tot['reference']:10.1f}   ({tot['reference'] / tot['fast']:.2f}x)")
    print("  (*) the reference engine's decoding is inside its solve + read (it reads one row atom a patient)")
    print(f"  engine total in a new worker    {t_cold / n * 1e6:8.1f}   (every shown atom decoded anew)")
    print(f"  ground atoms per patient (clingo statistics): fast {atoms['fast'] / n:.0f}, "
          f"reference {atoms['reference'] / n:.0f}; grounding µs per atom: fast "
          f"{out['fast']['ground'] / max(atoms['fast'], 1) * 1e6:.2f}, "
          f"reference {out['reference']['ground'] / max(atoms['reference'], 1) * 1e6:.2f}")
    print(f"results identical: {results['fast'] == results['reference']}")
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
