"""The synthetic cohort of bench/cohort.py as an OMOP CDM, for bench/bench_omop.py.

:func:`write_omop` streams N synthetic patients into CSV files, one per CDM table, coded as
docs/omop.md reads them (LOINC + UCUM units, SNOMED CT / ICD-10-CM conditions, RxNorm drug
products under their ingredients with drug_strength, local pyasp_screen concepts for
assessments and score items, an observation period that makes the lists complete or not), and
writes beside them, as JSON Lines, the same patients as native records restricted to what the
CDM expresses (:func:`omop_expressible`), so that the two routes can be timed on the same
persons and their results compared. :func:`load_duckdb` and :func:`load_postgres` create the
tables (pyasp_screen.inputs.omop.schema) and bulk-load the CSV files. Nothing is held in memory
but one patient.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from itertools import count
from pathlib import Path

from cohort import SCREENING, synthetic_patient

LISTS = ["diagnoses", "medications", "transfusions", "growth_factors"]
LOINC = {"creatinine": "2160-0", "weight": "29463-7", "height": "8302-2", "anc": "751-8", "hb": "718-7",
         "alt": "1742-6", "ast": "1920-8", "bilirubin_total": "1975-2", "inr": "6301-6", "aptt": "14979-9",
         "spo2": "59408-5", "ana": "8061-4", "anti_dsdna": "5130-0", "pt": "5902-2", "lvef": "10230-1",
         "fvc_pct_predicted": "19876-2"}
LOCAL_OBS = ("igra", "dlco_hb_corrected_pct_predicted")
UNITS = ["mg/dL", "kg", "cm", "10*9/L", "g/dL", "U/L", "s", "%", "mg"]
DRUGS = {  # vocabulary name -> (ingredient RxNorm code, ingredient name)
    "prednisone": ("8640", "prednisone"), "mycophenolate_mofetil": ("68149", "mycophenolate mofetil"),
    "tacrolimus": ("42316", "tacrolimus"), "azathioprine": ("1256", "azathioprine"),
    "cyclophosphamide": ("3002", "cyclophosphamide"), "belimumab": ("OMOP9000001", "belimumab")}
ROUTES = {"oral": ("26643006", "Oral"), "iv": ("47625008", "Intravenous")}
SLEDAI = ["arthritis", "proteinuria", "rash", "low_complement", "increased_dna_binding", "alopecia",
          "pleurisy", "hematuria"]
ASSESSMENTS = ["hydration_assistance", "hemodynamically_stable", "ssc_progressive", "ssc_subtype"]
TABLES = {
    "person": ["person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth"],
    "observation_period": ["observation_period_id", "person_id", "observation_period_start_date",
                           "observation_period_end_date"],
    "measurement": ["measurement_id", "person_id", "measurement_concept_id", "measurement_date",
                    "value_as_number", "value_as_concept_id", "unit_concept_id", "range_high"],
    "observation": ["observation_id", "person_id", "observation_concept_id", "observation_date",
                    "value_as_number", "value_as_string", "value_as_concept_id"],
    "condition_occurrence": ["condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date",
                             "condition_source_concept_id"],
    "drug_exposure": ["drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date",
                      "drug_exposure_end_date", "quantity", "days_supply", "route_concept_id"],
    "procedure_occurrence": ["procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date"],
}


def vocabulary() -> tuple[list, list, list]:
    """(concept rows, concept_ancestor rows, drug_strength rows) of the bench CDM, and the ids."""
    ids = count(1_000_001)
    concepts, ancestors, strengths = [], [], []
    ref: dict = {}

    def add(key, name, vocab, cls, code, standard="S"):
        cid = next(ids)
        concepts.append((cid, name, vocab, cls, standard, code))
        if standard == "S":
            ancestors.append((cid, cid))
        ref[key] = cid
        return cid

    for name, code in LOINC.items():
        add(("loinc", name), name, "LOINC", "Lab Test", code)
    for u in UNITS:
        add(("unit", u), u, "UCUM", "Unit", u)
    add("positive", "Positive", "Meas Value", "Answer", "bench-pos")
    add("negative", "Negative", "Meas Value", "Answer", "bench-neg")
    add("yes", "Yes", "Yes/No", "Answer", "Y")
    add("no", "No", "Yes/No", "Answer", "N")
    add(("dx", "sle"), "Systemic lupus erythematosus", "SNOMED", "Clinical Finding", "55464009")
    add(("dx", "ssc"), "Systemic sclerosis", "SNOMED", "Clinical Finding", "89155008")
    add(("dx", "ssc_ild"), "Systemic sclerosis with lung involvement", "ICD10CM", "5-char billing code", "M34.81",
        standard=None)
    add("transfusion", "Transfusion of red blood cells", "SNOMED", "Procedure", "116863004")
    for route, (code, name) in ROUTES.items():
        add(("route", route), name, "SNOMED", "Qualifier Value", code)
    for drug, (code, name) in DRUGS.items():
        ing = add(("ingredient", drug), name, "RxNorm" if not code.startswith("OMOP") else "RxNorm Extension",
                  "Ingredient", code)
        prod = add(("product", drug), f"{name} product", "RxNorm Extension", "Clinical Drug", f"OMOP{ing}")
        ancestors.append((ing, prod))
        if drug == "prednisone":
            strengths.append((prod, ing, "2.5", ref[("unit", "mg")]))
    for obs in LOCAL_OBS:
        add(("local", f"observation:{obs}"), obs, "pyasp_screen", "Finding", f"observation:{obs}")
    for code in ([f"assessment:{a}" for a in ASSESSMENTS] + [f"sledai2k:{d}" for d in SLEDAI]
                 + ["organ_involvement:renal", "organ_involvement:mucocutaneous",
                    "eular_acr_2019_sle:met", "acr_eular_2013_ssc:met"]):
        add(("local", code), code, "pyasp_screen", "Finding", code, standard=None)
    return concepts, ancestors, strengths, ref


def omop_expressible(rec: dict, pid: int) -> dict:
    """The native record the CDM of :func:`person_rows` expresses: the person's id, the lists
    complete all four or none (an observation period does not tell them apart), an SSc subtype as
    an assessment on the screening date, a diagnosis recorded absent dropped (a CDM records what
    happened), undated assessments dated on the screening date."""
    out = json.loads(json.dumps(rec))
    out["id"] = str(pid)
    out["complete"] = LISTS if set(rec.get("complete", ())) >= set(LISTS) else []
    dx = []
    for d in out.get("diagnoses", []):
        if d.get("present", True) is not True:
            continue
        if "subtype" in d:
            out.setdefault("assessments", []).append({"name": "ssc_subtype", "value": d.pop("subtype"),
                                                      "date": SCREENING.isoformat()})
        dx.append(d)
    out["diagnoses"] = dx
    for a in out.get("assessments", []):
        a.setdefault("date", SCREENING.isoformat())
    for o in out.get("observations", []):
        if o.get("unit") == "1":
            o.pop("unit")
            o.get("reference_range", {}).pop("unit", None)
    return out


def person_rows(rec: dict, pid: int, ref: dict, ids: dict) -> dict[str, list]:
    """The CDM rows of one expressible native record (rows per table)."""
    rows: dict[str, list] = {t: [] for t in TABLES}
    b = dt.date.fromisoformat(rec["birth_date"])
    rows["person"].append((pid, 8532 if rec["sex"] == "female" else 8507, b.year, b.month, b.day))
    start = SCREENING - dt.timedelta(days=4000 if rec["complete"] else 30)
    rows["observation_period"].append((pid, pid, start, SCREENING))
    for o in rec.get("observations", []):
        value, concept = o["value"], None
        code = o["code"]
        concept = ref[("loinc", code)] if code in LOINC else ref[("local", f"observation:{code}")]
        table = "measurement"
        if isinstance(value, str):
            rows[table].append((next(ids[table]), pid, concept, o["date"], None, ref[value], None, None))
        else:
            unit = ref[("unit", o["unit"])] if o.get("unit") else 0
            high = o.get("reference_range", {}).get("high")
            rows[table].append((next(ids[table]), pid, concept, o["date"], value, None, unit, high))
    for a in rec.get("assessments", []):
        v = a["value"]
        rows["observation"].append((next(ids["observation"]), pid, ref[("local", f"assessment:{a['name']}")], a["date"],
                                    None, v if isinstance(v, str) else None,
                                    (ref["yes"] if v else ref["no"]) if isinstance(v, bool) else None))
    for s in rec.get("sledai2k", []):
        for d, v in s["descriptors"].items():
            rows["observation"].append((next(ids["observation"]), pid, ref[("local", f"sledai2k:{d}")], s["date"],
                                        None, None, ref["yes"] if v else ref["no"]))
    for organ, v in rec.get("organ_involvement", {}).items():
        rows["observation"].append((next(ids["observation"]), pid, ref[("local", f"organ_involvement:{organ}")],
                                    SCREENING, None, None, ref["yes"] if v else ref["no"]))
    for scheme, c in rec.get("classification", {}).items():
        rows["observation"].append((next(ids["observation"]), pid, ref[("local", f"{scheme}:met")], SCREENING,
                                    None, None, ref["yes"] if c["met"] else ref["no"]))
    for d in rec.get("diagnoses", []):
        key = ref[("dx", d["code"])]
        onset = d.get("onset") or SCREENING.isoformat()
        if d["code"] == "ssc_ild":
            rows["condition_occurrence"].append((next(ids["condition_occurrence"]), pid, 0, onset, key))
        else:
            rows["condition_occurrence"].append((next(ids["condition_occurrence"]), pid, key, onset, 0))
    for m in rec.get("medications", []):
        end = m.get("end") or (SCREENING + dt.timedelta(days=29)).isoformat()
        quantity = m["dose"] / 2.5 * 30 if m.get("dose") is not None else None
        rows["drug_exposure"].append((next(ids["drug_exposure"]), pid, ref[("product", m["drug"])], m["start"], end,
                                      quantity, 30 if quantity else None, ref[("route", m.get("route", "oral"))]))
    for t in rec.get("transfusions", []):
        rows["procedure_occurrence"].append((next(ids["procedure_occurrence"]), pid, ref["transfusion"], t["date"]))
    return rows


def write_omop(folder: Path, n: int, seed: int = 1190) -> Path:
    """CSV files of the CDM (one per table, with the vocabulary's) and native.jsonl, for n
    synthetic patients; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    concepts, ancestors, strengths, ref = vocabulary()
    with open(folder / "concept.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["concept_id", "concept_name", "vocabulary_id", "concept_class_id", "standard_concept",
                    "concept_code"])
        w.writerows(concepts)
    with open(folder / "concept_ancestor.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ancestor_concept_id", "descendant_concept_id"])
        w.writerows(ancestors)
    with open(folder / "drug_strength.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["drug_concept_id", "ingredient_concept_id", "amount_value", "amount_unit_concept_id"])
        w.writerows(strengths)
    handles = {t: open(folder / f"{t}.csv", "w", newline="") for t in TABLES}
    writers = {t: csv.writer(h) for t, h in handles.items()}
    for t, cols in TABLES.items():
        writers[t].writerow(cols)
    ids = {t: count(1) for t in TABLES}
    rng = random.Random(seed)
    with open(folder / "native.jsonl", "w", encoding="utf-8") as native:
        for i in range(n):
            rec = omop_expressible(synthetic_patient(i, rng), i + 1)
            native.write(json.dumps(rec, separators=(",", ":")) + "\n")
            for t, rows in person_rows(rec, i + 1, ref, ids).items():
                writers[t].writerows(rows)
    for h in handles.values():
        h.close()
    return folder


def _csv_tables(folder: Path) -> list[tuple[str, list[str], Path]]:
    out = []
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="") as fh:
            out.append((path.stem, next(csv.reader(fh)), path))
    return out


def load_duckdb(folder: Path, db: Path) -> None:
    """A DuckDB CDM from the CSV files (tables created from pyasp_screen.inputs.omop.schema)."""
    import duckdb
    import sqlalchemy as sa

    from pyasp_screen.inputs.omop.schema import metadata

    engine = sa.create_engine(f"duckdb:///{db}")
    metadata().create_all(engine, checkfirst=False)
    engine.dispose()
    con = duckdb.connect(str(db))
    for table, cols, path in _csv_tables(folder):
        con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT * FROM read_csv('{path}', header = true, "
                    "all_varchar = true)")
    con.execute("CHECKPOINT")
    con.close()


def load_postgres(folder: Path, url: str, schema: str) -> None:
    """The same CDM in a PostgreSQL schema (replaced), bulk-loaded with COPY."""
    import psycopg
    import sqlalchemy as sa

    from pyasp_screen.inputs.omop.schema import metadata

    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        pg.execute(f'CREATE SCHEMA "{schema}"')
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    metadata(schema, schema).create_all(engine, checkfirst=False)
    engine.dispose()
    with psycopg.connect(url) as pg:
        for table, cols, path in _csv_tables(folder):
            with pg.cursor().copy(f'COPY "{schema}".{table} ({", ".join(cols)}) FROM STDIN WITH (FORMAT csv, HEADER true)') \
                    as copy, open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    copy.write(chunk)
        for table in TABLES:  # the CDM's DDL indexes person_id (OHDSI CommonDataModel, indices)
            pg.execute(f'CREATE INDEX ON "{schema}".{table} (person_id)')
        pg.execute('ANALYZE')
        pg.commit()
