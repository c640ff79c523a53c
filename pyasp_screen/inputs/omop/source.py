"""An OMOP CDM database as a stream of persons (stage 1, in the main process).

:class:`OmopSource` connects through SQLAlchemy Core (DuckDB through duckdb_engine, PostgreSQL
through psycopg), checks which CDM tables and columns exist (``information_schema.columns``,
which both databases have), and then:

1. **resolves the vocabulary** (:mod:`pyasp_screen.knowledge.vocabulary`) to the CDM's concept
   ids, once, from the vocabulary tables: LOINC codes of observations; SNOMED CT codes of
   diagnoses and transfusion procedures with every descendant in ``concept_ancestor``; ICD-10 /
   ICD-10-CM source concepts by the vocabulary's prefixes; RxNorm (and RxNorm Extension)
   ingredients by the vocabulary's RxNorm codes, else by its drug and growth-factor names, with
   every drug product that descends from them; and the local ``pyasp_screen`` vocabulary
   (docs/omop.md) for assessments, score items and findings that have no standard code. This
   concept map is bounded by the vocabulary, not by the database.
2. **streams persons**: one query per table, filtered to mapped concepts and ordered by
   ``person_id`` (then date, then row id) by the database, merged in Python person by person,
   so that at most one person's mapped rows are held at a time. Each person becomes an
   :class:`~pyasp_screen.inputs.omop.OmopPerson`; rows whose ``person_id`` has no person row
   become one RecordError per such id.
3. **counts what is not mapped** (:meth:`OmopSource.census`): rows and persons per concept,
   mapped or not, with a GROUP BY in the database.

Nothing here raises for bad content: a person's rows that cannot be read are named in its
record's notes or in a RecordError. A database that cannot be read at all (no such file, no
connection, no person table) raises :class:`~pyasp_screen.inputs.omop.OmopError` with one line.
"""

from __future__ import annotations

import datetime as dt
import heapq
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyasp_screen.inputs.omop import (
    EXTRA_HINT,
    Condition,
    Exposure,
    Measured,
    OmopError,
    OmopPerson,
    OmopSettings,
    Procedure,
    Target,
)
from pyasp_screen.inputs.omop.schema import CLINICAL, METADATA_TABLES, VOCABULARY
from pyasp_screen.inputs.record import RecordError
from pyasp_screen.knowledge.vocabulary import Vocabulary, library

#: The local vocabulary (vocabulary_id) for findings without a standard code; concept codes
#: are "<kind>:<name>" with a vocabulary name (docs/omop.md).
LOCAL_VOCABULARY = "pyasp_screen"
LOCAL_KINDS = ("observation", "diagnosis", "assessment", "sledai2k", "organ_involvement",
               "eular_acr_2019_sle", "acr_eular_2013_ssc")
SCORE_SCHEMES = {"sledai2k": "sledai2k_descriptors", "eular_acr_2019_sle": "eular_acr_2019_sle_items",
                 "acr_eular_2013_ssc": "acr_eular_2013_ssc_items"}
RXNORM = ("RxNorm", "RxNorm Extension")
ICD10 = ("ICD10", "ICD10CM")
_INTEGER_TYPES = ("int", "bigint", "integer", "smallint", "hugeint", "int4", "int8", "int2", "ubigint",
                  "uinteger", "numeric", "decimal")
FETCH = 5000  # rows per fetch from the database


def _sa():
    try:
        import sqlalchemy
    except ImportError:  # pragma: no cover - the omop extra
        raise OmopError(EXTRA_HINT) from None
    return sqlalchemy


def display_url(url: str) -> str:
    """The URL without its password (postgresql://user:secret@host/db -> postgresql://user@host/db)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    auth, at, host = rest.rpartition("@")
    if at and ":" in auth:
        auth = auth.split(":", 1)[0]
    return f"{scheme}://{auth}{at}{host}"


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    text = " ".join(str(orig).split("\n")[0].split())
    return text or type(orig).__name__


@dataclass
class CensusRow:
    """Rows and persons of one concept in one table, and what it maps to (None: nothing)."""

    table: str
    concept_id: int | None
    vocabulary_id: str | None
    concept_code: str | None
    concept_name: str | None
    rows: int
    persons: int
    targets: list[Target] = field(default_factory=list)
    person_id: int | None = None


class _Peek:
    """An iterator of rows ordered by person_id, with the head row visible."""

    def __init__(self, rows: Iterator[tuple], key: int = 0):
        self.rows = rows
        self.key = key
        self.head = next(rows, None)

    def take(self, pid: int) -> tuple[list, list]:
        """(rows of ``pid``, rows of person ids below it: they have no person row)."""
        mine, orphans = [], []
        while self.head is not None and self.head[self.key] <= pid:
            (mine if self.head[self.key] == pid else orphans).append(self.head)
            self.head = next(self.rows, None)
        return mine, orphans

    def rest(self) -> list:
        out = [] if self.head is None else [self.head]
        out.extend(self.rows)
        self.head = None
        return out


class OmopSource:
    """One OMOP CDM database given as input (see the module docstring).

    ``url``: ``duckdb:///relative/path.duckdb``, ``duckdb:////absolute/path.duckdb`` or
    ``postgresql://user[:password]@host[:port]/database``. ``cdm_schema``: the schema of the
    clinical tables (default: the connection's current schema, ``main`` in DuckDB, the search
    path's first in PostgreSQL); ``vocab_schema``: the schema of concept, concept_ancestor and
    drug_strength (default: the CDM schema). ``person_ids``: read only these persons.
    ``settings``: how rows become records (:class:`~pyasp_screen.inputs.omop.OmopSettings`).
    """

    def __init__(self, url: str, cdm_schema: str | None = None, vocab_schema: str | None = None,
                 person_ids: tuple[int, ...] = (), settings: OmopSettings = OmopSettings(),
                 duckdb_memory: str = "1GB"):
        self.url = url
        self.cdm_schema = cdm_schema
        self.vocab_schema = vocab_schema or cdm_schema
        self.person_ids = tuple(dict.fromkeys(int(p) for p in person_ids))
        self.settings = settings
        self.duckdb_memory = duckdb_memory
        shown = display_url(url)
        if cdm_schema:
            shown += f" (schema {cdm_schema}{', vocabulary ' + self.vocab_schema if self.vocab_schema != cdm_schema else ''})"
        self.display = shown
        self.warnings: list[str] = []
        #: rows of observation_period / death whose person_id has no person row (not read)
        self.orphan_rows: Counter = Counter()
        self._engine = None
        self._columns: dict[str, dict[str, tuple[str, str]]] | None = None
        self._map: _ConceptMap | None = None

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"OmopSource({self.display!r})"

    # -- connection -----------------------------------------------------------------------
    @property
    def dialect(self) -> str:
        return "duckdb" if self.url.lower().startswith("duckdb:") else "postgresql"

    def engine(self):
        if self._engine is None:
            self._engine = self._connect()
        return self._engine

    def _connect(self):
        sa = _sa()
        scheme, _, rest = self.url.partition("://")
        if self.dialect == "duckdb":
            try:
                import duckdb  # noqa: F401
                import duckdb_engine  # noqa: F401
            except ImportError:
                raise OmopError(EXTRA_HINT) from None
            path = rest[1:] if rest.startswith("/") else rest
            if path != ":memory:" and not Path(path).is_file():
                hint = (" (a path after duckdb:/// is relative to the current folder; an absolute path "
                        f"takes four slashes: duckdb:////{path.lstrip('/')})") if not path.startswith("/") else ""
                raise OmopError(f"{self.display}: no DuckDB file {path}{hint}")
            engine = sa.create_engine(
                f"duckdb:///{path}", pool_size=12, max_overflow=4,
                connect_args={"read_only": path != ":memory:",
                              # sorts larger than memory_limit spill here (a read-only file's own
                              # folder may not be writable)
                              "config": {"memory_limit": self.duckdb_memory, "threads": 2,
                                         "temp_directory": str(Path(tempfile.gettempdir()) / "pyasp-screen-duckdb")}})
        else:
            try:
                import psycopg  # noqa: F401
            except ImportError:
                raise OmopError(EXTRA_HINT) from None
            engine = sa.create_engine(f"postgresql+psycopg://{rest}", pool_size=12, max_overflow=4,
                                      connect_args={"connect_timeout": 10, "application_name": "pyasp-screen"})
        try:
            with engine.connect() as c:
                c.execute(sa.select(sa.literal(1))).scalar()
        except Exception as e:  # noqa: BLE001 - any failure to connect is one line
            engine.dispose()
            raise OmopError(f"{self.display}: cannot connect: {_first_line(e)}") from None
        return engine

    def _conn(self):
        c = self.engine().connect()
        if self.dialect == "postgresql":
            c = c.execution_options(postgresql_readonly=True)
        return c

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- tables and columns ------------------------------------------------------------------
    def columns(self) -> dict[str, dict[str, tuple[str, str]]]:
        """table -> lower-case column -> (name as stored, data type), of the tables read."""
        if self._columns is not None:
            return self._columns
        sa = _sa()
        ic = sa.table("columns", sa.column("table_schema"), sa.column("table_name"), sa.column("column_name"),
                      sa.column("data_type"), schema="information_schema")
        found: dict[tuple[str, str], dict[str, tuple[str, str]]] = defaultdict(dict)
        with self._conn() as c:
            current = c.execute(sa.select(sa.func.current_schema())).scalar()
            schemas = {s.lower() for s in (self.cdm_schema or current, self.vocab_schema or current)}
            rows = c.execute(sa.select(ic.c.table_schema, ic.c.table_name, ic.c.column_name, ic.c.data_type)
                             .where(sa.func.lower(ic.c.table_schema).in_(sorted(schemas)))).all()
        stored: dict[str, str] = {}
        for schema, table, column, dtype in rows:
            found[schema.lower(), table.lower()][column.lower()] = (column, str(dtype))
            stored[schema.lower()] = schema
        cdm = (self.cdm_schema or current).lower()
        voc = (self.vocab_schema or current).lower()
        # queries name the schemas as the database stores them (--cdm-schema CDM finds cdm)
        if self.cdm_schema:
            self.cdm_schema = stored.get(cdm, self.cdm_schema)
        if self.vocab_schema:
            self.vocab_schema = stored.get(voc, self.vocab_schema)
        if not any(s == cdm for s, _ in found):
            raise OmopError(f"{self.display}: no schema {cdm!r} with tables (give the CDM's schema with --cdm-schema)")
        out: dict[str, dict[str, tuple[str, str]]] = {}
        for tables, schema in ((CLINICAL, cdm), (METADATA_TABLES, cdm), (VOCABULARY, voc)):
            for table, spec in tables.items():
                cols = found.get((schema, table))
                if cols is None:
                    if table == "person":
                        raise OmopError(f"{self.display}: no person table in schema {schema!r}: not an OMOP CDM "
                                        "(or give its schema with --cdm-schema)")
                    if table != "cdm_source":
                        self.warnings.append(f"table {table} not found in schema {schema!r}: not read")
                    continue
                missing = [c for c, _, req in spec if req and c not in cols]
                bad_id = "person_id" in cols and not any(
                    cols["person_id"][1].lower().startswith(t) for t in _INTEGER_TYPES)
                if missing or bad_id:
                    why = (f"required column{'s' * (len(missing) > 1)} {', '.join(missing)} missing"
                           f" (it has {', '.join(sorted(cols)[:4])}{', ...' if len(cols) > 4 else ''})" if missing
                           else f"person_id is {cols['person_id'][1]}, not an integer as the CDM says")
                    if table == "person":
                        raise OmopError(f"{self.display}: table person: {why}")
                    self.warnings.append(f"table {table}: {why}: not read")
                    continue
                out[table] = cols
        if "concept" not in out:
            self.warnings.append("without the concept table no code can be mapped: every criterion reading "
                                 "data will be unknown")
        self._columns = out
        return out

    def _table(self, name: str, *cols: str):
        """A SQLAlchemy table clause of ``name`` with ``cols`` as stored (missing optional
        columns come back as NULL through :meth:`_col`)."""
        sa = _sa()
        have = self.columns()[name]
        schema = self.vocab_schema if name in VOCABULARY else self.cdm_schema
        return sa.table(name, *(sa.column(have[c][0]) for c in cols if c in have), schema=schema)

    def _col(self, t, name: str, column: str):
        sa = _sa()
        have = self.columns()[name]
        if column in have:
            return t.c[have[column][0]].label(column)
        return sa.null().label(column)

    def has(self, table: str) -> bool:
        return table in self.columns()

    # -- the concept map ----------------------------------------------------------------------
    def concept_map(self, vocabulary: Vocabulary | None = None) -> "_ConceptMap":
        """The concept map of a vocabulary (default: the shared library's), built once each."""
        vocabulary = vocabulary or library()
        if self._map is None or self._map.vocabulary is not vocabulary:
            self._map = _ConceptMap.build(self, vocabulary)
        return self._map

    def open(self, vocabulary: Vocabulary | None = None) -> "OmopSource":
        """Connect, check the tables and resolve the vocabulary now (raises OmopError)."""
        self.concept_map(vocabulary)
        return self

    # -- identity, counts ----------------------------------------------------------------------
    def _count(self, table: str, where_person: bool = True) -> int:
        sa = _sa()
        t = self._table(table, "person_id")
        q = sa.select(sa.func.count()).select_from(t)
        if where_person and self.person_ids:
            q = q.where(self._col(t, table, "person_id").in_(self.person_ids))
        with self._conn() as c:
            return int(c.execute(q).scalar() or 0)

    def count(self) -> int:
        """The number of person rows this source will read."""
        return self._count("person")

    def identity(self) -> dict:
        """What makes two runs read the same data, for --resume: the database (without its
        password), schemas, persons asked for, settings, and each table's row count."""
        counts = {t: self._count(t, where_person=False) for t in CLINICAL if self.has(t)}
        return {"omop": display_url(self.url), "cdm_schema": self.cdm_schema, "vocab_schema": self.vocab_schema,
                "person_ids": list(self.person_ids), "complete_days": self.settings.complete_days,
                "drug_gap_days": self.settings.drug_gap_days, "rows": counts}

    def cdm_source(self) -> dict:
        """The cdm_source row (name, release date, CDM and vocabulary versions), or {}."""
        if not self.has("cdm_source"):
            return {}
        sa = _sa()
        cols = [c for c, _, _ in METADATA_TABLES["cdm_source"]]
        t = self._table("cdm_source", *cols)
        with self._conn() as c:
            row = c.execute(sa.select(*(self._col(t, "cdm_source", k) for k in cols)).limit(1)).first()
        return {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v)
                for k, v in zip(cols, row)} if row else {}

    # -- the census -----------------------------------------------------------------------------
    def census(self, per_person: bool = False, vocabulary: Vocabulary | None = None) -> list[CensusRow]:
        """Rows and persons per concept in every domain table read, mapped or not (the
        database groups). ``per_person``: one row per (person, concept) of the persons asked
        for (``person_ids``), for their records' notes."""
        sa = _sa()
        cmap = self.concept_map(vocabulary)
        out: list[CensusRow] = []
        for table, concept, source in _DOMAIN_CONCEPTS:
            if not self.has(table):
                continue
            t = self._table(table, "person_id", concept, source)
            pid = self._col(t, table, "person_id")
            c1, c2 = self._col(t, table, concept), self._col(t, table, source)
            keys = [c1, c2] + ([pid] if per_person else [])
            q = sa.select(*keys, sa.func.count().label("n"),
                          (sa.func.count(sa.distinct(pid)) if not per_person else sa.literal(1)).label("p"))
            if self.person_ids:
                q = q.where(pid.in_(self.person_ids))
            q = q.group_by(*[k.element if hasattr(k, "element") else k for k in keys
                             if not _is_null(k)])
            with self._conn() as c:
                rows = c.execute(q).all()
            for r in rows:
                cid, sid = _int(r[0]), _int(r[1])
                targets = cmap.targets(table, cid, sid)
                out.append(CensusRow(table, cid, None, None, None, int(r.n), int(r.p), targets,
                                     _int(r[2]) if per_person else None))
        names = cmap.names({r.concept_id for r in out if r.concept_id is not None})
        for r in out:
            r.vocabulary_id, r.concept_code, r.concept_name = names.get(r.concept_id, (None, None, None))
        out.sort(key=lambda r: (r.table, r.person_id or 0, -r.rows, r.concept_id or 0))
        return out

    # -- persons ---------------------------------------------------------------------------------
    def persons(self, vocabulary: Vocabulary | None = None) -> Iterator[OmopPerson | RecordError]:
        """Every person (ordered by person_id) as an OmopPerson, and one RecordError per person
        id that rows refer to but the person table lacks. Holds one person's rows at a time.
        ``vocabulary``: the codes mapped (a knowledge base's; default: the shared library's)."""
        cmap = self.concept_map(vocabulary)
        unmapped: dict[int, list] = defaultdict(list)
        if self.person_ids:
            for r in self.census(per_person=True, vocabulary=vocabulary):
                if not r.targets and r.person_id is not None:
                    unmapped[r.person_id].append((r.table, r.concept_id, r.vocabulary_id, r.concept_code,
                                                  r.concept_name, r.rows))
        conns = []
        try:
            person_rows = self._stream(conns, self._person_query())
            streams = {name: _Peek(rows) for name, rows in self._domain_streams(cmap, conns).items()}
            orphans: dict[int, Counter] = {}
            for prow in person_rows:
                pid = int(prow[0])
                taken: dict[str, list] = {}
                for name, s in streams.items():
                    mine, lost = s.take(pid)
                    taken[name] = mine
                    for row in lost:
                        orphans.setdefault(int(row[0]), Counter())[name] += 1
                yield from self._orphans(orphans)
                yield OmopPerson(
                    file=self.display, patient=str(pid), gender_concept_id=prow[1], birth=tuple(prow[2:6]),
                    periods=tuple((r[1], r[2]) for r in taken.get("observation_period", ())),
                    deaths=tuple(r[1] for r in taken.get("death", ())),
                    measured=tuple(m for r in taken.get("measured", ()) for m in r[1]),
                    conditions=tuple(m for r in taken.get("conditions", ()) for m in r[1]),
                    exposures=tuple(m for r in taken.get("exposures", ()) for m in r[1]),
                    procedures=tuple(m for r in taken.get("procedures", ()) for m in r[1]),
                    settings=self.settings,
                    unmapped=tuple(unmapped.get(pid, ())) if self.person_ids else None)
            for name, s in streams.items():
                for row in s.rest():
                    orphans.setdefault(int(row[0]), Counter())[name] += 1
            yield from self._orphans(orphans)
        finally:
            for c in conns:
                c.close()

    def _orphans(self, orphans: dict[int, Counter]) -> Iterator[RecordError]:
        """One RecordError per person id whose mapped clinical rows have no person row; ids
        with only observation periods or deaths are counted in :attr:`orphan_rows`."""
        for opid in sorted(orphans):
            kinds = orphans.pop(opid)
            if set(kinds) <= {"observation_period", "death"}:
                self.orphan_rows.update(kinds)
            else:
                yield self._orphan(opid, kinds)

    def _orphan(self, pid: int, kinds: Counter) -> RecordError:
        n = sum(kinds.values())
        what = ", ".join(f"{k.replace('measured', 'measurement/observation')} x{v}" for k, v in kinds.items())
        return RecordError(self.display, str(pid), "person_id",
                           f"person_id {pid} has no row in the person table: its {n} mapped row"
                           f"{'s' * (n != 1)} ({what}) are not screened")

    def _stream(self, conns: list, query) -> Iterator[tuple]:
        c = self._conn()
        conns.append(c)
        result = c.execution_options(stream_results=True, yield_per=FETCH).execute(query)
        for part in result.partitions(FETCH):
            yield from part

    def _where_person(self, q, pid):
        q = q.where(pid.is_not(None))
        if self.person_ids:
            q = q.where(pid.in_(self.person_ids))
        return q

    def _person_query(self):
        sa = _sa()
        cols = ["person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth", "birth_datetime"]
        t = self._table("person", *cols)
        pid = _el(self._col(t, "person", "person_id"))
        return self._where_person(sa.select(*(self._col(t, "person", c) for c in cols)), pid).order_by(pid)

    def _domain_streams(self, cmap: "_ConceptMap", conns: list) -> dict[str, Iterator[tuple]]:
        """One iterator per table read, of (person_id, ...) ordered by person_id; the mapped
        tables' rows come as (person_id, [items])."""
        sa = _sa()
        out: dict[str, Iterator[tuple]] = {}
        for table, cols in (("observation_period", ["person_id", "observation_period_start_date",
                                                    "observation_period_end_date"]),
                            ("death", ["person_id", "death_date"])):
            if self.has(table):
                t = self._table(table, *cols)
                sel = [self._col(t, table, c) for c in cols]
                q = self._where_person(sa.select(*sel), _el(sel[0])).order_by(*[_el(s) for s in sel])
                out[table] = ((int(r[0]), *r[1:]) for r in self._stream(conns, q))
        measured = [self._stream(conns, self._measured_query(table, cmap))
                    for table in ("measurement", "observation") if self.has(table) and cmap.measured]
        if measured:
            # measurement and observation: two streams ordered by person_id, merged on it
            merged = heapq.merge(*measured, key=lambda r: (int(r[0]), r[2]))
            out["measured"] = _measured_rows(self, cmap)(merged)
        if self.has("condition_occurrence") and (cmap.conditions or cmap.condition_sources):
            out["conditions"] = _condition_rows(self, cmap)(self._stream(conns, self._condition_query(cmap)))
        if self.has("drug_exposure") and cmap.ingredients:
            out["exposures"] = _exposure_rows(self, cmap)(self._stream(conns, self._exposure_query(cmap)))
        if self.has("procedure_occurrence") and cmap.procedures:
            out["procedures"] = _procedure_rows(self, cmap)(self._stream(conns, self._procedure_query(cmap)))
        return out

    def _concept(self, alias: str):
        t = self._table("concept", "concept_id", "concept_name", "vocabulary_id", "concept_code")
        return t.alias(alias)

    def _measured_query(self, table: str, cmap: "_ConceptMap"):
        sa = _sa()
        measurement = table == "measurement"
        cols = (["measurement_id", "person_id", "measurement_concept_id", "measurement_source_concept_id",
                 "measurement_date", "operator_concept_id", "value_as_number", "value_as_concept_id",
                 "value_source_value", "unit_concept_id", "unit_source_value", "range_low", "range_high"]
                if measurement else
                ["observation_id", "person_id", "observation_concept_id", "observation_source_concept_id",
                 "observation_date", "value_as_number", "value_as_string", "value_as_concept_id",
                 "unit_concept_id", "unit_source_value"])
        t = self._table(table, *cols)
        col = {c: self._col(t, table, c) for c in cols}
        prefix = "measurement" if measurement else "observation"
        ids = sorted(cmap.measured_ids)
        concept_ok = _el(col[f"{prefix}_concept_id"]).in_(ids)
        if self.has(table) and f"{prefix}_source_concept_id" in self.columns()[table]:
            concept_ok = concept_ok | _el(col[f"{prefix}_source_concept_id"]).in_(ids)
        has_concept = self.has("concept")
        joins = t
        extra = []
        if has_concept:
            unit = self._concept("u")
            value = self._concept("v")
            joins = joins.outerjoin(unit, unit.c[self._cname("concept_id")] == _el(col["unit_concept_id"])) \
                if "unit_concept_id" in self.columns()[table] else joins
            joins = joins.outerjoin(value, value.c[self._cname("concept_id")] == _el(col["value_as_concept_id"])) \
                if "value_as_concept_id" in self.columns()[table] else joins
            extra.append(unit.c[self._cname("concept_code")].label("unit_code")
                         if "unit_concept_id" in self.columns()[table] else sa.null().label("unit_code"))
            extra.append(unit.c[self._cname("vocabulary_id")].label("unit_vocabulary")
                         if "unit_concept_id" in self.columns()[table] else sa.null().label("unit_vocabulary"))
            extra.append(value.c[self._cname("concept_name")].label("value_name")
                         if "value_as_concept_id" in self.columns()[table] else sa.null().label("value_name"))
            if measurement and "operator_concept_id" in self.columns()[table]:
                op = self._concept("o")
                joins = joins.outerjoin(op, op.c[self._cname("concept_id")] == _el(col["operator_concept_id"]))
                extra.append(op.c[self._cname("concept_name")].label("operator_name"))
            else:
                extra.append(sa.null().label("operator_name"))
        else:
            extra += [sa.null().label(n) for n in ("unit_code", "unit_vocabulary", "value_name", "operator_name")]
        pid = col["person_id"]
        q = sa.select(pid, col[f"{prefix}_date"], sa.literal(0 if measurement else 1).label("tab"),
                      col[f"{prefix}_id"], *[col[c] for c in cols[2:] if c != f"{prefix}_date"], *extra) \
            .select_from(joins)
        q = self._where_person(q, _el(pid)).where(concept_ok)
        return q.order_by(_el(pid), _el(col[f"{prefix}_date"]), _el(col[f"{prefix}_id"]))

    def _cname(self, column: str) -> str:
        return self.columns()["concept"][column][0]

    def _condition_query(self, cmap: "_ConceptMap"):
        sa = _sa()
        cols = ["condition_occurrence_id", "person_id", "condition_concept_id", "condition_source_concept_id",
                "condition_start_date"]
        t = self._table("condition_occurrence", *cols)
        col = {c: self._col(t, "condition_occurrence", c) for c in cols}
        ok = _el(col["condition_concept_id"]).in_(sorted(cmap.conditions) or [-1])
        if cmap.condition_sources and "condition_source_concept_id" in self.columns()["condition_occurrence"]:
            ok = ok | _el(col["condition_source_concept_id"]).in_(sorted(cmap.condition_sources))
        pid = col["person_id"]
        q = sa.select(pid, col["condition_start_date"], col["condition_occurrence_id"], col["condition_concept_id"],
                      col["condition_source_concept_id"])
        q = self._where_person(q, _el(pid)).where(ok)
        return q.order_by(_el(pid), _el(col["condition_start_date"]), _el(col["condition_occurrence_id"]))

    def _exposure_query(self, cmap: "_ConceptMap"):
        sa = _sa()
        cols = ["drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date",
                "drug_exposure_end_date", "quantity", "days_supply", "route_concept_id"]
        t = self._table("drug_exposure", *cols)
        col = {c: self._col(t, "drug_exposure", c) for c in cols}
        ids = sorted(cmap.ingredients)
        drug = _el(col["drug_concept_id"])
        ok = drug.in_(ids)
        joins = t
        extra = [sa.null().label("route_code"), sa.null().label("route_name"), sa.null().label("drug_name")]
        if self.has("concept_ancestor"):
            ca = self._table("concept_ancestor", "ancestor_concept_id", "descendant_concept_id")
            cac = self.columns()["concept_ancestor"]
            ok = ok | drug.in_(sa.select(ca.c[cac["descendant_concept_id"][0]])
                               .where(ca.c[cac["ancestor_concept_id"][0]].in_(ids)))
        if self.has("concept"):
            route, name = self._concept("r"), self._concept("d")
            if "route_concept_id" in self.columns()["drug_exposure"]:
                joins = joins.outerjoin(route, route.c[self._cname("concept_id")] == _el(col["route_concept_id"]))
                extra[0] = route.c[self._cname("concept_code")].label("route_code")
                extra[1] = route.c[self._cname("concept_name")].label("route_name")
            joins = joins.outerjoin(name, name.c[self._cname("concept_id")] == drug)
            extra[2] = name.c[self._cname("concept_name")].label("drug_name")
        pid = col["person_id"]
        q = sa.select(pid, col["drug_exposure_start_date"], col["drug_exposure_id"], col["drug_concept_id"],
                      col["drug_exposure_end_date"], col["quantity"], col["days_supply"], *extra).select_from(joins)
        q = self._where_person(q, _el(pid)).where(ok)
        return q.order_by(_el(pid), _el(col["drug_exposure_start_date"]), _el(col["drug_exposure_id"]))

    def _procedure_query(self, cmap: "_ConceptMap"):
        sa = _sa()
        cols = ["procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date", "procedure_end_date"]
        t = self._table("procedure_occurrence", *cols)
        col = {c: self._col(t, "procedure_occurrence", c) for c in cols}
        pid = col["person_id"]
        q = sa.select(pid, col["procedure_date"], col["procedure_occurrence_id"], col["procedure_concept_id"],
                      col["procedure_end_date"])
        q = self._where_person(q, _el(pid)).where(_el(col["procedure_concept_id"]).in_(sorted(cmap.procedures)))
        return q.order_by(_el(pid), _el(col["procedure_date"]), _el(col["procedure_occurrence_id"]))


def _el(col):
    """The column under a label (ORDER BY and WHERE want the column, not its label)."""
    return getattr(col, "element", col)


def _is_null(col) -> bool:
    sa = _sa()
    return isinstance(_el(col), sa.sql.elements.Null)


def _int(v) -> int | None:
    if v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _text(v) -> str | None:
    return None if v is None else str(v)


# (table, concept column, source concept column) of each domain table, for the census.
_DOMAIN_CONCEPTS = [
    ("measurement", "measurement_concept_id", "measurement_source_concept_id"),
    ("observation", "observation_concept_id", "observation_source_concept_id"),
    ("condition_occurrence", "condition_concept_id", "condition_source_concept_id"),
    ("drug_exposure", "drug_concept_id", "drug_source_concept_id"),
    ("procedure_occurrence", "procedure_concept_id", "procedure_source_concept_id"),
]


# -- rows of one table, grouped into mapped items (person_id, [items]) ---------------------------

def _measured_rows(source: OmopSource, cmap: "_ConceptMap"):
    def convert(rows):
        for r in rows:
            (pid, date, tab, row_id, concept, src, *rest) = r
            targets = cmap.measured.get(_int(concept)) or cmap.measured.get(_int(src)) or ()
            if tab == 0:
                (op_id, number, value_id, value_source, unit_id, unit_source, low, high,
                 unit_code, unit_vocab, value_name, op_name) = rest
                text = value_source
            else:
                (number, value_string, value_id, unit_id, unit_source, unit_code, unit_vocab, value_name,
                 op_name) = rest
                op_id, low, high, text = None, None, None, value_string
            ucum = unit_code if unit_vocab == "UCUM" and _int(unit_id) else None
            items = [Measured("measurement" if tab == 0 else "observation", row_id, tg, date,
                              op_name if _int(op_id) else None, number, value_name if _int(value_id) else None,
                              _text(text), ucum, _int(unit_id), _text(unit_source), low, high,
                              cmap.name_of(_int(concept)))
                     for tg in targets]
            yield (int(pid), items)
    return convert


def _condition_rows(source: OmopSource, cmap: "_ConceptMap"):
    def convert(rows):
        for pid, start, row_id, concept, src in rows:
            targets = list(cmap.conditions.get(_int(concept), ()))
            targets += [t for t in cmap.condition_sources.get(_int(src), ()) if t.name not in {x.name for x in targets}]
            yield (int(pid), [Condition(row_id, t, start, cmap.name_of(_int(concept))) for t in targets])
    return convert


def _exposure_rows(source: OmopSource, cmap: "_ConceptMap"):
    def convert(rows):
        for pid, start, row_id, concept, end, quantity, days, route_code, route_name, drug_name in rows:
            cid = _int(concept)
            items = []
            for ing in cmap.drug_ingredients(cid):
                target = cmap.ingredients[ing]
                kind, value, unit = cmap.strength.get((cid, ing), ("none", None, None))
                items.append(Exposure(row_id, target, start, end, quantity, days, _text(route_code),
                                      _text(route_name), _text(drug_name), value, unit, kind))
            yield (int(pid), items)
    return convert


def _procedure_rows(source: OmopSource, cmap: "_ConceptMap"):
    def convert(rows):
        for pid, date, row_id, concept, end in rows:
            targets = cmap.procedures.get(_int(concept), ())
            yield (int(pid), [Procedure(row_id, t, date, end, cmap.name_of(_int(concept))) for t in targets])
    return convert


# -- the concept map -------------------------------------------------------------------------------

@dataclass
class _ConceptMap:
    """The CDM's concept ids of everything the vocabulary names (see the module docstring)."""

    measured: dict[int, list[Target]] = field(default_factory=dict)          # measurement / observation
    conditions: dict[int, list[Target]] = field(default_factory=dict)        # condition_concept_id
    condition_sources: dict[int, list[Target]] = field(default_factory=dict)  # ICD-10 source concepts
    ingredients: dict[int, Target] = field(default_factory=dict)             # RxNorm ingredient -> drug
    drug_descendants: dict[int, list[int]] = field(default_factory=dict)     # drug concept -> ingredients
    strength: dict[tuple[int, int], tuple[str, Any, str | None]] = field(default_factory=dict)
    procedures: dict[int, list[Target]] = field(default_factory=dict)
    concept_names: dict[int, str] = field(default_factory=dict)
    source: OmopSource | None = None
    vocabulary: Vocabulary | None = None

    @property
    def measured_ids(self) -> set[int]:
        return set(self.measured)

    def name_of(self, concept_id: int | None) -> str | None:
        return self.concept_names.get(concept_id) if concept_id is not None else None

    def drug_ingredients(self, concept_id: int | None) -> list[int]:
        if concept_id is None:
            return []
        if concept_id in self.ingredients:
            return [concept_id]
        return self.drug_descendants.get(concept_id, [])

    def targets(self, table: str, concept_id: int | None, source_id: int | None) -> list[Target]:
        """What a row of ``table`` with these concepts maps to (the census's view)."""
        if table in ("measurement", "observation"):
            return list(self.measured.get(concept_id) or self.measured.get(source_id) or ())
        if table == "condition_occurrence":
            return list(self.conditions.get(concept_id, ())) + list(self.condition_sources.get(source_id, ()))
        if table == "drug_exposure":
            return [self.ingredients[i] for i in self.drug_ingredients(concept_id)]
        if table == "procedure_occurrence":
            return list(self.procedures.get(concept_id, ()))
        return []

    def names(self, ids: set[int]) -> dict[int, tuple[str, str, str]]:
        """concept_id -> (vocabulary_id, concept_code, concept_name), looked up in the concept table."""
        return _concept_names(self.source, ids) if self.source is not None else {}


    @classmethod
    def build(cls, src: OmopSource, V: Vocabulary) -> "_ConceptMap":  # noqa: C901, N803 - one query per vocabulary
        cmap = cls(source=src, vocabulary=V)
        src.columns()
        if not src.has("concept"):
            return cmap
        sa = _sa()
        cols = ["concept_id", "concept_name", "vocabulary_id", "concept_code", "concept_class_id"]
        t = src._table("concept", *cols)
        c = {k: _el(src._col(t, "concept", k)) for k in cols}
        sel = sa.select(*(src._col(t, "concept", k) for k in cols))

        def rows(where) -> list:
            with src._conn() as conn:
                return [(int(r[0]), _text(r[1]), _text(r[2]), _text(r[3]), _text(r[4]))
                        for r in conn.execute(sel.where(where))]

        def remember(found):
            for cid, name, *_ in found:
                cmap.concept_names[cid] = name

        # observations: LOINC codes
        loinc = sorted(V.loinc_to_observation)
        found = rows((c["vocabulary_id"] == "LOINC") & c["concept_code"].in_(loinc))
        remember(found)
        for cid, name, _, code, _ in found:
            cmap.measured.setdefault(cid, []).append(
                Target("observation", V.loinc_to_observation[code], f"LOINC {code}"))
        # the local vocabulary
        for cid, name, _, code, _ in rows(c["vocabulary_id"] == LOCAL_VOCABULARY):
            cmap.concept_names[cid] = name
            target = _local_target(code or "", V)
            if isinstance(target, str):
                src.warnings.append(f"concept {cid} ({LOCAL_VOCABULARY} {code!r}): {target}: not read")
            elif target.kind == "diagnosis":
                cmap.conditions.setdefault(cid, []).append(target)
            else:
                cmap.measured.setdefault(cid, []).append(target)
        # diagnoses: SNOMED CT with descendants; ICD-10 source concepts by prefix
        snomed = sorted(V.snomed_to_diagnosis)
        found = rows((c["vocabulary_id"] == "SNOMED") & c["concept_code"].in_(snomed))
        remember(found)
        dx = {cid: Target("diagnosis", V.snomed_to_diagnosis[code], f"SNOMED {code}") for cid, _, _, code, _ in found}
        for cid, targets in _with_descendants(src, dx).items():
            cmap.conditions.setdefault(cid, []).extend(t for t in targets if t not in cmap.conditions.get(cid, []))
        prefixes = sorted({p for d in V.diagnoses.values() for p in d.icd10})
        if prefixes:
            found = rows(c["vocabulary_id"].in_(ICD10) & sa.or_(*(c["concept_code"].like(f"{p}%") for p in prefixes)))
            remember(found)
            for cid, _, vocab, code, _ in found:
                name = V.diagnosis_from_icd10(code or "")
                if name:
                    cmap.condition_sources.setdefault(cid, []).append(Target("diagnosis", name, f"{vocab} {code}"))
        # drugs and growth factors: RxNorm ingredients by code, else by name
        codes = sorted(V.rxnorm_to_drug)
        fragments = sorted({f for d in V.drugs.values() for f in d.names}
                           | {g.replace("_", " ") for g in V.growth_factors})
        found = rows((c["concept_class_id"] == "Ingredient") & c["vocabulary_id"].in_(RXNORM)
                     & sa.or_(c["concept_code"].in_(codes),
                              *(sa.func.lower(c["concept_name"]).like(f"%{f}%") for f in fragments)))
        remember(found)
        for cid, name, vocab, code, _ in found:
            target = _ingredient_target(name or "", vocab or "", code or "", V)
            if target is not None:
                cmap.ingredients[cid] = target
        if cmap.ingredients and src.has("concept_ancestor"):
            ca = src._table("concept_ancestor", "ancestor_concept_id", "descendant_concept_id")
            anc, desc = (_el(src._col(ca, "concept_ancestor", k)) for k in ("ancestor_concept_id", "descendant_concept_id"))
            with src._conn() as conn:
                for a, d in conn.execute(sa.select(anc, desc).where(anc.in_(sorted(cmap.ingredients)))):
                    a, d = int(a), int(d)
                    if d not in cmap.ingredients:
                        cmap.drug_descendants.setdefault(d, [])
                        if a not in cmap.drug_descendants[d]:
                            cmap.drug_descendants[d].append(a)
        if cmap.ingredients and src.has("drug_strength"):
            cmap.strength = _strengths(src, sorted(cmap.ingredients))
        # transfusions: SNOMED CT procedures with descendants
        found = rows((c["vocabulary_id"] == "SNOMED") & c["concept_code"].in_(sorted(V.transfusion_procedures)))
        remember(found)
        proc = {cid: Target("transfusion", "transfusion", f"SNOMED {code}") for cid, _, _, code, _ in found}
        cmap.procedures = _with_descendants(src, proc)
        missing = [n for n, ids in (("LOINC", cmap.measured), ("RxNorm ingredient", cmap.ingredients)) if not ids]
        if missing:
            src.warnings.append(f"no {' or '.join(missing)} concept of the vocabulary is in the concept table")
        return cmap


def _concept_names(src: OmopSource, ids: set[int]) -> dict[int, tuple[str, str, str]]:
    """concept_id -> (vocabulary_id, concept_code, concept_name) from the concept table."""
    if not src.has("concept") or not ids:
        return {}
    sa = _sa()
    t = src._table("concept", "concept_id", "vocabulary_id", "concept_code", "concept_name")
    cid = src._col(t, "concept", "concept_id")
    out = {}
    ordered = sorted(ids)
    with src._conn() as c:
        for i in range(0, len(ordered), 1000):
            q = sa.select(cid, src._col(t, "concept", "vocabulary_id"), src._col(t, "concept", "concept_code"),
                          src._col(t, "concept", "concept_name")).where(_el(cid).in_(ordered[i:i + 1000]))
            for r in c.execute(q):
                out[int(r[0])] = (_text(r[1]), _text(r[2]), _text(r[3]))
    return out


def _with_descendants(src: OmopSource, roots: dict[int, Target]) -> dict[int, list[Target]]:
    """Each root concept and every descendant (concept_ancestor) -> the roots' targets; a
    descendant's ``how`` names it and its ancestor."""
    out: dict[int, list[Target]] = {cid: [t] for cid, t in roots.items()}
    if not roots or not src.has("concept_ancestor"):
        return out
    sa = _sa()
    ca = src._table("concept_ancestor", "ancestor_concept_id", "descendant_concept_id")
    anc, desc = (_el(src._col(ca, "concept_ancestor", k)) for k in ("ancestor_concept_id", "descendant_concept_id"))
    with src._conn() as conn:
        pairs = [(int(a), int(d)) for a, d in conn.execute(sa.select(anc, desc).where(anc.in_(sorted(roots))))]
    names = _concept_names(src, {d for _, d in pairs if d not in roots}) if pairs else {}
    for a, d in pairs:
        if d == a or d in roots:
            continue
        vocab, code, name = names.get(d, (None, None, None))
        t = roots[a]
        described = Target(t.kind, t.name, f"{vocab or 'concept'} {code or d} {name!r}, a descendant of {t.how}")
        if not any(x.name == t.name for x in out.get(d, [])):
            out.setdefault(d, []).append(described)
    return out


def _strengths(src: OmopSource, ingredients: list[int]) -> dict:
    """(drug, ingredient) -> ("amount", value, unit code) | ("concentration", None, None)."""
    sa = _sa()
    cols = ["drug_concept_id", "ingredient_concept_id", "amount_value", "amount_unit_concept_id",
            "numerator_value", "denominator_value"]
    t = src._table("drug_strength", *cols)
    col = {k: src._col(t, "drug_strength", k) for k in cols}
    q = sa.select(*col.values())
    joins = t
    if src.has("concept"):
        u = src._concept("au")
        joins = t.outerjoin(u, u.c[src._cname("concept_id")] == _el(col["amount_unit_concept_id"]))
        q = sa.select(*col.values(), u.c[src._cname("concept_code")].label("unit_code"),
                      u.c[src._cname("vocabulary_id")].label("unit_vocabulary"))
    else:
        q = sa.select(*col.values(), sa.null().label("unit_code"), sa.null().label("unit_vocabulary"))
    q = q.select_from(joins).where(_el(col["ingredient_concept_id"]).in_(ingredients))
    out = {}
    with src._conn() as conn:
        for drug, ing, amount, _, num, den, unit, vocab in conn.execute(q):
            key = (int(drug), int(ing))
            if amount is not None:
                out[key] = ("amount", amount, _text(unit) if vocab == "UCUM" else None)
            elif num is not None:
                out[key] = ("concentration", None, None)
    return out


def _local_target(code: str, V: Vocabulary) -> Target | str:  # noqa: N803
    """A concept of the local vocabulary -> its target, or the reason it has none."""
    kind, sep, name = code.partition(":")
    how = f"{LOCAL_VOCABULARY} {code}"
    if not sep or kind not in LOCAL_KINDS or not name:
        return f"not <kind>:<name> with a kind of {', '.join(LOCAL_KINDS)}"
    if kind == "observation":
        return Target("observation", name, how) if name in V.observations else "no such observation in the vocabulary"
    if kind == "diagnosis":
        return Target("diagnosis", name, how) if name in V.diagnoses else "no such diagnosis in the vocabulary"
    if kind == "assessment":
        return Target("assessment", name, how) if name in V.assessments else "no such assessment in the vocabulary"
    if kind == "organ_involvement":
        return Target("organ", name, how) if name in V.organs else "no such organ system in the vocabulary"
    if kind == "sledai2k":
        return Target("sledai2k", name, how, "sledai2k_descriptors")
    if name == "met":
        return Target("classification", kind, how, kind)
    return Target("item", name, how, SCORE_SCHEMES[kind])


def _ingredient_target(name: str, vocab: str, code: str, V: Vocabulary) -> Target | None:  # noqa: N803
    """An RxNorm ingredient -> a vocabulary drug (by RxNorm code first, as FHIR reads
    codings, else by name as FHIR reads text) or a growth factor (by name)."""
    if vocab == "RxNorm" and code in V.rxnorm_to_drug:
        return Target("drug", V.rxnorm_to_drug[code], f"RxNorm {code} ({name})")
    gf = name.strip().lower().replace(" ", "_").replace("-", "_")
    if gf in V.growth_factors:
        return Target("growth_factor", gf, f"{vocab} {code} ({name})")
    drug = V.drug_from_text(name)
    if drug is not None:
        return Target("drug", drug, f"{vocab} {code} ({name}, by name)")
    return None



def census_lines(rows: list[CensusRow], top: int = 5) -> list[str]:
    """The census in a few lines, one per table: rows mapped (to what) and rows read by no
    criterion, with the largest unmapped concepts."""
    out = []
    by_table: dict[str, list[CensusRow]] = defaultdict(list)
    for r in rows:
        by_table[r.table].append(r)
    for table, rs in by_table.items():
        total = sum(r.rows for r in rs)
        mapped = [r for r in rs if r.targets]
        unmapped = sorted((r for r in rs if not r.targets), key=lambda r: -r.rows)
        names = Counter()
        for r in mapped:
            for t in r.targets:
                names[t.name] += r.rows
        text = f"{table}: {total:,} rows; {sum(r.rows for r in mapped):,} of {len(mapped)} concept" \
               f"{'s' * (len(mapped) != 1)} mapped"
        if names:
            text += " (" + ", ".join(f"{n} x{k:,}" for n, k in names.most_common(8)) + \
                    (", ..." if len(names) > 8 else "") + ")"
        if unmapped:
            text += f"; {sum(r.rows for r in unmapped):,} of {len(unmapped)} concept{'s' * (len(unmapped) != 1)} " \
                    "read by no criterion, the largest: " + ", ".join(
                        f"{r.concept_name or 'concept'} ({r.vocabulary_id or '?'} {r.concept_code or r.concept_id})"
                        f" x{r.rows:,}" for r in unmapped[:top])
        out.append(text)
    if any(not r.targets for r in rows):
        out.append("every concept, mapped or not: pyasp-screen omop URL --unmapped all")
    return out
