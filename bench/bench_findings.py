"""Reading and deriving findings: CPU per patient beside a baseline tree, and a check that both
trees give identical records, findings and errors on every fixture.

    python bench/bench_findings.py --baseline-tree /tmp/pyasp-s0            # timing
    python bench/bench_findings.py --baseline-tree /tmp/pyasp-s0 --check    # identity

Timing: a synthetic cohort (bench/cohort.py, -n patients, p_missing 0.15) written as one JSON
file, read with ``load_file`` (JSON decoding, the checks of inputs/limits.py, validation) and
as JSON Lines with ``record_from_line``, then derived under CT1190B; CPU time of the worker
process (time.process_time), the best of --repeat passes. This tree and the baseline tree run
in turns (baseline, this, baseline, this ...) in child processes with PYTHONPATH set to each
tree, so both see the same machine load.

Check: each tree dumps, for every input, what the reader gives (the record, as msgspec
encodes it, or the RecordError) and, for every loaded record and every knowledge base
(ct1190b, ct1190b-amendment1, nct07193667, the authored fixture), what derive() gives: every
Finding's fact, name, text, sources and data, the notes, the results not done, or the
RecordInvalid (field, reason). Inputs: synthetic cohorts (seeds 1190, 7, 2026; p_missing 0,
0.15, 0.5), the same with perturbed values and units (--perturbed), every file of kb/*/cases
and tests/data (Bulk exports included), /work/shared/fhir/real when present (FHIR Bundles with
and without a screening date), and hostile mutants of records as JSON, JSON Lines and YAML
text (the refusals of inputs/limits.py). The two dumps must be equal; exit 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from cohort import paths_of, replaced  # noqa: E402

KBS = ("ct1190b", "ct1190b-amendment1", "nct07193667", str(ROOT / "tests/data/authored/nct07432334"))
REAL = Path("/work/shared/fhir/real")

# ---------------------------------------------------------------------------------------
# Inputs made here (deterministic)

UNITS = ["mg/dL", "umol/L", "g/dL", "g/L", "10*9/L", "10*3/uL", "K/uL", "/uL", "U/L", "IU/L", "%",
         "1", "", None, "kg", "[lb_av]", "cm", "[in_i]", "mmol/L", "furlongs", "mL/min", "mg", "g"]
VALUES = [0, 1, -1, 2.5, 0.1, 1e-7, 3.14159, 1e308, 10**30, 120, 1.2, 0.333, "1:80", "positive", "x",
          True, 40, 1.25e-3, 7.0]


def perturbed(records: list[dict], seed: int) -> list[dict]:
    """Records with values, units, comparators, reference ranges and doses changed at random:
    conversions, rounding to the grid, bounds and the errors of impossible values."""
    rng = random.Random(seed)
    out = []
    for rec in records:
        rec = json.loads(json.dumps(rec))
        for o in rec.get("observations", []):
            r = rng.random()
            if r < 0.25:
                o["value"] = round(rng.uniform(-1, 300), rng.randint(0, 5))
            elif r < 0.35:
                o["value"] = rng.choice(VALUES)
            if rng.random() < 0.2:
                o["unit"] = rng.choice(UNITS)
            if rng.random() < 0.1:
                o["comparator"] = rng.choice(["<", "<=", ">", ">="])
            if rng.random() < 0.15:
                o["reference_range"] = {"high": rng.choice([40, 1.2, 0, -3, 55.5, "x"]),
                                        "unit": rng.choice(UNITS[:12])}
            if rng.random() < 0.05:
                o["status"] = rng.choice(["not_done", "unknown"])
        if rng.random() < 0.3 and rec.get("observations"):
            rec["observations"].append(dict(rng.choice(rec["observations"])))  # same day, maybe differing
        for m in rec.get("medications", []):
            if rng.random() < 0.4:
                m["dose"] = rng.choice([5, 7.5, 0.25, 60, 1e6, -2, 12.345, None])
            if rng.random() < 0.2:
                m["unit"] = rng.choice(["mg", "g", "ug", "mL", "furlongs"])
            if rng.random() < 0.3:
                m["dose_changes"] = [{"date": "2026-01-15", "dose": rng.choice([2.5, 10, None]),
                                      "changed": rng.choice([True, "unknown", False])}]
        if rng.random() < 0.2:
            rec["medications"] = rec.get("medications", []) + [
                {"drug": rng.choice(["prednisone", "methylprednisolone", "dexamethasone", "hydrocortisone"]),
                 "start": "2025-11-01", "dose": rng.choice([4, 5, 10, 0.5, 20]),
                 "route": rng.choice(["oral", "iv"])}]
        out.append(rec)
    return out


HOSTILE = ["\ud800", "x\udfffy", "N\nL", "\x00", "\u2028", "A" * 300, "", 1e308, -1e308, float("nan"),
           float("inf"), -float("inf"), 10 ** 30, 2 ** 63, None, True, [], {}, [None], {"": None},
           {"\ud800": 1}, {"k\udc00": [1, {"x": "\udfff"}]}, "2026-02-30", "é", "日本", ["é", "\ud834\udd1e"],
           "anc", "furlongs", "mg/dL", [[[[[[1]]]]]]]
TOKENS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", '"\\ud800"', '"\\udc00x"', '"\\ud834\\udd1e"',
          "[" * 70 + "]" * 70, "[" * 1200 + "]" * 1200, '{"a":' * 66 + "1" + "}" * 66, '"\\u0000"', "9" * 5000,
          '"\\\\ud800"', "1E400", "-0.0", "1e-400"]




def hostile_texts(bases: list[dict], n: int, seed: int) -> list[tuple[str, str]]:
    """(suffix, text): records with hostile values put anywhere (as JSON and YAML) and hostile
    JSON tokens put in place of a value."""
    import yaml

    rng = random.Random(seed)
    out = []
    for k in range(n):
        rec = rng.choice(bases)
        paths = paths_of(rec)
        path = rng.choice(paths[1:])
        mark = "@@TOKEN@@"
        if k % 3 == 0:
            text = json.dumps(replaced(rec, path, mark)).replace(f'"{mark}"', rng.choice(TOKENS))
            out.append((".json", text))
        else:
            mutant = replaced(rec, path, rng.choice(HOSTILE))
            if rng.random() < 0.2:
                mutant = replaced(mutant, rng.choice(paths_of(mutant)[1:]), rng.choice(HOSTILE))
            if k % 3 == 1:
                out.append((".json", json.dumps(mutant)))
            else:
                try:
                    out.append((".yaml", yaml.safe_dump(mutant, allow_unicode=False)))
                except (yaml.YAMLError, UnicodeEncodeError, RecursionError):
                    out.append((".json", json.dumps(mutant)))
    return out


# ---------------------------------------------------------------------------------------
# Dumping (runs in a worker, under one tree)

def _finding_rows(findings) -> dict:
    return {"findings": [[f.fact, f.name, f.text, list(f.sources), f.data] for f in findings.findings],
            "notes": findings.notes, "not_done": findings.not_done,
            "screening_date": str(findings.screening_date), "vocabulary_only": findings.vocabulary_only}


def _derived(record, kbs) -> list:
    from pyasp_screen.findings.derive import derive
    from pyasp_screen.inputs.record import RecordInvalid

    out = []
    for kb in kbs:
        try:
            out.append(_finding_rows(derive(record, kb)))
        except RecordInvalid as e:
            out.append({"invalid": [e.field, e.reason]})
        except Exception as e:  # noqa: BLE001 - a crash is a difference to show, not to stop on
            out.append({"crash": f"{type(e).__name__}: {e}"})
    return out


def _item_rows(item, kbs) -> dict:
    import msgspec

    from pyasp_screen.inputs.record import Loaded, RecordError

    if isinstance(item, RecordError):
        return {"error": str(item)}
    if isinstance(item, Loaded):
        return {"file": item.file, "record": msgspec.json.encode(item.record).decode(),
                "derived": _derived(item.record, kbs)}
    return {"other": repr(item)}


def dump(out_path: Path, perturb: bool) -> None:
    from cohort import synthetic_cohort

    from pyasp_screen.inputs.files import load_file, record_from_line
    from pyasp_screen.inputs.limits import InputRefused, decode_json, load_yaml
    from pyasp_screen.inputs.record import parse_record
    from pyasp_screen.inputs.sources import iter_items, materialize
    from pyasp_screen.knowledge.kb import load_kb

    kbs = [load_kb(k) for k in KBS]
    rows: list = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # files are named relative to it: the same names in every run
        tmp = Path(".")
        cohorts = []
        for seed in (1190, 7, 2026):
            for p in (0.0, 0.15, 0.5):
                cohorts.append((f"synthetic {seed} {p}", synthetic_cohort(600, seed=seed, p_missing=p)))
        if perturb:
            cohorts += [(f"perturbed {k}", perturbed(c, k)) for k, (_, c) in enumerate(cohorts)]
        for name, recs in cohorts:
            path = tmp / "c.json"
            path.write_text(json.dumps(recs))
            rows.append([name, "json", [_item_rows(x, kbs) for x in load_file(path)]])
            lines = [json.dumps(r).encode() for r in recs[:150]]
            rows.append([name, "jsonl", [_item_rows(record_from_line(b, "l"), kbs) for b in lines]])
        paths = sorted(ROOT.glob("kb/*/cases")) + [ROOT / "tests/data"]
        if REAL.is_dir():
            paths += [REAL / "smart-bulk-10"] + sorted((REAL / "synthea-r4").glob("*.json"))
        notes: list[str] = []
        for p in paths:
            for date in (None, dt.date(2026, 3, 1)):
                items = [materialize(x, date) for x in iter_items([p], date, workdir=tmp, notify=notes.append)]
                rows.append([str(p), str(date), [_item_rows(x, kbs) for x in items]])
        rows.append(["notes", notes])
        bases = synthetic_cohort(30, seed=5)
        for k, (suffix, text) in enumerate(hostile_texts(bases, 3000, 17)):
            try:
                data = decode_json(text) if suffix == ".json" else load_yaml(text)
                got = _item_rows(parse_record(data, "h"), kbs[:1]) if isinstance(data, dict) else repr(data)[:200]
            except InputRefused as e:
                got = {"refused": [e.reason, e.field, e.patient]}
            except Exception as e:  # noqa: BLE001
                got = {"exception": f"{type(e).__name__}: {e}"}
            path = tmp / f"h{k % 7}{suffix}"
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            as_file = [_item_rows(x, kbs[:1]) for x in load_file(path)]
            row = [k, got, as_file]
            if suffix == ".json":
                row.append(_item_rows(record_from_line(text.encode("utf-8", "surrogatepass"), "l"), kbs[:1]))
            rows.append(row)
    out_path.write_text(json.dumps(rows, default=repr, ensure_ascii=True))


# ---------------------------------------------------------------------------------------
# Timing (runs in a worker, under one tree)

def timing(n: int, repeat: int, kb_name: str | None) -> dict:
    import gc

    from cohort import synthetic_cohort

    from pyasp_screen.findings import units
    from pyasp_screen.findings.derive import derive
    from pyasp_screen.inputs.files import load_file, record_from_line
    from pyasp_screen.knowledge.kb import load_kb

    kb = load_kb(kb_name)
    units.load_registry()
    recs = synthetic_cohort(n, p_missing=0.15)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.json"
        path.write_text(json.dumps(recs))
        lines = [json.dumps(r).encode() for r in recs]
        derive(next(iter(load_file(path))).record, kb)
        for _ in range(repeat):
            gc.collect()
            c = time.process_time
            t = c()
            loaded = list(load_file(path))
            t_file = c() - t
            t = c()
            from_lines = [record_from_line(b, "l") for b in lines]
            t_lines = c() - t
            records = [x.record for x in loaded]
            del from_lines
            t = c()
            for i in range(0, len(records), 500):  # batch by batch, collector frozen after each (as screen_records)
                gc.disable()
                for r in records[i:i + 500]:
                    derive(r, kb)
                gc.enable()
                gc.freeze()
            t_derive = c() - t
            gc.unfreeze()
            for k, v in (("read JSON file", t_file), ("read JSON Lines", t_lines), ("derive", t_derive)):
                best[k] = min(best.get(k, v), v)
    return {k: v / n * 1e6 for k, v in best.items()}


# ---------------------------------------------------------------------------------------

def _worker(tree: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", *args],
                          env=env, capture_output=True, text=True, cwd=str(tree))


def _first_difference(a: object, b: object, where: str = "") -> None:
    """Print where two dumps first differ, and the two values there."""
    if type(a) is type(b) and isinstance(a, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    if type(a) is type(b) and isinstance(a, dict) and a.keys() == b.keys():
        for k in a:
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], f"{where}.{k}")
    print(f"first difference at {where}:\n  baseline:  {json.dumps(a)[:1000]}\n  this tree: {json.dumps(b)[:1000]}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-tree", type=Path, required=False, help="a checkout to compare with")
    ap.add_argument("--check", action="store_true", help="compare findings instead of timing")
    ap.add_argument("--perturbed", action="store_true", default=True, help=argparse.SUPPRESS)
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3, help="passes per worker (the best counts)")
    ap.add_argument("--rounds", type=int, default=2, help="turns of baseline, this tree")
    ap.add_argument("--kb", default=None)
    ap.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        if args.worker[0] == "dump":
            dump(Path(args.worker[1]), perturb=True)
        else:
            print(json.dumps(timing(args.n, args.repeat, args.kb)))
        return
    trees = {"baseline": args.baseline_tree.resolve(), "this tree": ROOT} if args.baseline_tree else {"this tree": ROOT}
    print(f"load average {_load()} (1, 5, 15 min)")
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            dumps = {}
            for name, tree in trees.items():
                out = Path(tmp) / f"{name}.json"
                proc = _worker(tree, "dump", str(out))
                if proc.returncode:
                    sys.exit(f"{name} ({tree}) failed:\n{proc.stderr[-3000:]}")
                dumps[name] = json.loads(out.read_text())
        a = dumps.get("baseline")
        b = dumps["this tree"]
        n_records = sum(1 for row in b if len(row) == 3 and isinstance(row[2], list)
                        for x in row[2] if isinstance(x, dict) and "record" in x)
        print(f"{len(b)} input groups, {n_records} records read, each derived under {len(KBS)} knowledge bases")
        if a is None:
            return
        if a == b:
            print("identical: records, findings (fact, name, text, sources, data), notes and errors")
        else:
            _first_difference(a, b)
            print(f"DIFFERENT ({len(a)} vs {len(b)} groups)")
            sys.exit(1)
        print(f"load average at the end {_load()}")
        return
    print(f"{args.n} synthetic patients (p_missing 0.15), knowledge base {args.kb or 'ct1190b'}; "
          f"CPU µs per patient, best of {args.repeat} passes per worker")
    results: dict[str, list[dict]] = {k: [] for k in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            proc = _worker(tree, "time", "-n", str(args.n), "--repeat", str(args.repeat),
                           *(["--kb", args.kb] if args.kb else []))
            if proc.returncode:
                sys.exit(f"{name} ({tree}) failed:\n{proc.stderr[-3000:]}")
            results[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    steps = list(results["this tree"][0])
    print(f"  {'':18}" + "".join(f"{k:>18}" for k in trees))
    for step in steps + ["file + derive"]:
        row = []
        for name in trees:
            vals = [r[step] if step in r else r["read JSON file"] + r["derive"] for r in results[name]]
            row.append(min(vals))
        ratio = f"   ({row[1] / row[0]:.2f}x)" if len(row) == 2 else ""
        print(f"  {step:18}" + "".join(f"{v:18.1f}" for v in row) + ratio)
    print(f"load average at the end {_load()}")


if __name__ == "__main__":
    main()
