"""The OMOP CDM tables and columns the reader reads, with their CDM 5.4 types.

Source: OHDSI Common Data Model v5.4 (https://ohdsi.github.io/CommonDataModel/cdm54.html).
Columns marked required must be present for a table to be read at all; optional ones (new in
5.4, or not always filled) are read when present and taken as NULL otherwise. A table that is
missing, or lacks a required column, is not read and the run says so (person is the only table
without which nothing can be read).

:func:`metadata` builds SQLAlchemy tables with these types, so that test fixtures and benches
can create a CDM in DuckDB or PostgreSQL from one declaration (SQLAlchemy writes the DDL of
either dialect).
"""

from __future__ import annotations

# table -> [(column, CDM 5.4 type, required)]; types: id (integer key), concept (integer
# concept id), int, num (NUMERIC), date, datetime, text.
CLINICAL: dict[str, list[tuple[str, str, bool]]] = {
    "person": [
        ("person_id", "id", True), ("gender_concept_id", "concept", True),
        ("year_of_birth", "int", True), ("month_of_birth", "int", False),
        ("day_of_birth", "int", False), ("birth_datetime", "datetime", False),
        ("race_concept_id", "concept", False), ("ethnicity_concept_id", "concept", False),
        ("person_source_value", "text", False), ("gender_source_value", "text", False),
    ],
    "observation_period": [
        ("observation_period_id", "id", False), ("person_id", "id", True),
        ("observation_period_start_date", "date", True), ("observation_period_end_date", "date", True),
        ("period_type_concept_id", "concept", False),
    ],
    "death": [
        ("person_id", "id", True), ("death_date", "date", True), ("death_type_concept_id", "concept", False),
    ],
    "measurement": [
        ("measurement_id", "id", True), ("person_id", "id", True), ("measurement_concept_id", "concept", True),
        ("measurement_date", "date", True), ("measurement_type_concept_id", "concept", False),
        ("operator_concept_id", "concept", False), ("value_as_number", "num", False),
        ("value_as_concept_id", "concept", False), ("unit_concept_id", "concept", False),
        ("range_low", "num", False), ("range_high", "num", False),
        ("measurement_source_value", "text", False), ("measurement_source_concept_id", "concept", False),
        ("unit_source_value", "text", False), ("value_source_value", "text", False),
    ],
    "observation": [
        ("observation_id", "id", True), ("person_id", "id", True), ("observation_concept_id", "concept", True),
        ("observation_date", "date", True), ("observation_type_concept_id", "concept", False),
        ("value_as_number", "num", False), ("value_as_string", "text", False),
        ("value_as_concept_id", "concept", False), ("unit_concept_id", "concept", False),
        ("observation_source_value", "text", False), ("observation_source_concept_id", "concept", False),
        ("unit_source_value", "text", False),
    ],
    "condition_occurrence": [
        ("condition_occurrence_id", "id", True), ("person_id", "id", True),
        ("condition_concept_id", "concept", True), ("condition_start_date", "date", True),
        ("condition_end_date", "date", False), ("condition_type_concept_id", "concept", False),
        ("condition_source_value", "text", False), ("condition_source_concept_id", "concept", False),
    ],
    "drug_exposure": [
        ("drug_exposure_id", "id", True), ("person_id", "id", True), ("drug_concept_id", "concept", True),
        ("drug_exposure_start_date", "date", True), ("drug_exposure_end_date", "date", False),
        ("drug_type_concept_id", "concept", False), ("quantity", "num", False), ("days_supply", "int", False),
        ("sig", "text", False), ("route_concept_id", "concept", False), ("drug_source_value", "text", False),
        ("drug_source_concept_id", "concept", False),
    ],
    "procedure_occurrence": [
        ("procedure_occurrence_id", "id", True), ("person_id", "id", True),
        ("procedure_concept_id", "concept", True), ("procedure_date", "date", True),
        ("procedure_end_date", "date", False), ("procedure_type_concept_id", "concept", False),
        ("procedure_source_value", "text", False), ("procedure_source_concept_id", "concept", False),
    ],
}

VOCABULARY: dict[str, list[tuple[str, str, bool]]] = {
    "concept": [
        ("concept_id", "concept", True), ("concept_name", "text", True), ("domain_id", "text", False),
        ("vocabulary_id", "text", True), ("concept_class_id", "text", True),
        ("standard_concept", "text", False), ("concept_code", "text", True),
        ("valid_start_date", "date", False), ("valid_end_date", "date", False), ("invalid_reason", "text", False),
    ],
    "concept_ancestor": [
        ("ancestor_concept_id", "concept", True), ("descendant_concept_id", "concept", True),
        ("min_levels_of_separation", "int", False), ("max_levels_of_separation", "int", False),
    ],
    "drug_strength": [
        ("drug_concept_id", "concept", True), ("ingredient_concept_id", "concept", True),
        ("amount_value", "num", True), ("amount_unit_concept_id", "concept", True),
        ("numerator_value", "num", True), ("numerator_unit_concept_id", "concept", True),
        ("denominator_value", "num", True), ("denominator_unit_concept_id", "concept", True),
        ("box_size", "int", False), ("valid_start_date", "date", False), ("valid_end_date", "date", False),
        ("invalid_reason", "text", False),
    ],
}

METADATA_TABLES: dict[str, list[tuple[str, str, bool]]] = {
    "cdm_source": [
        ("cdm_source_name", "text", False), ("cdm_source_abbreviation", "text", False),
        ("cdm_holder", "text", False), ("source_release_date", "date", False),
        ("cdm_release_date", "date", False), ("cdm_version", "text", False),
        ("vocabulary_version", "text", False),
    ],
}


def metadata(cdm_schema: str | None = None, vocab_schema: str | None = None):
    """SQLAlchemy MetaData with every table above, typed as in CDM 5.4 (for creating a CDM:
    ``metadata(...).create_all(engine)``). Needs SQLAlchemy (the omop extra)."""
    import sqlalchemy as sa

    types = {"id": sa.BigInteger, "concept": sa.Integer, "int": sa.Integer, "num": sa.Numeric,
             "date": sa.Date, "datetime": sa.DateTime, "text": sa.String(255)}
    md = sa.MetaData()
    for tables, schema in ((CLINICAL, cdm_schema), (METADATA_TABLES, cdm_schema), (VOCABULARY, vocab_schema)):
        for name, cols in tables.items():
            sa.Table(name, md, *(sa.Column(c, types[t]) for c, t, _ in cols), schema=schema)
    return md
