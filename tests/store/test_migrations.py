"""Alembic migrations: applied on start-up to an empty database, idempotent, safe when several
nodes start at once, and in step with models.py."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.database import MIGRATIONS
from mailgate.store.models import declared, metadata
from tests.store.conftest import address, database, downgrade, message, rows, run


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database: the migrations run on it (elsewhere tests start from a copy of one
    they ran on)."""
    with database(backend, tmp_path, migrated=False) as url:
        yield url


def head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    heads = ScriptDirectory.from_config(cfg).get_heads()
    assert len(heads) == 1, f"migrations must have one head, not {heads}"
    return heads[0]


def table_names(store: Store) -> set[str]:
    from sqlalchemy import inspect

    async def names() -> set[str]:
        async with store.db.reader.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))

    return run(names())


def test_migrations_apply_to_an_empty_database(store: Store) -> None:
    assert table_names(store) >= {t.name for t in metadata.sorted_tables} | {"alembic_version"}
    assert rows(store, "SELECT version_num FROM alembic_version") == [(head(),)]


def test_schema_matches_models(store: Store) -> None:
    """What the migrations build is what models.py declares (autogenerate finds nothing; the
    database's own full-text index is left out, as env.py leaves it out)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    async def diff() -> list[Any]:
        async with store.db.reader.connect() as conn:
            return await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"include_name": declared}), metadata
                )
            )

    assert run(diff()) == []


def test_opening_twice_is_idempotent_and_keeps_data(
    store: Store, open_store: Callable[..., Store]
) -> None:
    inbox = run(store.create_inbox(address()))
    box = run(store.get_mailbox(inbox.id, "INBOX"))
    run(store.append(box.id, message(1)))
    again = open_store()
    assert rows(again, "SELECT version_num FROM alembic_version") == [(head(),)]
    assert run(again.get_inbox(inbox.address)) == inbox
    assert run(again.status(box.id)).messages == 1
    # Counters were seeded once, not reset by the second run.
    new_box = run(again.create_mailbox(inbox.id, "After"))
    assert new_box.uidvalidity > max(
        b.uidvalidity for b in run(store.list_mailboxes(inbox.id)) if b.name != "After"
    )


def test_nodes_starting_at_once_migrate_once(store_url: str) -> None:
    async def start_many() -> list[Store]:
        return list(await asyncio.gather(*(Store.open(store_url) for _ in range(4))))

    stores = run(start_many())
    try:
        inbox = run(stores[0].create_inbox(address()))
        for s in stores:
            assert run(s.get_inbox(inbox.address)) == inbox
        assert rows(stores[0], "SELECT version_num FROM alembic_version") == [(head(),)]
        assert rows(stores[0], "SELECT count(*) FROM counters") == [(1,)]
    finally:
        for s in stores:
            run(s.close())


def test_open_without_migrating_leaves_the_database_alone(
    open_store: Callable[..., Store],
) -> None:
    bare = open_store(migrate=False)
    assert "mailboxes" not in table_names(bare)
    with pytest.raises(errors.StoreError) as info:
        run(bare.list_inboxes())
    assert not type(info.value).__module__.startswith("sqlalchemy")


def test_unreachable_database_is_unavailable(backend: str, tmp_path: Any) -> None:
    if backend == "sqlite":
        blocker = tmp_path / "file"
        blocker.write_text("")
        url = f"sqlite+aiosqlite:///{blocker}/sub/store.db"
    else:
        url = "postgresql+asyncpg://postgres@127.0.0.1:1/nothing"
    with pytest.raises(errors.Unavailable):
        run(Store.open(url))


@pytest.mark.parametrize("url", ["not a url", "nosuchdb://x/y", "postgresql+nosuchdriver://h/d"])
def test_unusable_url_is_unavailable_with_the_reason(url: str) -> None:
    with pytest.raises(errors.Unavailable, match="database URL"):
        run(Store.open(url))


_FUTURE = '''
"""A later schema change that rebuilds a table, as SQLite batch migrations do."""
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    recreate = "always" if op.get_bind().dialect.name == "sqlite" else "auto"
    for table in ("mailboxes", "inboxes", "messages"):
        with op.batch_alter_table(table, recreate=recreate) as batch:
            batch.add_column(sa.Column("note", sa.Text, nullable=True))


def downgrade() -> None:
    pass
'''


def test_an_upgrade_that_rebuilds_tables_keeps_every_row(
    store: Store, open_store: Callable[..., Store], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DESIGN: "an upgrade never loses data". On SQLite, rebuilding a parent table (DROP TABLE
    inside a batch migration) with foreign keys on would cascade-delete every child row."""
    import shutil

    import mailgate.store.database

    inbox = run(store.create_inbox(address()))
    box = run(store.get_mailbox(inbox.id, "INBOX"))
    run(store.append(box.id, message(1)))
    run(store.add_key("kept", "0" * 64, inbox=inbox.address))
    run(store.close())

    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations)
    (migrations / "versions" / "9999_future.py").write_text(_FUTURE.format(head=head()))
    monkeypatch.setattr(mailgate.store.database, "MIGRATIONS", migrations)

    upgraded = open_store()
    assert rows(upgraded, "SELECT version_num FROM alembic_version") == [("9999",)]
    assert run(upgraded.get_inbox(inbox.address)) == inbox
    assert len(run(upgraded.list_mailboxes(inbox.id))) == 5
    assert run(upgraded.status(box.id)).messages == 1
    assert run(upgraded.fetch(box.id, [(1, 1)], ["data"]))[0].data
    assert run(upgraded.get_key("kept")) is not None


def test_the_upgrade_to_message_ids_fills_them_for_stored_mail(
    store: Store, open_store: Callable[..., Store]
) -> None:
    """Mail stored before revision 0004 gets its Message-ID, In-Reply-To and References from its
    stored header when the database is upgraded."""
    inbox = run(store.create_inbox(address()))
    box = run(store.get_mailbox(inbox.id, "INBOX"))
    raw = (
        b"From: a@example.test\r\nMessage-ID: <child@example.test>\r\n"
        b"In-Reply-To: <parent@example.test>\r\n"
        b"References: <root@example.test> <parent@example.test>\r\n\r\nBody\r\n"
    )
    run(store.append(box.id, raw))

    downgrade(store, "0003")
    assert rows(store, "SELECT version_num FROM alembic_version") == [("0003",)]
    run(store.close())

    upgraded = open_store()
    row = run(upgraded.fetch(box.id, [(1, 1)], ["msgid", "in_reply_to", "references", "data"]))[0]
    assert row.msgid == "<child@example.test>"
    assert row.in_reply_to == "<parent@example.test>"
    assert row.references == ("<root@example.test>", "<parent@example.test>")
    assert row.data == raw


def test_the_upgrade_to_save_dates_gives_stored_mail_its_internal_date(
    store: Store, open_store: Callable[..., Store]
) -> None:
    """Entries stored before revision 0017 (RFC 8514 SAVEDATE) are taken as saved when they
    arrived; entries stored after it, now."""
    inbox = run(store.create_inbox(address()))
    box = run(store.get_mailbox(inbox.id, "INBOX"))
    arrived = datetime.datetime(2020, 2, 1, 9, 0, tzinfo=datetime.UTC)
    run(store.append(box.id, message(1), internaldate=arrived))

    downgrade(store, "0016")
    run(store.close())

    upgraded = open_store()
    assert rows(upgraded, "SELECT saved_at FROM entries") == [(int(arrived.timestamp()),)]
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    run(upgraded.append(box.id, message(2), internaldate=arrived))
    old, new = run(upgraded.fetch(box.id, [(1, 2)], ["saved_date"]))
    assert old.saved_date == arrived
    assert new.saved_date is not None
    assert new.saved_date >= before


def test_the_upgrade_to_quotas_counts_the_mail_already_stored(
    store: Store, open_store: Callable[..., Store]
) -> None:
    """Revision 0018 starts each mailbox's size counter from the messages it holds, so an
    inbox's usage is right from the first start after the upgrade."""
    inbox = run(store.create_inbox(address()))
    box = run(store.get_mailbox(inbox.id, "INBOX"))
    trash = run(store.get_mailbox(inbox.id, "Trash"))
    run(store.append(box.id, message(1)))
    run(store.append(box.id, message(2)))
    run(store.copy(box.id, [(1, 1)], trash.id))
    expected = 2 * len(message(1)) + len(message(2))
    assert run(store.quota(inbox.id)).used == expected

    downgrade(store, "0017")
    run(store.close())

    upgraded = open_store()
    assert run(upgraded.quota(inbox.id)).used == expected
    assert run(upgraded.quota(inbox.id)).limit == 0


def test_the_upgrade_to_sort_keys_fills_them_for_stored_mail(
    store: Store, open_store: Callable[..., Store]
) -> None:
    """Mail stored before revision 0019 gets its SORT and THREAD keys from its stored header when
    the database is upgraded, as ingest computes them for new mail."""
    inbox = run(store.create_inbox(address()))
    box = run(store.get_mailbox(inbox.id, "INBOX"))
    raw = (
        b"From: =?UTF-8?Q?=C3=89mile?= <emile@example.test>\r\nTo: bea@example.test\r\n"
        b"Cc: Carl <carl@example.test>\r\nSubject: Re: [list] Fwd: budget (fwd)\r\n\r\nBody\r\n"
    )
    run(store.append(box.id, raw))
    keys = ["subject", "reply", "from", "to", "cc", "displayfrom", "displayto"]
    expected = (1, "BUDGET", True, "EMILE", "BEA", "CARL", "\xc9MILE", "BEA@EXAMPLE.TEST")
    assert run(store.order_keys(box.id, [(1, 1)], keys)) == [expected]

    downgrade(store, "0018")
    run(store.close())

    upgraded = open_store()
    assert run(upgraded.order_keys(box.id, [(1, 1)], keys)) == [expected]


def test_the_upgrade_to_the_text_index_fills_it_for_stored_mail(
    store: Store, open_store: Callable[..., Store]
) -> None:
    """Mail stored before revision 0021 is put in IMAP SEARCH's text index when the database is
    upgraded, as ingest does for new mail: header and body searches answered in the database
    find it."""
    from mailgate.store.records import BodyHas, BodyWhole, FieldHas, HeaderHas, HeadersHave

    inbox = run(store.create_inbox(address()))
    box = run(store.get_mailbox(inbox.id, "INBOX"))
    raw = (
        b"From: =?UTF-8?Q?=C3=89mile?= <emile@example.test>\r\nTo: bea@example.test\r\n"
        b"Subject: =?UTF-8?Q?Stra=C3=9Fe?= works\r\nX-Ticket: T-42\r\n\r\n"
        b"The fence is done.\r\n"
    )
    run(store.append(box.id, raw))
    run(store.append(box.id, message(2, body="x" * 140_000)))
    searches = [
        (FieldHas("subject", "strasse w"), [1]),
        (FieldHas("from", "émile <"), [1]),
        (FieldHas("cc", ""), []),
        (HeadersHave("t-42"), [1]),
        (HeaderHas("=?utf-8?q?stra"), [1]),
        (BodyHas("fence is"), [1]),
        (BodyWhole(), [1]),  # the other is longer than the index keeps
    ]

    def found(s: Store) -> list[list[int]]:
        return [
            [uid for uid, _ in run(s.matching_entries(box.id, where, 2))[0]]
            for where, _ in searches
        ]

    assert found(store) == [uids for _, uids in searches]

    downgrade(store, "0020")
    run(store.close())

    upgraded = open_store()
    assert found(upgraded) == [uids for _, uids in searches]
    assert rows(upgraded, "SELECT count(*) FROM header_texts") == [(2,)]
