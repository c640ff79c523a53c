"""Stage 1: patient data in, validated records out.

- :mod:`.record`: the native record format (msgspec structs) and its validation.
- :mod:`.files`: record files and folders (native YAML/JSON, FHIR Bundles).
- :mod:`.fhir`: a FHIR R4 Bundle to a native record.
- :mod:`.bulk`: FHIR Bulk Data exports, joined per patient in bounded memory.
- :mod:`.omop`: OMOP CDM databases (DuckDB, PostgreSQL), one person at a time (docs/omop.md).
- :mod:`.sources`: every input kind as one stream of work items (JSON Lines, Bulk, files, OMOP).

Every problem is a one-line :class:`~pyasp_screen.inputs.record.RecordError`; reading goes on.
"""
