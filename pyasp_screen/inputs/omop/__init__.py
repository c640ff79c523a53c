"""OMOP Common Data Model databases as input (stage 1): one person at a time, as a native record.

An OHDSI OMOP CDM database (https://ohdsi.github.io/CommonDataModel/, v5.3 and v5.4) is read
through SQLAlchemy Core, with DuckDB (``duckdb:///path/cdm.duckdb``, embedded, nothing to start)
or PostgreSQL (``postgresql://user@host:port/db``, through psycopg) underneath. The database
does the filtering, ordering and grouping; Python holds one person's mapped rows at a time.

- :mod:`.schema`: the CDM tables and columns read (and their CDM 5.4 types, for creating them).
- :mod:`.source`: :class:`~pyasp_screen.inputs.omop.source.OmopSource`: connect, resolve the
  vocabulary's codes to the CDM's concept ids, count what is and is not mapped (the census),
  and stream :class:`OmopPerson` items ordered by ``person_id``.
- :mod:`.mapping`: :func:`~pyasp_screen.inputs.omop.mapping.to_record`: one OmopPerson to a
  native record (pure Python; runs in whichever process screens the person).

The mapping (concepts, domains, units, completeness) is documented in docs/omop.md. This
module itself imports no database library: an OmopPerson is a plain picklable value that a
worker process turns into a record without SQLAlchemy, DuckDB or psycopg.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["OmopError", "OmopSettings", "OmopPerson", "is_database_url", "EXTRA_HINT"]

#: URL schemes read as an OMOP CDM database rather than a file path.
SCHEMES = ("duckdb", "postgresql", "postgres", "postgresql+psycopg")
EXTRA_HINT = "OMOP databases need the omop extra: pip install 'pyasp-screen[omop]'"


def is_database_url(text: str) -> bool:
    """True if ``text`` names an OMOP database (``duckdb:///...``, ``postgresql://...``)."""
    scheme, sep, _ = str(text).partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


class OmopError(Exception):
    """A database that cannot be read as an OMOP CDM: one line naming the database, the
    table or column, and the reason."""


@dataclass(frozen=True)
class OmopSettings:
    """How a person's rows become a record (docs/omop.md, "Interpretation").

    ``complete_days``: the lists (diagnoses, medications, transfusions, growth factors) are
    declared complete when the screening date lies inside an observation period that began at
    least this many days before it; None: never. ``drug_gap_days``: drug exposures of one
    ingredient and route separated by at most this many days are one course (the OHDSI
    drug-era persistence window, 30 days).
    """

    complete_days: int | None = 365
    drug_gap_days: int = 30


class Target(NamedTuple):
    """What a concept maps to: ``kind`` (observation, diagnosis, drug, growth_factor,
    transfusion, assessment, sledai2k, item, classification, organ), the vocabulary name
    (``name``; ``scheme`` for items and classifications) and how it was found (``how``)."""

    kind: str
    name: str
    how: str
    scheme: str = ""


class Measured(NamedTuple):
    """A measurement or observation row, with its mapped target."""

    table: str
    row_id: object
    target: Target
    date: dt.date | None
    operator: str | None         # concept_name of operator_concept_id ("<", "=", ...)
    value_number: object         # value_as_number as the database gives it
    value_concept: str | None    # concept_name of value_as_concept_id
    value_text: str | None       # value_as_string (observation) / value_source_value
    unit_code: str | None        # concept_code of unit_concept_id when its vocabulary is UCUM
    unit_concept: object         # unit_concept_id
    unit_source: str | None      # unit_source_value
    range_low: object
    range_high: object
    concept_name: str | None


class Condition(NamedTuple):
    row_id: object
    target: Target
    start: dt.date | None
    concept_name: str | None


class Exposure(NamedTuple):
    """A drug_exposure row for one of its ingredients, with drug_strength's amount."""

    row_id: object
    target: Target
    start: dt.date | None
    end: dt.date | None
    quantity: object
    days_supply: object
    route_code: str | None       # concept_code of route_concept_id (SNOMED CT)
    route_name: str | None
    drug_name: str | None        # concept_name of drug_concept_id
    amount_value: object         # drug_strength.amount_value for this ingredient
    amount_unit: str | None      # its unit's concept_code (UCUM)
    strength_kind: str           # "amount", "concentration" (numerator/denominator), "none"


class Procedure(NamedTuple):
    row_id: object
    target: Target
    date: dt.date | None
    end: dt.date | None
    concept_name: str | None


@dataclass(frozen=True)
class OmopPerson:
    """One person's rows, as streamed from the CDM (ordered by date, then row id).

    ``file``: the database as shown to people (no password); ``patient``: ``person_id`` as
    text. ``unmapped``: (table, concept_id, vocabulary_id, concept_code, concept_name, rows)
    of this person's rows that map to no finding, when the run counted them per person
    (``--person-id``); None otherwise (the run's census counts them per concept).
    """

    file: str
    patient: str
    gender_concept_id: object
    birth: tuple                  # (year_of_birth, month_of_birth, day_of_birth, birth_datetime)
    periods: tuple                # ((start, end), ...)
    deaths: tuple                 # (death_date, ...)
    measured: tuple[Measured, ...]
    conditions: tuple[Condition, ...]
    exposures: tuple[Exposure, ...]
    procedures: tuple[Procedure, ...]
    settings: OmopSettings
    unmapped: tuple | None = None
