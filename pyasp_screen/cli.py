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

import datetime as dt
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from pyasp_screen import render
from pyasp_screen.engine import EngineError
from pyasp_screen.kb import KBError, KnowledgeBase, load_kb
from pyasp_screen.record import RecordError, load_paths
from pyasp_screen.screening import DEFAULT_BATCH, Screened, screen_records

KB_HELP = ("Knowledge base: a folder with manifest.yaml, or the name of a bundled one. "
           "Default: ct1190b, the CT1190B registry criteria.")
PARAM_HELP = ("Set a parameter for this run, NAME=VALUE (repeatable), e.g. "
              "--param crcl_min=30. 'pyasp-screen params' lists them.")
DATE_HELP = ("Screening date for FHIR Bundles (YYYY-MM-DD). Default: the latest clinical date "
             "in each bundle. Native records carry their own.")


def _parse_params(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{v!r} is not NAME=VALUE", param_hint="--param")
        out[name.strip()] = value.strip()
    return out


def _load_kb(kb: str | None, params: tuple[str, ...]) -> KnowledgeBase:
    try:
        return load_kb(kb, _parse_params(params))
    except KBError as e:
        raise click.UsageError(str(e)) from None


def _check_output(output: Path | None, records: tuple[Path, ...]) -> None:
    """Refuse an output file that is one of the inputs: it would be emptied before it is read."""
    if output is None or str(output) == "-":
        return
    out = output.resolve()
    for r in records:
        r = r.resolve()
        if out == r or (r.is_dir() and r in out.parents and out.suffix.lower() in (".yaml", ".yml", ".json")):
            raise click.UsageError(f"-o {output}: would overwrite the input {r}")


@contextmanager
def _open_output(output: Path | None):
    """Standard output, or the file; an unwritable file is a usage error (exit 2)."""
    if output is None or str(output) == "-":
        yield sys.stdout
        return
    try:
        with open(output, "w", encoding="utf-8") as fh:
            yield fh
    except OSError as e:
        click.echo(f"Error: cannot write {output}: {e.strerror or e}", err=True)
        sys.exit(2)


def _items(records, screening_date):
    return load_paths(list(records), screening_date=screening_date)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="pyasp-screen")
def main() -> None:
    """Screen patients against clinical-trial eligibility criteria written in ASP.

    Every criterion's status (met / not_met / unknown) and every verdict (eligible /
    ineligible / undetermined) is derived by clingo from the knowledge base's rules. Data
    missing from a record is unknown, never false: a patient is eligible only if the
    recorded data prove it, and ineligible only if they rule it out.
    """


@main.command()
@click.argument("records", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--kb", metavar="DIR", help=KB_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="table for people; json and csv for programs (docs/output.md).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=PARAM_HELP)
@click.option("--details/--no-details", default=None,
              help="Table: every criterion of every patient (default: on for a single patient).")
@click.option("--explain", "with_explain", is_flag=True,
              help="Add each patient's shortest sufficient reason and what is missing (slower).")
@click.option("--screening-date", type=click.DateTime(["%Y-%m-%d"]), help=DATE_HELP)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the result here instead of standard output.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=DEFAULT_BATCH, show_default=True,
              help="Patients grounded together in one clingo program.")
def screen(records, kb, fmt, params, details, with_explain, screening_date, output, batch_size):
    """Screen RECORDS (YAML/JSON records, FHIR R4 Bundles, or folders of them).

    \b
    Examples:
      pyasp-screen screen kb/ct1190b/cases/
      pyasp-screen screen patient.yaml --details
      pyasp-screen screen cohort/ --format csv -o verdicts.csv
      pyasp-screen screen patient.yaml --param crcl_weight=adjusted
      pyasp-screen screen bundle.json --screening-date 2020-06-01 --explain
    """
    knowledge = _load_kb(kb, params)
    _check_output(output, records)
    err = Console(stderr=True, highlight=False)
    when = screening_date.date() if screening_date else None
    try:
        outcomes = list(screen_records(_items(records, when), knowledge, batch_size))
        explanations = _explain_all(outcomes, knowledge) if with_explain else None
        with _open_output(output) as out:
            if fmt == "csv":
                render.write_csv(outcomes, knowledge, out, explanations)
            elif fmt == "json":
                render.write_json(outcomes, knowledge, out, explanations)
            else:
                screened = sum(1 for o in outcomes if isinstance(o, Screened))
                console = Console(file=out, width=None if out.isatty() else 160)
                render.write_table(outcomes, knowledge, console,
                                   details if details is not None else screened == 1, explanations)
    except EngineError as e:
        err.print(f"error: {escape(str(e))}")
        sys.exit(2)
    rejected = [o for o in outcomes if isinstance(o, RecordError)]
    if fmt != "table" or output is not None:
        for o in rejected:
            err.print(f"rejected: {escape(str(o))}", soft_wrap=True)
    sys.exit(1 if rejected else 0)


def _explain_all(outcomes, knowledge) -> dict:
    from pyasp_screen.explain import explain

    return {id(o): explain(knowledge, o.findings, max_results=3)[1]
            for o in outcomes if isinstance(o, Screened)}


@main.command(name="explain")
@click.argument("record", type=click.Path(path_type=Path))
@click.option("--kb", metavar="DIR", help=KB_HELP)
@click.option("--max", "max_results", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="At most this many explanations of each kind, smallest first.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=PARAM_HELP)
@click.option("--screening-date", type=click.DateTime(["%Y-%m-%d"]), help=DATE_HELP)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the result here instead of standard output.")
def explain_cmd(record, kb, max_results, fmt, params, screening_date, output):
    """Explain one patient's verdict, overall and per population.

    \b
    ineligible   the sufficient reasons (the findings that settle it, with the criteria
                 and registry sentences they violate) and the near misses (the findings
                 that, with other values, would make the patient eligible, and the values)
    undetermined for each verdict it could reach, the unknown findings whose measurement
                 could settle it and the values that would; and the unknown findings that
                 cannot change anything (no need to order them)
    eligible     the sufficient reasons for eligibility, and the findings whose change
                 would most easily lose it

    \b
    Examples:
      pyasp-screen explain kb/ct1190b/cases/sle-in-7b-not-met.yaml
      pyasp-screen explain patient.yaml --format json --max 3
    """
    from pyasp_screen.explain import explain

    knowledge = _load_kb(kb, params)
    _check_output(output, (record,))
    when = screening_date.date() if screening_date else None
    outcomes = list(screen_records(_items((record,), when), knowledge))
    rejected = [o for o in outcomes if isinstance(o, RecordError)]
    for o in rejected:
        click.echo(f"rejected: {o}", err=True)
    screened = [o for o in outcomes if isinstance(o, Screened)]
    with _open_output(output) as out:
        docs = []
        for s in screened:
            _, scopes = explain(knowledge, s.findings, max_results=max_results)
            if fmt == "json":
                docs.append(render.explanation_dict(s, scopes, knowledge))
            else:
                render.write_explanation_text(s, scopes, knowledge, out)
        if fmt == "json":
            import json

            json.dump({"pyasp_screen_output": render.OUTPUT_VERSION,
                       "knowledge_base": render.kb_header(knowledge),
                       "patients": docs, "errors": [render.error_dict(o) for o in rejected]},
                      out, indent=2, ensure_ascii=False)
            out.write("\n")
    sys.exit(1 if rejected else 0)


@main.command()
@click.option("--kb", metavar="DIR", help=KB_HELP)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=PARAM_HELP)
def params(kb, params):
    """List the knowledge base's parameters: name, value, unit and meaning."""
    from dataclasses import replace

    from rich.table import Table

    knowledge = _load_kb(kb, params)
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"{knowledge.name} v{knowledge.version} parameters", title_justify="left")
    for col in ("name", "value", "default", "meaning"):
        table.add_column(col, overflow="fold")
    for p in knowledge.parameters.values():
        table.add_row(p.name, p.display(), replace(p, value=p.default).display(), escape(p.doc))
    console.print(table)


if __name__ == "__main__":
    main()
