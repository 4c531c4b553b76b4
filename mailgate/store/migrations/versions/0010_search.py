"""Search: each stored message keeps what search matches it by (models.search_texts: its sender,
recipients and subject case-folded, and the start of its text), and the database indexes that
text for full-text search, each in its own way: SQLite an FTS5 table over search_texts, kept in
step by triggers; PostgreSQL a generated tsvector column, to_tsvector('simple', body), with a
GIN index. Stored mail is indexed here from its bytes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from mailgate.mime.apiview import summarize
from mailgate.store.ingest import search_values

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BATCH = 200
INDEX = "search_body"  # models.FULL_TEXT_INDEX, as it was named here

# unicode61 folds case as PostgreSQL's 'simple' configuration does, and like it keeps diacritics,
# so that a query finds the same mail on either database.
SQLITE = [
    f"""CREATE VIRTUAL TABLE {INDEX} USING fts5(
        body, content='search_texts', content_rowid='message_id',
        tokenize='unicode61 remove_diacritics 0')""",
    f"""CREATE TRIGGER {INDEX}_insert AFTER INSERT ON search_texts BEGIN
        INSERT INTO {INDEX}(rowid, body) VALUES (new.message_id, new.body);
    END""",
    f"""CREATE TRIGGER {INDEX}_delete AFTER DELETE ON search_texts BEGIN
        INSERT INTO {INDEX}({INDEX}, rowid, body) VALUES ('delete', old.message_id, old.body);
    END""",
    f"""CREATE TRIGGER {INDEX}_update AFTER UPDATE ON search_texts BEGIN
        INSERT INTO {INDEX}({INDEX}, rowid, body) VALUES ('delete', old.message_id, old.body);
        INSERT INTO {INDEX}(rowid, body) VALUES (new.message_id, new.body);
    END""",
]
# The vector is stored, not only indexed: where the planner checks a body per row (a search
# over a few messages) it reads the vector instead of parsing the text again.
POSTGRESQL = [
    f"""ALTER TABLE search_texts ADD COLUMN {INDEX} tsvector
        GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED""",
    f"CREATE INDEX {INDEX} ON search_texts USING gin ({INDEX})",
]


def upgrade() -> None:
    op.create_table(
        "search_texts",
        sa.Column(
            "message_id",
            Id,
            sa.ForeignKey(
                "messages.id", name="fk_search_texts_message_id_messages", ondelete="CASCADE"
            ),
            primary_key=True,
        ),
        *(
            sa.Column(name, sa.Text, nullable=False, server_default="")
            for name in ("sender", "recipients", "subject", "body")
        ),
    )
    bind = op.get_bind()
    postgresql = bind.dialect.name != "sqlite"
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)
    _index_stored_mail(bind)
    if postgresql:
        # The planner's picture of the filled table, before the first search asks for a plan.
        op.execute("ANALYZE search_texts")


def _index_stored_mail(bind: sa.Connection) -> None:
    search_texts = sa.table(
        "search_texts",
        sa.column("message_id", sa.BigInteger),
        *(sa.column(c, sa.Text) for c in ("sender", "recipients", "subject", "body")),
    )
    blobs = sa.table("blobs", sa.column("message_id", sa.BigInteger), sa.column("data"))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(blobs.c.message_id, blobs.c.data)
            .where(blobs.c.message_id > last)
            .order_by(blobs.c.message_id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        values = []
        for blob_id, data in rows:
            raw = bytes(data)
            values.append({"message_id": blob_id, **search_values(raw, summarize(raw))})
        bind.execute(search_texts.insert(), values)
        last = rows[-1][0]


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER {INDEX}_{trigger}")
        op.execute(f"DROP TABLE {INDEX}")
    op.drop_table("search_texts")  # on PostgreSQL with its vector and index
