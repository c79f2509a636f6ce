"""Operator commands the `docroute` CLI mounts: `audit verify` and `archive export`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from shared.settings import SettingsError

from archive import audit as audit_chain
from archive.deps import ArchiveDeps, build_deps
from archive.domain.errors import ArchiveError
from archive.settings import Settings


def _deps() -> ArchiveDeps:
    try:
        return build_deps(Settings.from_env())
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(name="audit", help="The archive's hash-chained audit log.")
def audit() -> None:
    """The `audit` command group."""


@audit.command(name="verify", help="Walk the audit chain and compare it with the latest checkpoint.")
def verify() -> None:
    deps = _deps()
    try:
        result = audit_chain.verify_audit(engine=deps.engine, vault=deps.vault)
    finally:
        deps.engine.dispose()
    chain = result.chain
    if not chain.ok:
        click.echo(f"BROKEN at entry {chain.broken_seq}: {chain.reason}", err=True)
        click.echo(f"{chain.count} entries verified before it; last good hash {chain.head_hash}", err=True)
    else:
        click.echo(f"{chain.count} entries, head hash {chain.head_hash}")
    for problem in result.problems:
        click.echo(f"CHECKPOINT MISMATCH: {problem}", err=True)
    if not result.ok:
        sys.exit(1)
    if result.checkpoint is None:
        click.echo("no checkpoint in the bucket yet")
    else:
        click.echo(
            f"matches all {result.checkpoints_checked} locked checkpoints; newest {result.checkpoint_key} "
            f"({result.checkpoint.count} entries, {result.checkpoint.created_at.isoformat()})"
        )
    if result.unindexed:
        click.echo(
            f"{len(result.unindexed)} locked checkpoint(s) agree with the chain but have no row yet "
            f"(the worker indexes them when it starts): {', '.join(result.unindexed)}"
        )


@click.group(name="archive", help="The WORM archive of directives.")
def archive() -> None:
    """The `archive` command group."""


@archive.command(name="export", help="Write a directive's BagIt bag (verified bytes, reports, tasks, audit).")
@click.option("--directive", "directive_id", required=True, help="directive id")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="folder to write the bag into (created; the bag is a sub-folder named after the directive)",
)
def export_cmd(directive_id: str, out_dir: Path) -> None:
    from archive.export import build_bag

    deps = _deps()
    target = out_dir / f"directive-{directive_id}"
    if target.exists():
        raise click.ClickException(f"{target} already exists; choose another --out")
    bar: Any = None

    def progress(done: int, total: int, name: str) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="verifying and copying records", file=sys.stderr)
            bar.__enter__()
        bar.update(1, done)
        del name

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        bag = build_bag(
            directive_id, target, engine=deps.engine, vault=deps.vault, actor="cli", progress=progress
        )
    except ArchiveError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
        deps.engine.dispose()
    files = sum(1 for p in bag.rglob("*") if p.is_file())
    click.echo(f"bag written to {bag} ({files} files, SHA-256 manifests)")


def commands() -> list[click.Command]:
    """What the root `docroute` CLI mounts."""
    return [audit, archive]
