"""Closed loop, continued: a refused packet's 02 has no directive, each status is recorded once by its
dedupe key (15 / 16 once per kind), and webhook secrets are encrypted at rest.

Existing statuses get the key they were unique by (`directive:code`). Existing secrets, stored in clear,
are sealed with the first key of DOCROUTE_WEBHOOK_SECRET_KEYS (in development the key kept in the data
folder); production refuses to migrate them without the setting. Downgrading opens them again.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-05 03:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_subscriptions = sa.table(
    'webhook_subscriptions', sa.column('id', sa.String(36)), sa.column('secret', sa.Text())
)


def _box():  # type: ignore[no-untyped-def]
    # Imported here: the settings are read only when there are secrets to (un)seal.
    from intake.settings import Settings

    return Settings.from_env().closed_loop.secret_box


def _seal_all(seal: bool) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_subscriptions.c.id, _subscriptions.c.secret)).all()
    if not rows:
        return
    box = _box()
    for row in rows:
        value = box.seal(row.secret) if seal and row.secret.startswith('whsec_') else row.secret
        if not seal and not row.secret.startswith('whsec_'):
            value = box.open(row.secret)
        if value != row.secret:
            conn.execute(
                sa.update(_subscriptions).where(_subscriptions.c.id == row.id).values(secret=value)
            )


def upgrade() -> None:
    with op.batch_alter_table('status_updates') as batch:
        batch.add_column(sa.Column('dedupe_key', sa.String(length=200), nullable=True))
    op.execute(
        "UPDATE status_updates SET dedupe_key = directive_id || ':' || status_code WHERE dedupe_key IS NULL"
    )
    with op.batch_alter_table('status_updates') as batch:
        batch.alter_column('dedupe_key', existing_type=sa.String(length=200), nullable=False)
        batch.drop_constraint('uq_status_updates_directive_id_status_code', type_='unique')
        batch.create_unique_constraint('uq_status_updates_dedupe_key', ['dedupe_key'])
        batch.alter_column('directive_id', existing_type=sa.String(length=36), nullable=True)
    with op.batch_alter_table('webhook_deliveries') as batch:
        batch.alter_column('directive_id', existing_type=sa.String(length=36), nullable=True)
    with op.batch_alter_table('webhook_subscriptions') as batch:
        batch.alter_column('secret', existing_type=sa.String(length=200), type_=sa.Text(), nullable=False)
    _seal_all(seal=True)


def downgrade() -> None:
    _seal_all(seal=False)
    with op.batch_alter_table('webhook_subscriptions') as batch:
        batch.alter_column('secret', existing_type=sa.Text(), type_=sa.String(length=200), nullable=False)
    # Statuses with no directive (refused packets) and second 15/16 of another kind cannot go back.
    op.execute("DELETE FROM webhook_deliveries WHERE directive_id IS NULL")
    op.execute(
        "DELETE FROM webhook_deliveries WHERE status_update_id IN (SELECT id FROM status_updates "
        "WHERE directive_id IS NULL OR dedupe_key <> directive_id || ':' || status_code)"
    )
    op.execute(
        "DELETE FROM status_updates WHERE directive_id IS NULL OR dedupe_key <> directive_id || ':' || status_code"
    )
    with op.batch_alter_table('webhook_deliveries') as batch:
        batch.alter_column('directive_id', existing_type=sa.String(length=36), nullable=False)
    with op.batch_alter_table('status_updates') as batch:
        batch.alter_column('directive_id', existing_type=sa.String(length=36), nullable=False)
        batch.drop_constraint('uq_status_updates_dedupe_key', type_='unique')
        batch.create_unique_constraint(
            'uq_status_updates_directive_id_status_code', ['directive_id', 'status_code']
        )
        batch.drop_column('dedupe_key')
