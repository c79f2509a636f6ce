"""First start of the service: the units file and, when no rule set exists yet, the rules file."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from routing.adapters.unit_queue import UnitQueues
from routing.domain.units import parse_units_document
from routing.rules import active_rules, put_rules
from routing.units import import_units


def bootstrap(
    *,
    engine: Engine,
    units_doc: object | None,
    rules_doc: object | None,
    rules_source: str,
    queues: UnitQueues | None,
) -> None:
    """First start: load the units file (upsert) and, when no rule set exists yet, the rules file."""
    if units_doc is not None:
        import_units(parse_units_document(units_doc), engine=engine, queues=queues)
    if rules_doc is not None:
        with engine.connect() as conn:
            exists = active_rules(conn) is not None
        if not exists:
            # A rules file naming unknown units stops the start-up with RuleSetInvalid, which names them.
            put_rules(rules_doc, source=rules_source, engine=engine, actor="bootstrap")
