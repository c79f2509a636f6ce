"""Which staged objects the intake database references: the StagingReferences the staging sweep asks."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from intake.adapters.staging import directive_of
from intake.adapters.tables import attachments, directives


class SqlStagingReferences:
    """Answers from the attachments and directives tables, in one read-only transaction per call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def referenced(self, bucket: str, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        ids = {directive_of(key) for key in keys} - {None}
        with self.engine.connect() as conn:
            named = set(
                conn.execute(
                    sa.select(attachments.c.key).where(
                        attachments.c.bucket == bucket, attachments.c.key.in_(list(keys))
                    )
                ).scalars()
            )
            # A directive row without the attachment row cannot happen (one transaction writes both), but
            # an object under an existing directive's folder is kept rather than trusted to be stray.
            existing = set(
                conn.execute(sa.select(directives.c.id).where(directives.c.id.in_(sorted(ids)))).scalars()
            )
        return {key for key in keys if key in named or directive_of(key) in existing}
