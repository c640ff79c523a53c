"""The pyasp-screen command line. Each command reads like a sentence:

    pyasp-screen screen kb/ct1190b/cases/          screen example patients
    pyasp-screen screen patient.yaml --format json screen one record, for a program
    pyasp-screen params                            list the knowledge base's parameters

Exit codes: 0 every record screened; 1 some record rejected (the others are still
screened and reported); 2 usage error (bad option, unknown knowledge base or parameter).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from pyasp_screen import render
from pyasp_screen.engine import EngineError
from pyasp_screen.kb import KBError, KnowledgeBase, load_kb
from pyasp_screen.record import RecordError, load_paths
from pyasp_screen.screening import DEFAULT_BATCH, screen_records

KB_HELP = ("Knowledge base: a folder with manifest.yaml, or the name of a bundled one. "
           "Default: ct1190b, the CT1190B registry criteria.")
PARAM_HELP = ("Set a parameter for this run, NAME=VALUE (repeatable), e.g. "
              "--param crcl_min=30. 'pyasp-screen params' lists them.")


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
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="Write the result here instead of standard output.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=DEFAULT_BATCH, show_default=True,
              help="Patients grounded together in one clingo program.")
def screen(records, kb, fmt, params, details, output, batch_size):
    """Screen RECORDS (YAML/JSON records, FHIR R4 Bundles, or folders of them).

    \b
    Examples:
      pyasp-screen screen kb/ct1190b/cases/
      pyasp-screen screen patient.yaml --details
      pyasp-screen screen cohort/ --format csv -o verdicts.csv
      pyasp-screen screen patient.yaml --param crcl_weight=adjusted
    """
    knowledge = _load_kb(kb, params)
    err = Console(stderr=True, highlight=False)
    outcomes = []
    try:
        items = load_paths(list(records))
        if fmt == "csv":
            writer_rows = screen_records(items, knowledge, batch_size)
            render.write_csv(_collect(writer_rows, outcomes), knowledge, output)
        else:
            outcomes = list(screen_records(items, knowledge, batch_size))
            if fmt == "json":
                render.write_json(outcomes, knowledge, output)
            else:
                screened = sum(1 for o in outcomes if not isinstance(o, RecordError))
                console = Console(file=output, width=None if output.isatty() else 160)
                render.write_table(outcomes, knowledge, console,
                                   details if details is not None else screened == 1)
    except EngineError as e:
        err.print(f"error: knowledge base {knowledge.directory}: {e}")
        sys.exit(2)
    rejected = [o for o in outcomes if isinstance(o, RecordError)]
    if fmt != "table":
        for o in rejected:
            err.print(f"rejected: {o}", soft_wrap=True)
    sys.exit(1 if rejected else 0)


def _collect(rows, into: list):
    for r in rows:
        into.append(r)
        yield r


@main.command()
@click.option("--kb", metavar="DIR", help=KB_HELP)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=PARAM_HELP)
def params(kb, params):
    """List the knowledge base's parameters: name, value, unit and meaning."""
    knowledge = _load_kb(kb, params)
    console = Console(width=None if sys.stdout.isatty() else 160)
    from rich.table import Table

    table = Table(title=f"{knowledge.name} v{knowledge.version} parameters", title_justify="left")
    for col in ("name", "value", "default", "meaning"):
        table.add_column(col, overflow="fold")
    for p in knowledge.parameters.values():
        default = p.display() if p.value == p.default else \
            type(p)(**{**p.__dict__, "value": p.default}).display()
        table.add_row(p.name, p.display(), default, p.doc)
    console.print(table)


if __name__ == "__main__":
    main()
