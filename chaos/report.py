"""The fault run's table (Markdown for people, JSON for tools) and the verdict: whole or not."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chaos.reconcile import Findings
from chaos.run import Row

HEADER = (
    "| fault | what clients saw | time to recover | lost | duplicated | dead-lettered "
    "| needed an operator |\n|---|---|---|---|---|---|---|\n"
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: Sequence[Row]) -> str:
    lines = [HEADER.rstrip("\n")]
    for row in rows:
        if row.status == "not run":
            lines.append(f"| {row.fault} | not run: {_cell('; '.join(row.notes))} | — | — | — | — | — |")
            continue
        recover = "did not recover" if row.recover_seconds is None else f"{row.recover_seconds:.0f} s"
        operator = "; ".join(row.operator) or "no"
        duplicated = f"{row.duplicated}" + (f" (+{row.copies} re-sent offer copies)" if row.copies else "")
        saw = f"POST: {row.clients_saw}; {row.probes}" + ("" if row.status == "ok" else f" ({row.status})")
        lines.append(
            f"| {row.fault} | {_cell(saw)} | {recover} | {row.lost} | {duplicated} | {row.dead_lettered} "
            f"| {_cell(operator)} |"
        )
    return "\n".join(lines) + "\n"


def verdict(rows: Sequence[Row], final: Findings | None) -> list[str]:
    """Why the run is not whole; empty when it is."""
    reasons = [f"{row.fault}: {row.status}" for row in rows if row.status != "ok"]
    reasons += [f"{row.fault}: needed an operator" for row in rows if row.operator]
    reasons += [
        f"{row.fault}: did not recover" for row in rows if row.status == "ok" and row.recover_seconds is None
    ]
    reasons += [f"{row.fault}: {row.lost} lost" for row in rows if row.lost]
    reasons += [f"{row.fault}: {row.duplicated} duplicated" for row in rows if row.duplicated]
    reasons += [f"{row.fault}: {row.dead_lettered} dead-lettered" for row in rows if row.dead_lettered]
    if final is None:
        reasons.append("no final reconciliation")
    elif not final.clean:
        reasons += [*final.lost, *final.duplicated, *final.other][:20]
        reasons += [f"{queue}: {n} dead letter(s) at the end" for queue, n in final.dead_lettered.items()]
    return reasons


def markdown(rows: Sequence[Row], final: Findings | None, run: dict[str, Any]) -> str:
    reasons = verdict(rows, final)
    out = [
        f"# docroute fault run{' (' + run['scenario'] + ')' if run.get('scenario') else ''}, "
        f"{run['started_at']}",
        "",
        f"`{run['command']}` — {run['seconds']:.0f} s on {run['machine']}. {run['summary']}",
        "",
        table(rows),
    ]
    if final is not None:
        out.append(
            f"Final reconciliation: {final.accepted} directives accepted, {final.stored} stored, "
            f"{final.tasks} tasks, {final.offers} task offers taken off the unit queues, "
            f"{final.records} archived records, audit chain of {final.audit_entries} entries verified, "
            f"{final.copies} offer message(s) re-sent with the same id (consumers drop them by id), "
            f"{final.young_orphans} staging upload(s) without a directive, younger than the sweep's age"
            + (" — whole." if final.clean else " — NOT whole.")
        )
        out.append("")
    audit = run.get("relay_audit")
    if audit:
        resent = ", ".join(f"{n} {kind}" for kind, n in audit["resent"].items()) or "none"
        out.append(
            f"Publish audit (a copy of every relayed message, with the relay that published it): "
            f"{audit['published']} publishes of {audit['message_ids']} outbox rows by "
            f"{len(audit['by_publisher'])} relay processes; re-sent: {resent}; "
            "**published by two relays that both held the row: "
            f"{audit['published_by_two_relays_holding_it']}**."
        )
        out.append("")
    out.append(
        "**Verdict: "
        + (
            "whole** (0 lost, 0 duplicated, 0 dead-lettered, no operator step)."
            if not reasons
            else "NOT whole**:"
        )
    )
    out += [f"- {reason}" for reason in reasons]
    details = [row for row in rows if row.notes or row.problems]
    if details:
        out += ["", "## What happened per fault", ""]
        for row in details:
            out.append(f"- **{row.fault}**: " + "; ".join(row.notes))
            out += [f"  - problem: {p}" for p in row.problems]
    return "\n".join(out) + "\n"


def write(
    out_dir: Path, rows: Sequence[Row], final: Findings | None, run: dict[str, Any], *, name: str = "latest"
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "run": run,
        "rows": [row.as_dict() for row in rows],
        "final": final.as_dict() if final is not None else None,
        "whole": not verdict(rows, final),
    }
    paths = [out_dir / f"{name}.json", out_dir / f"{name}.md"]
    paths[0].write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(rows, final, run), encoding="utf-8")
    return paths
