"""The sending rate: an inbox's events by time, to find how many messages it sent in the last
hour without reading the rest of its history.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_inbox_created_at", "events", ["inbox", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_events_inbox_created_at", table_name="events")
