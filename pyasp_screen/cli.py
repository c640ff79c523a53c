"""The pyasp-screen command line. Each command reads like a sentence:

    pyasp-screen screen kb/ct1190b/cases/          screen example patients
    pyasp-screen screen patient.yaml --format json screen one record, for a program
    pyasp-screen explain patient.yaml              why, what is missing, what would change it
    pyasp-screen params                            list the knowledge base's parameters

Exit codes: 0 every record screened; 1 some record rejected (the others are still
screened and reported); 2 usage error (bad option, unknown knowledge base or parameter,
output that cannot be written).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from pyasp_screen.engine.engine import EngineError
from pyasp_screen.engine.screening import DEFAULT_BATCH, Screened, screen_records
from pyasp_screen.inputs.record import RecordError
from pyasp_screen.knowledge.kb import KBError, KnowledgeBase, load_kb
from pyasp_screen.outputs import render

KB_HELP = ("Knowledge base: a folder with manifest.yaml, or the name of a bundled one. "
           "Default: ct1190b, the CT1190B registry criteria.")
PARAM_HELP = ("Set a parameter for this run, NAME=VALUE (repeatable), e.g. "
              "--param crcl_min=30. 'pyasp-screen params' lists them.")
DATE_HELP = ("Screening date for FHIR Bundles (YYYY-MM-DD). Default: the latest clinical date "
             "in each bundle. Native records carry their own.")


PARAMS_FILE_HELP = "A YAML file of parameters (NAME: VALUE) for larger scenarios; --param wins over it."


def _read_params_file(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise click.UsageError(f"--params {path}: {' '.join(str(e).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise click.UsageError(f"--params {path}: expected a mapping NAME: VALUE")
    return {str(k): ("true" if v is True else "false" if v is False else str(v)) for k, v in data.items()}


def _parse_params(values: tuple[str, ...], params_file: Path | None = None) -> dict[str, str]:
    out = _read_params_file(params_file)
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{v!r} is not NAME=VALUE", param_hint="--param")
        out[name.strip()] = value.strip()
    return out


class KnowledgeBaseFault(click.ClickException):
    """A knowledge base that does not load through its own fault (a rule, its manifest): one
    line "Error: file:line:col: reason", exit 2, without click's "Usage:" lines, since the
    command line was right."""

    exit_code = 2


def _kb_failure(e: KBError) -> click.ClickException:
    """A usage error for a knowledge base that does not exist or a bad --param; else the
    knowledge base's own fault."""
    from pyasp_screen.knowledge.kb import KBUsageError

    if isinstance(e, KBUsageError):
        return click.UsageError(str(e))
    return KnowledgeBaseFault(str(e))


def _load_kb(kb: str | None, params: tuple[str, ...], params_file: Path | None = None) -> KnowledgeBase:
    try:
        return load_kb(kb, _parse_params(params, params_file))
    except KBError as e:
        raise _kb_failure(e) from None


def params_file_option(f):
    return click.option("--params", "params_file", type=click.Path(path_type=Path, dir_okay=False),
                        metavar="FILE", help=PARAMS_FILE_HELP)(f)


def patient_option(f):
    return click.option("--patient", "patient_id", metavar="ID",
                        help="Only the patient with this id, in a file, folder, JSON Lines file or FHIR "
                             "Bulk export that holds many.")(f)


def _of_patient(items: list, patient_id: str | None, record) -> list:
    """The read records (Loaded or RecordError) of the patient ``patient_id``, all when None;
    no such patient among them is a usage error (exit 2) naming how many were read."""
    if patient_id is None:
        return items

    def pid(o):
        return o.patient if isinstance(o, RecordError) else o.record.id
    mine = [o for o in items if pid(o) == patient_id]
    if not mine:
        raise click.UsageError(f"--patient {patient_id}: no patient of that id in {record} "
                               f"({len(items)} record(s) read)")
    return mine


def _check_output(output: Path | None, records: tuple[Path, ...], option: str = "-o") -> None:
    """Refuse an output file that is one of the inputs: it would be emptied before it is read."""
    if output is None or str(output) == "-":
        return
    out = output.resolve()
    for r in records:
        if not isinstance(r, Path):  # an OMOP database
            continue
        r = r.resolve()
        if out == r or (r.is_dir() and r in out.parents
                        and out.suffix.lower() in (".yaml", ".yml", ".json", ".jsonl", ".ndjson")):
            raise click.UsageError(f"{option} {output}: would overwrite the input {r}")


@contextmanager
def _open_output(output: Path | None):
    """Standard output, or the file; an unwritable file is a usage error (exit 2)."""
    if output is None or str(output) == "-":
        try:
            yield sys.stdout
            sys.stdout.flush()
        except BrokenPipeError:  # the reader stopped early (| head): not an error of ours
            sys.stderr.close()
            sys.exit(0)
        except OSError as e:
            click.echo(f"Error: cannot write the output: {e.strerror or e}", err=True)
            sys.exit(2)
        return
    try:
        with open(output, "w", encoding="utf-8") as fh:
            yield fh
    except OSError as e:
        click.echo(f"Error: cannot write {output}: {e.strerror or e}", err=True)
        sys.exit(2)


def _columns() -> int:
    """Table width when the output is not a terminal: $COLUMNS, else 160."""
    import os

    try:
        return max(60, int(os.environ.get("COLUMNS", "160")))
    except ValueError:
        return 160


def _note(message: str) -> None:
    click.echo(f"note: {message}", err=True)


def _items(records, screening_date, knowledge: KnowledgeBase, validate_fhir: bool = False):
    """Every record of the inputs, in order: files, folders, JSON Lines, FHIR Bulk exports,
    FHIR codes mapped with the knowledge base's vocabulary (and validated with fhir.resources
    when ``validate_fhir``); files in folders that are not read are named in a note."""
    from pyasp_screen.inputs.sources import iter_items, materialize

    _export_diagnostics(records)
    vocab = knowledge.vocabulary
    return (materialize(it, screening_date, vocab, validate_fhir=validate_fhir)
            for it in iter_items(list(records), screening_date, vocabulary=vocab, validate_fhir=validate_fhir,
                                 notify=_note))


def _export_diagnostics(records) -> None:
    """Print what each FHIR Bulk export says about itself (its manifest, log.ndjson, error
    files) on standard error: shown as the export's diagnostics, never as rejected records."""
    from pyasp_screen.inputs.bulk import export_diagnostics, is_bulk_export

    for p in records:
        if not isinstance(p, Path):  # an OMOP database: its own warnings are printed when opened
            continue
        if p.is_dir() and is_bulk_export(p):
            lines = export_diagnostics(p)
            if lines:
                click.echo(f"export diagnostics of {p} (what the export reports; not errors):", err=True)
                for line in lines:
                    click.echo(f"  {line}", err=True)


VALIDATE_FHIR_HELP = ("Also validate every FHIR resource against the R4 definitions with fhir.resources "
                      "(several times slower: bench/bench_bulk.py; elements R4 does not define are then errors). By default "
                      "the elements read are decoded and type-checked, the others skipped.")


def validate_fhir_option(f):
    return click.option("--validate-fhir", is_flag=True, help=VALIDATE_FHIR_HELP)(f)


class _Input(click.ParamType):
    """A record file or folder (a Path), or an OMOP database URL (kept as text)."""

    name = "input"

    def convert(self, value, param, ctx):
        from pyasp_screen.inputs.omop import is_database_url

        return str(value) if is_database_url(str(value)) else Path(value)


INPUT = _Input()
OMOP_HELP = ("RECORDS may also be OMOP CDM databases: duckdb:///relative/cdm.duckdb, duckdb:////absolute/cdm.duckdb "
             "or postgresql://user@host:port/db (docs/omop.md).")


def omop_options(f):
    """--cdm-schema, --vocab-schema, --person-id, --omop-complete-days, --omop-drug-gap-days."""
    options = [
        click.option("--cdm-schema", metavar="SCHEMA",
                     help="OMOP: the schema of the CDM tables (default: the database's current schema)."),
        click.option("--vocab-schema", metavar="SCHEMA",
                     help="OMOP: the schema of concept, concept_ancestor, drug_strength (default: --cdm-schema)."),
        click.option("--person-id", "person_ids", multiple=True, type=int, metavar="ID",
                     help="OMOP: read only this person_id (repeatable)."),
        click.option("--omop-complete-days", default="365", show_default=True, metavar="DAYS|never",
                     help="OMOP: declare diagnoses, medications, transfusions and growth factors complete when "
                          "the screening date lies in an observation period that began at least DAYS before it; "
                          "'never' leaves every list open."),
        click.option("--omop-drug-gap-days", type=click.IntRange(0, 3650), default=30, show_default=True,
                     help="OMOP: drug exposures at most this many days apart are one treatment course "
                          "(the OHDSI drug-era persistence window)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _inputs(records, cdm_schema=None, vocab_schema=None, person_ids=(), omop_complete_days="365",
            omop_drug_gap_days=30, one_person=False, vocabulary=None, **_):
    """The inputs with every OMOP URL opened as an OmopSource (its warnings printed); a
    database that cannot be read is a one-line error (exit 2)."""
    from pyasp_screen.inputs.omop import OmopError, OmopSettings

    urls = [r for r in records if not isinstance(r, Path)]
    if not urls:
        if person_ids or cdm_schema or vocab_schema:
            raise click.UsageError("--person-id, --cdm-schema and --vocab-schema apply to OMOP databases only")
        return tuple(records)
    text = str(omop_complete_days).strip().lower()
    if text in ("never", "none"):
        complete = None
    else:
        try:
            complete = int(text)
            if complete < 0:
                raise ValueError
        except ValueError:
            raise click.BadParameter(f"{omop_complete_days!r} is not a number of days or 'never'",
                                     param_hint="--omop-complete-days") from None
    settings = OmopSettings(complete_days=complete, drug_gap_days=omop_drug_gap_days)
    out = []
    for r in records:
        if isinstance(r, Path):
            out.append(r)
            continue
        try:
            from pyasp_screen.inputs.omop.source import OmopSource

            source = OmopSource(r, cdm_schema, vocab_schema, tuple(person_ids), settings).open(vocabulary)
            if one_person and len(source.person_ids) != 1:
                n = source.count() if not source.person_ids else len(source.person_ids)
                if n != 1:
                    raise click.UsageError(f"{source}: one person is explained at a time: give --person-id ID"
                                           + (f" (the database holds {n:,})" if not source.person_ids else ""))
        except OmopError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(2)
        for w in source.warnings:
            click.echo(f"warning: {source}: {w}", err=True)
        out.append(source)
    return tuple(out)


def _omop_census(inputs, vocabulary=None) -> None:
    """For each OMOP database read whole: what is and is not mapped, per table (stderr)."""
    from pyasp_screen.inputs.omop.source import census_lines

    for source in inputs:
        if not isinstance(source, Path) and not source.person_ids:
            for line in census_lines(source.census(vocabulary=vocabulary)):
                click.echo(f"omop: {line}", err=True)


def _omop_after(inputs) -> None:
    for source in inputs:
        if not isinstance(source, Path):
            if source.orphan_rows:
                what = ", ".join(f"{t} x{n:,}" for t, n in sorted(source.orphan_rows.items()))
                click.echo(f"warning: {source}: rows of person ids that the person table lacks, not read: {what}",
                           err=True)
            source.close()


class _Main(click.Group):
    """The command group; a knowledge base that clingo fails on (or whose grounding passes
    its time or memory limit) ends any command in one line, exit 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EngineError as e:
            click.echo(f"error: {' '.join(str(e).split())}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:  # Ctrl-C (cohort says more: what is kept for --resume)
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit,
                SystemExit):
            raise
        except Exception as e:  # a fault of pyasp-screen itself: one line, the traceback on request
            if os.environ.get("PYASP_SCREEN_DEBUG"):
                raise
            click.echo(f"internal error: {type(e).__name__}: {' '.join(str(e).split())[:300]} (a fault of "
                       "pyasp-screen, please report it; PYASP_SCREEN_DEBUG=1 shows the traceback)", err=True)
            sys.exit(3)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="pyasp-screen")
def main() -> None:
    """Screen patients against clinical-trial eligibility criteria written in ASP.

    Every criterion's status (met / not_met / unknown) and every verdict (eligible /
    ineligible / undetermined) is derived by clingo from the knowledge base's rules. Data
    missing from a record is unknown, never false: a patient is eligible only if the
    recorded data prove it, and ineligible only if they rule it out.
    """


def _default_jobs() -> int:
    from pyasp_screen.scale.distribute import default_jobs

    return default_jobs()


@main.command()
@click.argument("records", nargs=-1, required=True, type=INPUT)
@click.option("--kb", metavar="DIR", help=KB_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="table for people; json and csv for programs (docs/output.md).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=PARAM_HELP)
@params_file_option
@click.option("--details/--no-details", default=None,
              help="Table: every criterion of every patient (default: on for a single patient).")
@click.option("--explain", "with_explain", is_flag=True,
              help="Add each patient's shortest sufficient reason and what is missing (slower).")
@click.option("--screening-date", type=click.DateTime(["%Y-%m-%d"]), help=DATE_HELP)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the result here instead of standard output.")
@validate_fhir_option
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=DEFAULT_BATCH, show_default=True,
              help="Patients grounded together in one clingo program.")
@click.option("--facts", "show_facts", is_flag=True,
              help="Print the ASP facts each record becomes (what the rules read), not the verdicts.")
@click.option("-j", "--jobs", type=click.IntRange(1, 512), default=_default_jobs, show_default="every core",
              help="Worker processes for --explain (patients are explained on every core).")
@omop_options
def screen(records, kb, fmt, params, params_file, details, with_explain, screening_date, output, validate_fhir,
           batch_size, show_facts, jobs, **omop):
    """Screen RECORDS (YAML/JSON records, FHIR R4 Bundles, or folders of them; or persons of an
    OMOP CDM database: duckdb:///cdm.duckdb --person-id 42, postgresql://user@host/db).

    With --facts, print instead the ASP facts each record becomes (what the knowledge base
    reads), each with what it says and the record fields it came from.

    \b
    Examples:
      pyasp-screen screen kb/ct1190b/cases/
      pyasp-screen screen patient.yaml --details
      pyasp-screen screen cohort/ --format csv -o verdicts.csv
      pyasp-screen screen patient.yaml --param crcl_weight=adjusted
      pyasp-screen screen bundle.json --screening-date 2020-06-01 --explain
      pyasp-screen screen patient.yaml --facts
      pyasp-screen screen duckdb:///cdm.duckdb --person-id 1001 --person-id 1002
    """
    from pyasp_screen.inputs.omop import OmopError

    knowledge = _load_kb(kb, params, params_file)
    records = _inputs(records, vocabulary=knowledge.vocabulary, **omop)
    _check_output(output, records)
    err = Console(stderr=True, highlight=False)
    when = screening_date.date() if screening_date else None
    try:
        outcomes = list(screen_records(_items(records, when, knowledge, validate_fhir), knowledge, batch_size))
        explanations = _explain_all(outcomes, knowledge, jobs) if with_explain else None
        with _open_output(output) as out:
            if show_facts:
                from pyasp_screen.outputs.facts import write_facts

                write_facts(outcomes, out)
            elif fmt == "csv":
                render.write_csv(outcomes, knowledge, out, explanations)
            elif fmt == "json":
                render.write_json(outcomes, knowledge, out, explanations)
            else:
                screened = sum(1 for o in outcomes if isinstance(o, Screened))
                console = Console(file=out, width=None if out.isatty() else _columns())
                render.write_table(outcomes, knowledge, console,
                                   details if details is not None else screened == 1, explanations)
    except EngineError as e:
        err.print(f"error: {escape(str(e))}", soft_wrap=True)
        sys.exit(2)
    except OmopError as e:
        err.print(f"Error: {escape(str(e))}")
        sys.exit(2)
    _omop_after(records)
    rejected = [o for o in outcomes if isinstance(o, RecordError)]
    if fmt != "table" or output is not None or show_facts:
        for o in rejected:
            err.print(f"rejected: {escape(str(o))}", soft_wrap=True)
    sys.exit(1 if rejected else 0)


def _warn_many_jobs(jobs: int) -> None:
    """A warning for --jobs above twice this machine's cores (workers on this machine)."""
    from pyasp_screen.scale.distribute import default_jobs

    if jobs > 2 * default_jobs():
        click.echo(f"warning: --jobs {jobs} is more than twice the {default_jobs()} core(s) here: each worker "
                   "grounds in memory of its own, and more workers than cores only wait", err=True)


def _explain_all(outcomes, knowledge, jobs: int) -> dict:
    """The overall answer of every screened patient (explain/summary.py), by id()."""
    from pyasp_screen.scale.explain_all import summarise_all

    _warn_many_jobs(jobs)
    screened = [o for o in outcomes if isinstance(o, Screened)]
    summaries = summarise_all(knowledge, screened, jobs=jobs, max_results=5, scopes=["overall"])
    return {id(o): s for o, s in zip(screened, summaries)}


@main.command(name="explain")
@click.argument("record", type=INPUT)
@click.option("--kb", metavar="DIR", help=KB_HELP)
@click.option("--max", "max_results", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="At most this many explanations of each kind, smallest first.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=PARAM_HELP)
@params_file_option
@click.option("--screening-date", type=click.DateTime(["%Y-%m-%d"]), help=DATE_HELP)
@click.option("--details", is_flag=True,
              help="After the answer: every explanation of every population (a population only where "
                   "it differs from the overall one), derived values with their inputs, every finding "
                   "with its age against its window.")
@click.option("--population", help="Explain this population's verdict only (e.g. sle, ssc).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the result here instead of standard output.")
@validate_fhir_option
@click.option("--questionnaire", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Also write a FHIR R4 Questionnaire holding only the missing data that could change "
                   "this patient's verdict, for a coordinator to fill in (its QuestionnaireResponse is "
                   "read with the patient's FHIR resources).")
@patient_option
@omop_options
def explain_cmd(record, kb, max_results, fmt, params, params_file, screening_date, details, population, output,
                validate_fhir, questionnaire, patient_id, **omop):
    """Explain one patient's verdict: the answer first, in the protocol's words.

    \b
    undetermined what to measure or record, in order, with the values that would make
                 the patient eligible and those that would exclude
    ineligible   the smallest sufficient reason (each value against the threshold it
                 misses) and the nearest miss (the change that would make it eligible)
    eligible     the criteria met with the thinnest margins, value against threshold
    Then each population where it differs, values too old to count, the categories
    declared complete, changed parameters and the registry sentences cited.
    --details adds every explanation (docs/explanations.md); --format json gives the
    same as data, every derived value as a number with its unit (docs/output.md).

    \b
    Examples:
      pyasp-screen explain kb/ct1190b/cases/sle-in-7b-not-met.yaml
      pyasp-screen explain patient.yaml --details
      pyasp-screen explain patient.yaml --population ssc
      pyasp-screen explain patient.yaml --format json --max 3
      pyasp-screen explain bundle.json --questionnaire to-ask.json
      pyasp-screen explain duckdb:///cdm.duckdb --person-id 1001
      pyasp-screen explain bulk-export/ --patient 79a66c97-0f5b-4e6b-9d8a-53a6f8e57eba
    """
    from pyasp_screen.explain.explainer import explain
    from pyasp_screen.explain.summary import summarise
    from pyasp_screen.inputs.omop import OmopError

    knowledge = _load_kb(kb, params, params_file)
    population = population.lower() if population else None
    if population is not None and population not in knowledge.populations:
        raise click.UsageError(f"--population {population}: one of {', '.join(knowledge.populations)}")
    inputs = _inputs((record,), one_person=True, vocabulary=knowledge.vocabulary, **omop)
    _check_output(output, inputs)
    when = screening_date.date() if screening_date else None
    try:
        # --patient picks the record before screening: one patient of an export is screened alone
        items = _of_patient(list(_items(inputs, when, knowledge, validate_fhir)), patient_id, record)
        outcomes = list(screen_records(items, knowledge))
    except OmopError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
    _omop_after(inputs)
    rejected = [o for o in outcomes if isinstance(o, RecordError)]
    for o in rejected:
        click.echo(f"rejected: {o}", err=True)
    screened = [o for o in outcomes if isinstance(o, Screened)]
    if questionnaire is not None:
        _write_missing_questionnaire(questionnaire, screened, knowledge, max_results)
    defaults = _load_kb(kb, ()) if params or params_file else None
    with _open_output(output) as out:
        docs = []
        for k, s in enumerate(screened):
            scopes = [population] if population else None
            explained = explain(knowledge, s.findings, max_results=max_results, scopes=scopes)
            doc = summarise(knowledge, s, max_results, scopes, explained)
            if doc["parameters_changed"] and defaults is not None:  # the same patient, protocol defaults
                base = next(screen_records(_items((Path(s.file),), when, defaults, validate_fhir), defaults), None) \
                    if Path(s.file).is_file() and len(screened) == 1 else None
                if isinstance(base, Screened):
                    doc["with_defaults"] = {"overall": base.result.overall, "verdicts": dict(base.result.verdicts)}
            if fmt == "json":
                docs.append(doc)
            else:
                if k:
                    out.write("\n")
                one = s.file if Path(s.file).is_file() else f"{record} --patient {s.result.patient}"
                hint = (f"More detail: pyasp-screen explain {one} --details"
                        + "".join(f" --param {n}={p.display().split()[0]}"
                                  for n, p in knowledge.parameters.items() if p.value != p.default)
                        if not details else None)
                render.write_summary_text(doc, out, details, hint=hint)
        if fmt == "json":
            out.write(render.json_text(render.explain_document(docs, rejected, knowledge)))
    sys.exit(1 if rejected else 0)


def _write_missing_questionnaire(path: Path, screened, knowledge, max_results: int) -> None:
    """explain --questionnaire: the Questionnaire of the patient's verdict-changing missing data."""
    import json

    from pyasp_screen.outputs.questionnaire import missing_data_questionnaire

    if len(screened) != 1:
        click.echo(f"Error: --questionnaire needs one screened patient ({len(screened)} here)", err=True)
        sys.exit(2)
    q = missing_data_questionnaire(knowledge, screened[0].findings, max_results=max_results)
    try:
        path.write_text(json.dumps(q, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as e:
        click.echo(f"Error: cannot write {path}: {e.strerror or e}", err=True)
        sys.exit(2)
    n = len(q.get("item", []))
    click.echo(f"wrote {path}: {n} question group{'s' * (n != 1)} that could change the verdict", err=True)


@main.command()
@click.option("--kb", metavar="DIR", help=KB_HELP)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the Questionnaire here instead of standard output.")
def questionnaire(kb, output):
    """Write a FHIR R4 Questionnaire for everything the knowledge base reads that EHRs do not code.

    SLEDAI-2K descriptors, classification-criteria items, organ involvement, clinicians'
    assessments, tests and diagnoses with no standard code, and whether each list the
    criteria close (medications, transfusions, diagnoses ...) is complete. A coordinator
    fills it in (any FHIR Questionnaire tool); a QuestionnaireResponse to it, in the
    patient's Bundle or Bulk export, is read with the patient's other resources (docs/fhir.md).

    \b
    Examples:
      pyasp-screen questionnaire -o ct1190b-questionnaire.json
      pyasp-screen questionnaire --kb nct07193667
    """
    import json

    from pyasp_screen.outputs.questionnaire import kb_questionnaire

    knowledge = _load_kb(kb, ())
    q = kb_questionnaire(knowledge)
    with _open_output(output) as out:
        out.write(json.dumps(q, indent=2, ensure_ascii=False) + "\n")


@main.command()
@click.option("--kb", metavar="DIR", help=KB_HELP)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=PARAM_HELP)
@params_file_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def params(kb, params, params_file, fmt):
    """List the knowledge base's parameters: name, value, default, unit, the criteria that
    use it, and what it means. Change one with --param NAME=VALUE on any command."""
    import json
    from dataclasses import replace

    from rich.table import Table

    from pyasp_screen.knowledge.kb import parameter_uses

    knowledge = _load_kb(kb, params, params_file)
    uses = parameter_uses(knowledge)
    if fmt == "json":
        json.dump([{"name": p.name, "kind": p.kind, "value": p.display(),
                    "default": replace(p, value=p.default).display(), "unit": p.unit,
                    "choices": list(p.choices), "range": list(p.range) if p.range else None,
                    "used_by": uses.get(p.name, []), "stage": p.stage, "doc": p.doc}
                   for p in knowledge.parameters.values()], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"{knowledge.name} v{knowledge.version} parameters", title_justify="left")
    for col in ("name", "value", "default", "used by", "meaning"):
        table.add_column(col, overflow="fold")
    for p in knowledge.parameters.values():
        table.add_row(p.name, p.display(), replace(p, value=p.default).display(),
                      ", ".join(uses.get(p.name, [])), escape(p.doc))
    console.print(table)


@main.command()
@click.argument("record", type=click.Path(path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="FINDING=VALUE[UNIT]",
              help="Give a finding this value, e.g. --set anc=1.2 --set hb=11g/dL --set ssc_ild=absent.")
@click.option("--unset", "unsets", multiple=True, metavar="FINDING",
              help="Make a finding unknown (remove its entries), e.g. --unset inr.")
@click.option("--kb", metavar="DIR", help=KB_HELP)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Parameters of the what-if only (the baseline keeps the defaults).")
@params_file_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@patient_option
def whatif(record, sets, unsets, kb, params, params_file, fmt, patient_id):
    """Compare a patient as recorded with a what-if: edited findings and/or parameters.

    Prints the verdicts side by side, every criterion whose status changes (old -> new)
    and the shortest sufficient reason for the new verdict. The record file is never
    modified. Findings are named as in docs/vocabulary.md; a new value is a result dated
    on the screening date (a retest).

    \b
    Examples:
      pyasp-screen whatif kb/ct1190b/cases/sle-in-7b-not-met.yaml --set anc=1.2
      pyasp-screen whatif patient.yaml --set creatinine=90umol/L --param crcl_min=30
      pyasp-screen whatif patient.yaml --unset inr --format json
    """
    import json

    from pyasp_screen.cohorts.whatif import EditError, compare

    if not (sets or unsets or params or params_file):
        raise click.UsageError("nothing to change: give --set, --unset, --param or --params")
    base_kb = _load_kb(kb, ())
    new_kb = _load_kb(kb, params, params_file)
    loaded = _of_patient(list(_items([record], None, new_kb)), patient_id, record)
    errors = [o for o in loaded if isinstance(o, RecordError)]
    if errors or len(loaded) != 1:
        for e in errors:
            click.echo(f"rejected: {e}", err=True)
        if not errors:
            click.echo(f"Error: {record} holds {len(loaded)} records; whatif takes one: choose it with "
                       "--patient ID", err=True)
        sys.exit(1 if errors else 2)
    try:
        comparison = compare(loaded[0].record, list(sets), list(unsets), base_kb, new_kb)
    except EditError as e:
        raise click.UsageError(str(e)) from None
    doc = comparison.document()
    if fmt == "json":
        json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    for line in render.whatif_lines(doc, comparison, new_kb):
        click.echo(line)


@main.command()
@click.argument("record", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The file to write; its extension picks the format: .svg .png .pdf (Graphviz), "
                   ".dot, .graphml, .json (networkx node-link), .mmd (Mermaid).")
@click.option("--kb", metavar="DIR", help=KB_HELP)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=PARAM_HELP)
@params_file_option
@click.option("--show", type=click.Choice(["explanation", "all", "reasons", "missing"]), default="explanation",
              show_default=True,
              help="explanation: the chosen explanation only (finding -> criterion -> verdict); all: every "
                   "finding that matters and every unknown that could, through the criteria's components; "
                   "reasons: all, the chosen sufficient reason's findings only; missing: all, unknown findings only.")
@click.option("--population", help="Only this population's criteria (e.g. sle, ssc).")
@click.option("--screening-date", type=click.DateTime(["%Y-%m-%d"]), help=DATE_HELP)
@patient_option
def graph(record, output, kb, params, params_file, show, population, screening_date, patient_id):
    """Draw one patient's explanation graph, coloured by status: by default the chosen
    explanation only (the findings of the smallest sufficient reason, or the findings to
    measure, -> the criteria they settle -> the verdicts); --show all for every finding
    and criterion component (docs/graphs.md).

    \b
    Examples:
      pyasp-screen graph kb/ct1190b/cases/sle-in-7b-not-met.yaml -o why.svg
      pyasp-screen graph patient.yaml -o why.png --show all
      pyasp-screen graph patient.yaml -o graph.mmd --population sle
      pyasp-screen graph patient.yaml -o graph.json --show missing
    """
    from pyasp_screen.explain.explainer import Explainer, explain_scope
    from pyasp_screen.explain.summary import summarise
    from pyasp_screen.outputs import graph as graphs

    knowledge = _load_kb(kb, params, params_file)
    population = population.lower() if population else None
    if population is not None and population not in knowledge.populations:
        raise click.UsageError(f"--population {population}: one of {', '.join(knowledge.populations)}")
    if output.suffix.lower() not in graphs.FORMATS:
        raise click.UsageError(f"-o {output}: unknown format; use one of {', '.join(graphs.FORMATS)}")
    _check_output(output, (record,))
    when = screening_date.date() if screening_date else None
    outcomes = list(screen_records(_of_patient(list(_items((record,), when, knowledge)), patient_id, record),
                                   knowledge))
    for o in outcomes:
        if isinstance(o, RecordError):
            click.echo(f"rejected: {o}", err=True)
    screened = [o for o in outcomes if isinstance(o, Screened)]
    if len(screened) != 1:
        if screened:
            click.echo(f"Error: {record} holds {len(screened)} patients; graph draws one: choose it with "
                       "--patient ID", err=True)
        sys.exit(1 if not screened else 2)
    ex = Explainer(knowledge, screened[0].findings)
    scope = population or "overall"
    if show == "explanation":
        scopes = [scope] if population else None
        explanations = [explain_scope(ex, sc, ex.verdict()[sc], max_results=10)
                        for sc in (scopes or ["overall"] + list(knowledge.populations))]
        g = graphs.build_explanation(summarise(knowledge, screened[0], 10, scopes, (ex, explanations)), knowledge)
    else:
        explanation = explain_scope(ex, scope, ex.verdict()[scope], max_results=1)
        g = graphs.build(ex, explanation, show=show, population=population)
        g.graph["parameters"] = render.kb_header(knowledge)["parameters_changed"]
    try:
        graphs.write(g, knowledge, output)
    except graphs.GraphError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
    except OSError as e:
        click.echo(f"Error: cannot write {output}: {e.strerror or e}", err=True)
        sys.exit(2)
    click.echo(f"{output}: {g.number_of_nodes()} nodes, {g.number_of_edges()} edges", err=True)
    sys.exit(1 if len(outcomes) > len(screened) else 0)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The page has no login: keep the default (this machine only) "
                   "unless the network is trusted.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--kb", metavar="DIR", help=KB_HELP)
@click.option("--records", type=click.Path(path_type=Path, exists=True, file_okay=False),
              metavar="DIR", help="A folder of record files the start page lists, to open with one click.")
@click.option("--max-upload", type=click.FloatRange(0.001, 1024), default=16, show_default=True, metavar="MB",
              help="The largest record accepted (megabytes); a larger request gets 413.")
def serve(host, port, kb, records, max_upload):
    """Serve a local web page for screening one patient at a time: open a record (upload a
    YAML/JSON record or FHIR Bundle, or pick one of --records DIR), see every criterion with
    its registry sentence, the verdicts, the explanation and its graph, and change a value
    or parameter to see what changes. JSON endpoints return what --format json prints:
    POST /api/screen, /api/explain, /api/whatif, /api/graph (docs/web.md).

    \b
    Examples:
      pyasp-screen serve --records kb/ct1190b/cases/
      pyasp-screen serve --kb ct1190b-amendment1 --port 8080
      curl --data-binary @patient.yaml http://127.0.0.1:8000/api/screen
    """
    from pyasp_screen.extras import MissingExtra, require
    from pyasp_screen.web import REQUIRED

    try:
        for module in REQUIRED:
            require(module, "web", "serve (the web page)")
    except MissingExtra as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
    import uvicorn

    from pyasp_screen.web.app import create_app
    from pyasp_screen.web.service import InputError

    local = host in ("127.0.0.1", "localhost", "::1")
    try:
        app = create_app(kb, records, int(max_upload * (1 << 20)),
                         allowed_hosts=None if local else ["*"])
    except InputError as e:
        raise click.UsageError(str(e)) from None
    if not local:
        click.echo(f"warning: listening on {host}: anyone who can reach this address can open the page "
                   "(it has no login); the default --host 127.0.0.1 keeps it to this machine", err=True)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"pyasp-screen: serving {app.state.kbs.base.name} on http://{shown}:{port}/ (Ctrl-C stops)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.command(name="check")
@click.argument("kb_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Check exactness with this parameter value instead of the manifest's (repeatable).")
@params_file_option
@click.option("--every-reading", is_flag=True,
              help="Also check exactness under every other value of each choice and boolean parameter, "
                   "one at a time (a few seconds each).")
def check_cmd(kb_dir, params, params_file, every_reading):
    """Check a knowledge base (default: the bundled ct1190b) before screening with it.

    Prints one line per problem, file:line:col: message, and exits 1 if there is any:
    files outside the knowledge base (an #include, a manifest path, extends: refused, like
    #script and @functions), ASP syntax errors and clingo warnings, predicates nothing
    provides, criteria without rules or registry sentences, sentences not in the protocol
    word for word, rules for undeclared criteria or components, duplicate IDs, parameters used
    but not declared or declared but unused, thresholds in the wrong unit, mistakes that leave
    a criterion unknown forever (a result read without a look-back window, a component with no
    rules, a scheme whose items are never declared), a bad vocabulary.yaml or example case,
    and, when all that is clean, exactness: every criterion's met / not_met and every
    population's verdict checked against the completions of generated records
    (docs/semantics.md), under the manifest's parameters, those of --param, or with
    --every-reading every reading of the choice and boolean parameters.
    """
    from pyasp_screen.authoring.check import check_kb_dir, readings
    from pyasp_screen.knowledge.kb import resolve_kb_dir

    try:
        directory = resolve_kb_dir(kb_dir)
    except KBError as e:
        raise click.UsageError(str(e)) from None
    overrides = _parse_params(params, params_file)
    if overrides:
        try:
            load_kb(directory, overrides)
        except KBError as e:
            if isinstance(_kb_failure(e), click.UsageError):
                raise click.UsageError(str(e)) from None  # else the knowledge base's own fault: reported below
    problems = check_kb_dir(directory, params=overrides, every_reading=every_reading)
    for p in problems:
        click.echo(str(p))
    click.echo(f"{directory}: {len(problems)} problem(s)" if problems else f"{directory}: no problems", err=True)
    if not every_reading and not problems:
        try:
            others = readings(load_kb(directory, overrides))
        except KBError:
            others = []
        if others:
            click.echo(f"exactness checked under {'these' if overrides else 'the default'} parameters; "
                       f"{len(others)} other reading(s) of its choice and boolean parameters: "
                       "add --every-reading to check them too", err=True)
    sys.exit(1 if problems else 0)


@main.command(name="test")
@click.argument("kb_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("-k", "pattern", metavar="PATTERN", help="Only the example patients whose name contains PATTERN.")
@click.option("--coverage", "show_coverage", is_flag=True,
              help="Print, for every criterion and component, how many example patients reached met, "
                   "not met and unknown.")
def test_cmd(kb_dir, pattern, show_coverage):
    """Screen every example patient of a knowledge base (cases/*.yaml) and compare with its
    expected verdicts and statuses (cases/*.expected.yaml). Prints the differences (a verdict
    that differs names the criteria that make it, marking those the expectations leave out),
    which criteria no example patient takes to met, not met or unknown, and a closing line
    "N passed, M failed"; exits 1 on any failure."""
    from pyasp_screen.authoring.cases import coverage, run_cases
    from pyasp_screen.knowledge.kb import resolve_kb_dir

    try:
        directory = resolve_kb_dir(kb_dir)
        load_kb(directory)
    except KBError as e:
        raise _kb_failure(e) from None
    try:
        results = run_cases(directory, pattern)
    except EngineError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
    if not results:
        click.echo(f"no example patient in {directory / 'cases'}" + (f" matches {pattern!r}" if pattern else ""),
                   err=True)
    for r in results:
        click.echo(f"{'PASS' if r.passed else 'FAIL'} {r.name}")
        for d in r.differences:
            click.echo(f"    {d}")
    if any(r.statuses for r in results) and (show_coverage or not pattern):
        cov = coverage(directory, results)
        if show_coverage:
            click.echo(f"coverage over {len(results)} example patient(s):")
            w = max(len("condition"), *(len(c) for c in cov.counts))
            click.echo(f"    {'condition':<{w}} {'met':>5} {'not met':>8} {'unknown':>8}")
            for cid, n in cov.counts.items():
                click.echo(f"    {cid:<{w}} {n['met']:>5} {n['not_met']:>8} {n['unknown']:>8}")
        gaps = cov.gaps()
        words = {"met": "met", "not_met": "not met", "unknown": "unknown"}
        if gaps:
            click.echo("coverage: no example patient takes " + "; ".join(
                f"{', '.join(ids)} to {words[st]}" for st, ids in gaps.items())
                + ("" if show_coverage else " (--coverage for every count)"))
        else:
            click.echo("coverage: every criterion is met, not met and unknown in some example patient")
    passed = sum(r.passed for r in results)
    click.echo(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if results and passed == len(results) else 1)


@main.command(name="new")
@click.argument("path", type=click.Path(path_type=Path))
def new_cmd(path):
    """Start a knowledge base at PATH: a manifest with two parameters, one commented
    criterion and three example patients, which check and test pass at once.
    docs/authoring.md walks through growing it."""
    from pyasp_screen.authoring.cases import new_kb

    if not path.parent.is_dir():
        raise click.UsageError(f"{path.parent}: no such folder (create it first)")
    try:
        files = new_kb(path)
    except FileExistsError as e:
        raise click.UsageError(str(e)) from None
    except OSError as e:
        click.echo(f"Error: cannot create {path}: {e.strerror or e}", err=True)
        sys.exit(2)
    for f in files:
        click.echo(f"created {f}")
    click.echo(f"next: pyasp-screen check {path} && pyasp-screen test {path}")


@main.command(name="omop")
@click.argument("database")
@click.option("--cdm-schema", metavar="SCHEMA", help="The schema of the CDM tables (default: the current schema).")
@click.option("--vocab-schema", metavar="SCHEMA", help="The schema of the vocabulary tables (default: --cdm-schema).")
@click.option("--person-id", "person_ids", multiple=True, type=int, metavar="ID",
              help="Count only this person's rows (repeatable).")
@click.option("--unmapped", default="20", show_default=True, metavar="N|all",
              help="List this many of the concepts read by no criterion, largest first.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def omop_cmd(database, cdm_schema, vocab_schema, person_ids, unmapped, fmt):
    """What an OMOP CDM database holds for the knowledge bases: every concept in its domain
    tables (measurement, observation, condition_occurrence, drug_exposure,
    procedure_occurrence) with its rows and persons, and the finding it maps to, or none.

    DATABASE is duckdb:///relative.duckdb, duckdb:////absolute.duckdb or
    postgresql://user@host:port/db. The mapping is described in docs/omop.md.

    \b
    Examples:
      pyasp-screen omop duckdb:///cdm.duckdb
      pyasp-screen omop postgresql://me@dbhost/ohdsi --cdm-schema cdm --unmapped all --format json
    """
    import json

    from rich.table import Table

    from pyasp_screen.inputs.omop import OmopError, is_database_url

    if not is_database_url(database):
        raise click.UsageError(f"{database}: not an OMOP database URL (duckdb:///... or postgresql://...)")
    limit = None if unmapped.strip().lower() == "all" else None
    if unmapped.strip().lower() != "all":
        try:
            limit = max(0, int(unmapped))
        except ValueError:
            raise click.BadParameter(f"{unmapped!r} is not a number or 'all'", param_hint="--unmapped") from None
    (source,) = _inputs((database,), cdm_schema, vocab_schema, person_ids)
    try:
        rows = source.census()
        info, persons = source.cdm_source(), source.count()
    except OmopError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
    finally:
        source.close()
    mapped = [r for r in rows if r.targets]
    rest = sorted((r for r in rows if not r.targets), key=lambda r: -r.rows)
    shown = rest if limit is None else rest[:limit]

    def as_dict(r):
        return {"table": r.table, "concept_id": r.concept_id, "vocabulary_id": r.vocabulary_id,
                "concept_code": r.concept_code, "concept_name": r.concept_name, "rows": r.rows, "persons": r.persons,
                "maps_to": [{"kind": t.kind, "name": t.name, "how": t.how} for t in r.targets]}

    if fmt == "json":
        json.dump({"database": source.display, "cdm_source": info, "persons": persons, "warnings": source.warnings,
                   "mapped": [as_dict(r) for r in mapped], "unmapped": [as_dict(r) for r in shown],
                   "unmapped_concepts": len(rest), "unmapped_rows": sum(r.rows for r in rest)},
                  sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    console = Console(width=None if sys.stdout.isatty() else _columns())
    console.print(f"{escape(source.display)}: {persons:,} persons"
                  + (f"; {escape(str(info.get('cdm_source_name')))}, released {info.get('source_release_date')}, "
                     f"CDM {info.get('cdm_version')}" if info else ""))
    table = Table(title="Concepts mapped to findings", title_justify="left")
    for col in ("table", "concept", "name", "rows", "persons", "maps to"):
        table.add_column(col, overflow="fold")
    for r in mapped:
        table.add_row(r.table, f"{r.concept_id} {r.vocabulary_id or ''} {r.concept_code or ''}".strip(),
                      escape(r.concept_name or ""), f"{r.rows:,}", f"{r.persons:,}",
                      escape("; ".join(f"{t.kind} {t.name} ({t.how})" for t in r.targets)))
    console.print(table)
    table = Table(title=f"Concepts read by no criterion: {len(rest):,} concepts, {sum(r.rows for r in rest):,} rows"
                        + (f" (the {len(shown)} largest)" if len(shown) < len(rest) else ""), title_justify="left")
    for col in ("table", "concept", "name", "rows", "persons"):
        table.add_column(col, overflow="fold")
    for r in shown:
        table.add_row(r.table, f"{r.concept_id} {r.vocabulary_id or ''} {r.concept_code or ''}".strip(),
                      escape(r.concept_name or "(not in the concept table)"), f"{r.rows:,}", f"{r.persons:,}")
    console.print(table)


def scale_options(f):
    """--results, --resume, --jobs, --scheduler, --batch-size: cohort-scale runs (docs/scale.md)."""
    from pyasp_screen.scale.distribute import default_jobs

    options = [
        click.option("--results", type=click.Path(path_type=Path), metavar="FILE",
                     help="Also write one row per patient to FILE as the run goes, in input order: "
                          ".jsonl, .csv, or .parquet (a folder of Parquet parts)."),
        click.option("--resume", is_flag=True,
                     help="Continue an interrupted run: keep the rows already in --results FILE, "
                          "screen only the rest (same inputs and options)."),
        click.option("--overwrite", is_flag=True,
                     help="Replace an existing --results FILE (without it, an existing one is refused: "
                          "it may be a long run to --resume)."),
        click.option("-j", "--jobs", type=click.IntRange(1, 512), default=default_jobs(), show_default=True,
                     help="Worker processes on this machine (default: every core)."),
        click.option("--scheduler", metavar="ADDRESS",
                     help="Run on a Dask distributed cluster: its scheduler's address (tcp://host:8786), "
                          "or 'local' for a LocalCluster of --jobs workers on this machine."),
        click.option("--batch-size", type=click.IntRange(1, 100_000), default=DEFAULT_BATCH, show_default=True,
                     help="Patients grounded together in one clingo program (and sent together to a worker)."),
        click.option("--validate-fhir", is_flag=True, help=VALIDATE_FHIR_HELP),
    ]
    for option in reversed(options):
        f = option(f)
    return f


COMPARE_DEFAULTS_UP_TO = 5000  # cohort --param: patients up to which the defaults are run beside it


def _run_at_scale(command, records, kbs, tally, *, results, resume, overwrite, jobs, scheduler, batch_size,
                  screening_date, validate_fhir=False):
    """Screen RECORDS with one knowledge base (cohort) or two (diff) through
    pyasp_screen.scale.distribute, add every patient to ``tally`` (a CohortSummary or DiffTally),
    and stream rows to the results file. Exits 2 on a failure of the run itself, 130 on
    Ctrl-C; the results file then holds every batch finished, ready for --resume."""
    import time

    from pyasp_screen.inputs.omop import OmopError
    from pyasp_screen.inputs.sources import count_hint, iter_items
    from pyasp_screen.outputs.stream import Layout, ResultsError, ResultsFile, format_of
    from pyasp_screen.scale.distribute import (
        Job,
        RunError,
        SeenIds,
        run,
        run_identity,
    )

    if resume and results is None:
        raise click.UsageError("--resume needs --results FILE (the file of the run to continue)")
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite: choose one")
    if results is not None:
        try:
            fmt = format_of(results)
        except ResultsError as e:
            raise click.UsageError(f"--results {e}") from None
        _check_output(results, records, "--results")
        exists = (any(results.iterdir()) if results.is_dir() else results.stat().st_size > 0) \
            if results.exists() else False
        if exists and not (resume or overwrite):
            raise click.UsageError(f"--results {results} already exists: add --resume to continue that run, "
                                   "or --overwrite to replace it")
    else:
        fmt = None
    if not scheduler:
        _warn_many_jobs(jobs)
    identity = run_identity(command, tuple(kbs), list(records), screening_date)
    layout = Layout.of(kbs)
    job = Job(tuple(kbs), screening_date, fmt, validate_fhir=validate_fhir)
    _export_diagnostics(records)
    _stop_on_sigterm()
    seen = SeenIds()
    out = None
    done = 0
    last = None
    try:
        if results is not None:
            if resume:
                out, rows = ResultsFile.resume(results, layout, identity)
                for row in rows:  # (run() sees their patient IDs again from the inputs)
                    tally.add_row(row)
                    last = (row["patient"], row["file"])
                done = out.rows_done
                for note in out.notes:
                    click.echo(f"note: {note}", err=True)
                click.echo(f"resuming {results}: {done} patient(s) already done", err=True)
            else:
                out = ResultsFile.create(results, layout, identity)
        total = count_hint(list(records))
        t0 = time.monotonic()
        with _progress(total) as progress:
            task = progress.add_task("screen", total=total, completed=done)
            for batch in run(iter_items(list(records), screening_date, vocabulary=kbs[0].vocabulary, notify=_note),
                             job, jobs=jobs, scheduler=scheduler,
                             batch_size=batch_size, skip=done, last_skipped=last, seen=seen,
                             notify=lambda note: click.echo(f"warning: {note}", err=True)):
                if out is not None:
                    out.write(batch.payload, batch.count)
                tally.merge(batch.tally)
                progress.advance(task, batch.count)
                _log_progress(progress, t0)
    except (ResultsError, RunError, OmopError) as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
    except EngineError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        where = "; run the same command with --resume to finish" if out is not None else ""
        click.echo(f"interrupted after {out.rows_done if out else 'some'} patient(s){where}", err=True)
        sys.exit(130)
    except Exception as e:  # a worker that died (out of memory, killed), a cluster that went away
        hint = " (the results so far are kept: run again with --resume)" if out is not None else ""
        click.echo(f"Error: the run stopped: {type(e).__name__}: {' '.join(str(e).split())}{hint}", err=True)
        sys.exit(2)
    finally:
        if out is not None:
            out.close()
        seen.close()


def _stop_on_sigterm() -> None:
    """kill PID stops a run as Ctrl-C does: batches finished are kept for --resume."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


_LAST_LOG = [0.0]


def _log_progress(progress, t0: float, every: float = 30.0) -> None:
    """Without a terminal (a batch job, a log file) the bar is off: a line every 30 s instead."""
    import time

    if sys.stderr.isatty():
        return
    now = time.monotonic()
    if now - max(_LAST_LOG[0], t0) < every:
        return
    _LAST_LOG[0] = now
    task = progress.tasks[0]
    rate = task.completed / (now - t0) if now > t0 else 0
    of = f" of {int(task.total):,}" if task.total else ""
    click.echo(f"screened {int(task.completed):,}{of} ({rate:,.0f} patients/s)", err=True)


def _progress(total_hint: int | None):
    """A progress bar on standard error for runs long enough to need one."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("screening"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True,
                    disable=not sys.stderr.isatty())


@main.command()
@click.argument("records", nargs=-1, required=True, type=INPUT)
@click.option("--kb", metavar="DIR", help=KB_HELP)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=PARAM_HELP)
@params_file_option
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="table for people; json (everything) and csv (one row per criterion) for programs.")
@click.option("--screening-date", type=click.DateTime(["%Y-%m-%d"]), help=DATE_HELP)
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Also draw the attrition table as a chart (.svg, .png or .pdf).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the summary here instead of standard output.")
@scale_options
@omop_options
def cohort(records, kb, params, params_file, fmt, screening_date, plot, output,
           results, resume, overwrite, jobs, scheduler, batch_size, validate_fhir, **omop):
    """Summarise a cohort: verdict counts, criterion counts, attrition.

    Counts per verdict (overall and per population); per criterion the met / not met /
    unknown counts, the patients for whom it is the only failing criterion and those who
    would be eligible without it (gain); and for each population an attrition table: the
    patients remaining after each criterion in protocol order. Rejected records are counted
    and listed.

    RECORDS are YAML/JSON record files, FHIR R4 Bundles, folders of them, JSON Lines files
    of records (.jsonl, one per line), or FHIR Bulk Data export folders (Patient.ndjson,
    Observation.ndjson, ...). Every core is used (--jobs), or a Dask cluster (--scheduler);
    memory does not grow with the cohort. --results streams one row per patient to a file,
    and --resume finishes a run that was interrupted (docs/scale.md).

    \b
    Examples:
      pyasp-screen cohort kb/ct1190b/cases/
      pyasp-screen cohort site-a/ site-b/ --format json -o cohort.json
      pyasp-screen cohort cohort.json --param crcl_min=30
      pyasp-screen cohort patients.jsonl --results verdicts.jsonl
      pyasp-screen cohort bulk-export/ --results verdicts.csv --resume
      pyasp-screen cohort patients.jsonl --scheduler tcp://10.0.0.5:8786 --results out.parquet
      pyasp-screen cohort duckdb:///cdm.duckdb --screening-date 2019-06-01 --results verdicts.jsonl
      pyasp-screen cohort postgresql://me@dbhost/ohdsi --cdm-schema cdm --vocab-schema vocab --jobs 2

    An OMOP CDM database (docs/omop.md) is read person by person, ordered by person_id;
    what maps to no finding is counted per concept on standard error first.
    """
    import json

    from pyasp_screen.cohorts.cohort import CohortSummary

    knowledge = _load_kb(kb, params, params_file)
    records = _inputs(records, vocabulary=knowledge.vocabulary, **omop)
    _check_output(output, records)
    if plot is not None and plot.suffix.lower() not in (".svg", ".png", ".pdf"):
        raise click.UsageError(f"--plot {plot}: use .svg, .png or .pdf")
    if plot is not None and not plot.resolve().parent.is_dir():
        raise click.UsageError(f"--plot {plot}: no such folder")
    if plot is not None:
        from pyasp_screen.extras import MissingExtra, require

        try:  # before the run, not after it
            require("matplotlib", "plot", "an attrition chart (--plot)")
        except MissingExtra as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(2)
    when = screening_date.date() if screening_date else None
    summary = CohortSummary(knowledge)
    _omop_census(records, knowledge.vocabulary)
    _run_at_scale("cohort", records, (knowledge,), summary, results=results, resume=resume, overwrite=overwrite,
                  jobs=jobs, scheduler=scheduler, batch_size=batch_size, screening_date=when,
                  validate_fhir=validate_fhir)
    _omop_after(records)
    defaults = None
    if (params or params_file) and results is None and scheduler is None and fmt == "table" \
            and summary.screened <= COMPARE_DEFAULTS_UP_TO:
        # the same cohort with the protocol defaults, beside it (cheap for a small cohort; a
        # large one: pyasp-screen diff)
        base_kb = _load_kb(kb, ())
        defaults = CohortSummary(base_kb)
        _run_at_scale("cohort", records, (base_kb,), defaults, results=None, resume=False, overwrite=False,
                      jobs=jobs, scheduler=None, batch_size=batch_size, screening_date=when,
                      validate_fhir=validate_fhir)
    with _open_output(output) as out:
        if fmt == "json":
            json.dump({"pyasp_screen_output": render.OUTPUT_VERSION, "knowledge_base": render.kb_header(knowledge),
                       **summary.as_dict()}, out, indent=2, ensure_ascii=False)
            out.write("\n")
        elif fmt == "csv":
            render.write_cohort_csv(summary, knowledge, out)
        else:
            render.write_cohort_table(summary, knowledge, Console(file=out, width=None if out.isatty() else 160),
                                      defaults)
    if plot is not None:
        from pyasp_screen.outputs.graph import plot_attrition

        try:
            plot_attrition(summary, knowledge, plot)
        except OSError as e:
            click.echo(f"Error: cannot write {plot}: {e.strerror or e}", err=True)
            sys.exit(2)
    if (fmt != "table" or output is not None) and summary.rejected_count:
        click.echo(f"{summary.rejected_count} record(s) rejected (listed in the output)", err=True)
    sys.exit(1 if summary.rejected_count else 0)


@main.command()
@click.argument("records", nargs=-1, required=True, type=INPUT)
@click.option("--kb", metavar="DIR", help="Knowledge base before (default ct1190b).")
@click.option("--against", metavar="DIR", help="Knowledge base after (default: the same as --kb).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Parameters before.")
@params_file_option
@click.option("--against-param", "against_params", multiple=True, metavar="NAME=VALUE",
              help="Parameters after.")
@click.option("--against-params", "against_params_file", type=click.Path(path_type=Path, dir_okay=False),
              metavar="FILE", help="A YAML file of parameters after; --against-param wins over it.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--screening-date", type=click.DateTime(["%Y-%m-%d"]), help=DATE_HELP)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the result here instead of standard output.")
@scale_options
@omop_options
def diff(records, kb, against, params, params_file, against_params, against_params_file, fmt, screening_date,
         output, results, resume, overwrite, jobs, scheduler, batch_size, validate_fhir, **omop):
    """Compare two protocol versions (or parameter sets) on the same patients.

    Lists the patients whose verdict changes, with the criteria whose status changed for
    each, and totals per direction of change. RECORDS are read as by 'cohort' (JSON Lines
    and FHIR Bulk exports too); each patient is screened by both versions in the same
    worker. --results writes one row per patient (before, after, changed criteria).

    \b
    Examples:
      pyasp-screen diff kb/ct1190b/cases/ --kb ct1190b --against ct1190b-amendment1
      pyasp-screen diff cohort/ --against-param crcl_min=30
      pyasp-screen diff patients.jsonl --against ct1190b-amendment1 --results changes.csv
    """
    import json

    from pyasp_screen.cohorts.cohort import DiffTally

    kb_a = _load_kb(kb, params, params_file)
    kb_b = _load_kb(against or kb, against_params, against_params_file)
    records = _inputs(records, vocabulary=kb_a.vocabulary, **omop)
    _check_output(output, records)
    tally = DiffTally(kb_a, kb_b)
    _omop_census(records, kb_a.vocabulary)
    _run_at_scale("diff", records, (kb_a, kb_b), tally, results=results, resume=resume, overwrite=overwrite,
                  jobs=jobs, scheduler=scheduler, batch_size=batch_size,
                  screening_date=screening_date.date() if screening_date else None,
                  validate_fhir=validate_fhir)
    _omop_after(records)
    doc = render.diff_dict(tally.changes, tally.directions, tally.compared, kb_a, kb_b)
    doc["rejected"] = tally.rejected_count
    doc["errors"] = [render.error_dict(e) for e in tally.rejected]
    with _open_output(output) as out:
        if fmt == "json":
            json.dump(doc, out, indent=2, ensure_ascii=False)
            out.write("\n")
        else:
            render.write_diff_text(doc, out)
            for e in tally.rejected:
                out.write(f"rejected: {e}\n")
            if tally.rejected_count > len(tally.rejected):
                out.write(f"... and {tally.rejected_count - len(tally.rejected)} more rejected "
                          "(every one is in the --results file)\n")
    sys.exit(1 if tally.rejected_count else 0)


if __name__ == "__main__":
    main()
