"""Commands the docroute CLI mounts: `docroute rules check FILE` validates a rules file offline."""

from __future__ import annotations

from pathlib import Path

import click

from routing.documents import DocumentRefused, read_yaml
from routing.domain.errors import InvalidUnit, RuleSetInvalid
from routing.domain.rules import parse_ruleset
from routing.domain.units import parse_units_document


@click.group(name="rules", help="Routing rules.")
def rules() -> None:
    """The `rules` command group."""


@rules.command(name="check", help="Validate a rules file offline, with the same messages as PUT /v1/rules.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--units",
    "units_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="DOCROUTE_UNITS_FILE",
    help="units file (YAML) to check unit and group names against; without it names are not checked",
)
def check(file: Path, units_file: Path | None) -> None:
    try:
        doc = read_yaml(file.read_text(encoding="utf-8"))
    except DocumentRefused as exc:
        raise click.ClickException(f"{file}: not a plain YAML document: {exc}") from None
    codes = groups = None
    if units_file is not None:
        try:
            units = parse_units_document(read_yaml(units_file.read_text(encoding="utf-8")))
        except (InvalidUnit, DocumentRefused) as exc:
            raise click.ClickException(f"{units_file}: {exc}") from None
        codes = {u.code for u in units if u.active}
        groups = {g for u in units if u.active for g in u.groups}
    try:
        ruleset = parse_ruleset(doc, units=codes, groups=groups)
    except RuleSetInvalid as exc:
        for issue in exc.issues:
            click.echo(f"{file}: {issue.key}: {issue.message}", err=True)
        raise SystemExit(1) from None
    checked = "checked against " + str(units_file) if units_file else "unit and group names not checked"
    click.echo(f"{file}: {len(ruleset.rules)} rule(s) valid ({checked})")


def commands() -> list[click.Command]:
    return [rules]
