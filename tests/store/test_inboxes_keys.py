"""Pods, inboxes and API keys: creation, lookup, deletion, and pod isolation at the key level."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mailgate.auth import Authenticator, AuthFailed, LockedOut, hash_secret, split_token
from mailgate.config import AuthSettings
from mailgate.provision import issue_key
from mailgate.store import errors
from mailgate.store.api import Store
from mailgate.store.records import BUILTIN_MAILBOXES, Parcel, Target
from mailgate.store.tenancy import DEFAULT_POD
from tests.store.conftest import address, count, message, rows, run


def test_create_inbox_makes_the_five_builtin_mailboxes_with_special_use(store: Store) -> None:
    inbox = run(store.create_inbox(address()))
    boxes = {m.name: m for m in run(store.list_mailboxes(inbox.id))}
    assert {name: m.special_use for name, m in boxes.items()} == {
        "INBOX": None,
        "Sent": "\\Sent",
        "Trash": "\\Trash",
        "Spam": "\\Junk",
        "Drafts": "\\Drafts",
    }
    assert set(boxes) == set(BUILTIN_MAILBOXES)
    for box in boxes.values():
        assert box.builtin
        assert box.inbox_id == inbox.id
        assert box.uidnext == 1
        assert box.uidvalidity > 0
    assert run(store.subscriptions(inbox.id)) == set(BUILTIN_MAILBOXES)
    # Each mailbox of one inbox has its own UIDVALIDITY.
    assert len({b.uidvalidity for b in boxes.values()}) == 5


def test_create_inbox_normalises_the_address_and_uses_the_default_pod(store: Store) -> None:
    inbox = run(store.create_inbox("  Alice.Smith@Example.TEST "))
    assert inbox.address == "alice.smith@example.test"
    assert inbox.pod == DEFAULT_POD
    assert run(store.get_inbox("ALICE.SMITH@example.test")) == inbox
    assert run(store.get_inbox("<alice.smith@example.test>")) == inbox
    assert run(store.get_pod(DEFAULT_POD)).id == inbox.pod_id


def test_create_inbox_twice_any_case_is_inbox_exists(store: Store) -> None:
    run(store.create_inbox("bob@example.test"))
    with pytest.raises(errors.InboxExists):
        run(store.create_inbox("BOB@example.test"))


@pytest.mark.parametrize("bad", ["", "no-at-sign", "@example.test", "a b@example.test", "x@-bad-"])
def test_create_inbox_with_invalid_address_is_invalid_name(store: Store, bad: str) -> None:
    with pytest.raises(errors.InvalidName):
        run(store.create_inbox(bad))


def test_get_inbox_unknown_or_invalid_is_inbox_not_found(store: Store) -> None:
    with pytest.raises(errors.InboxNotFound):
        run(store.get_inbox("nobody@example.test"))
    with pytest.raises(errors.InboxNotFound):
        run(store.get_inbox("not an address"))


def test_find_and_list_inboxes(store: Store) -> None:
    a = run(store.create_inbox("a@example.test"))
    b = run(store.create_inbox("b@example.test", "other"))
    found = run(store.find_inboxes(["a@example.test", "b@example.test", "c@example.test"]))
    assert found == {"a@example.test": a, "b@example.test": b}
    assert run(store.find_inboxes([])) == {}
    assert run(store.list_inboxes()) == [a, b]
    assert run(store.list_inboxes("other")) == [b]
    assert run(store.list_inboxes(DEFAULT_POD)) == [a]


def test_pods_create_list_delete(store: Store) -> None:
    pod = run(store.create_pod("team"))
    assert pod.name == "team"
    with pytest.raises(errors.PodExists):
        run(store.create_pod("team"))
    assert [p.name for p in run(store.list_pods())] == ["default", "team"]
    run(store.create_inbox(address(), "team"))
    with pytest.raises(errors.CannotModify):
        run(store.delete_pod("team"))
    with pytest.raises(errors.PodNotFound):
        run(store.delete_pod("nope"))
    with pytest.raises(errors.PodNotFound):
        run(store.get_pod("nope"))
    with pytest.raises(errors.InvalidName):
        run(store.create_pod("   "))


def test_delete_empty_pod(store: Store) -> None:
    run(store.create_pod("gone"))
    run(store.delete_pod("gone"))
    assert [p.name for p in run(store.list_pods())] == [DEFAULT_POD]


def test_the_default_pod_exists_from_the_start_and_stays(store: Store) -> None:
    """DESIGN: "a default pod exists": a pod key for it can be made before any inbox."""
    assert [p.name for p in run(store.list_pods())] == [DEFAULT_POD]
    key = run(store.add_key("early", "0" * 64, pod=DEFAULT_POD))
    assert key.pod == DEFAULT_POD
    with pytest.raises(errors.CannotModify):
        run(store.delete_pod(DEFAULT_POD))
    inbox = run(store.create_inbox(address()))
    assert inbox.pod_id == key.pod_id


def test_delete_inbox_removes_everything_including_its_keys(store: Store) -> None:
    keep = run(store.create_inbox(address("keep")))
    doomed = run(store.create_inbox(address("doomed")))
    keep_key = run(store.add_key("keepkey", "0" * 64, inbox=keep.address))
    run(store.add_key("doomkey", "1" * 64, inbox=doomed.address))
    pod_key = run(store.add_key("podkey", "2" * 64, pod=DEFAULT_POD))
    doomed_inbox = run(store.get_mailbox(doomed.id, "INBOX"))
    keep_inbox = run(store.get_mailbox(keep.id, "INBOX"))
    shared = message(1)
    run(
        store.deliver(
            [
                Parcel(shared, (Target(doomed_inbox.id), Target(keep_inbox.id))),
                Parcel(message(2), (Target(doomed_inbox.id, ("\\Deleted",)),)),
            ]
        )
    )
    run(store.store_flags(doomed_inbox.id, [(2, 2)], "+", ["\\Deleted"]))
    run(store.expunge(doomed_inbox.id))  # leaves a tombstone behind
    run(store.create_mailbox(doomed.id, "Projects/2026"))

    run(store.delete_inbox(doomed.address))

    with pytest.raises(errors.InboxNotFound):
        run(store.get_inbox(doomed.address))
    assert run(store.get_key("doomkey")) is None
    assert run(store.get_key("keepkey")) == keep_key
    assert run(store.get_key("podkey")) == pod_key  # the pod's key outlives one inbox
    assert rows(store, "SELECT count(*) FROM mailboxes WHERE inbox_id = :i", i=doomed.id) == [(0,)]
    assert rows(store, "SELECT count(*) FROM entries WHERE mailbox_id = :m", m=doomed_inbox.id) == [
        (0,)
    ]
    assert rows(
        store, "SELECT count(*) FROM expunged WHERE mailbox_id = :m", m=doomed_inbox.id
    ) == [(0,)]
    # The blob the other inbox shares survives; the doomed inbox's own one is gone.
    assert count(store, "messages") == 1
    assert count(store, "blobs") == 1
    assert [r.data for r in run(store.fetch(keep_inbox.id, [(1, 1)], ["data"]))] == [shared]
    with pytest.raises(errors.InboxNotFound):
        run(store.delete_inbox(doomed.address))


def test_recreated_inbox_starts_empty(store: Store) -> None:
    inbox = run(store.create_inbox("again@example.test"))
    box = run(store.get_mailbox(inbox.id, "INBOX"))
    run(store.append(box.id, message(1)))
    run(store.delete_inbox(inbox.address))
    again = run(store.create_inbox("again@example.test"))
    assert again.id != inbox.id
    new_box = run(store.get_mailbox(again.id, "INBOX"))
    assert run(store.status(new_box.id)).messages == 0
    assert new_box.uidnext == 1


# ------------------------------------------------------------------------ keys


def test_add_key_scoped_to_an_inbox(store: Store) -> None:
    inbox = run(store.create_inbox(address()))
    key = run(store.add_key("k1", "a" * 64, inbox=inbox.address.upper(), label="laptop"))
    assert key.id == "k1"
    assert key.inbox_id == inbox.id
    assert key.inbox == inbox.address
    assert key.pod_id == inbox.pod_id
    assert key.pod == inbox.pod
    assert key.label == "laptop"
    assert key.secret_hash == "a" * 64
    assert key.active
    assert run(store.get_key("k1")) == key
    assert "a" * 64 not in repr(key)  # the hash never lands in logs via repr


def test_add_key_scoped_to_a_pod(store: Store) -> None:
    inbox = run(store.create_inbox(address(), "team"))
    key = run(store.add_key("k2", "b" * 64, pod="team"))
    assert key.inbox_id is None
    assert key.inbox is None
    assert key.pod_id == inbox.pod_id
    assert key.pod == "team"


def test_add_key_needs_exactly_one_scope_that_exists(store: Store) -> None:
    inbox = run(store.create_inbox(address()))
    with pytest.raises(ValueError, match="exactly one"):
        run(store.add_key("x", "c" * 64))
    with pytest.raises(ValueError, match="exactly one"):
        run(store.add_key("x", "c" * 64, pod=DEFAULT_POD, inbox=inbox.address))
    with pytest.raises(errors.InboxNotFound):
        run(store.add_key("x", "c" * 64, inbox="nobody@example.test"))
    with pytest.raises(errors.PodNotFound):
        run(store.add_key("x", "c" * 64, pod="nope"))
    assert run(store.list_keys()) == []


def test_add_key_with_an_existing_id_is_a_store_error(store: Store) -> None:
    inbox = run(store.create_inbox(address()))
    run(store.add_key("dup", "d" * 64, inbox=inbox.address))
    with pytest.raises(errors.AlreadyExists):
        run(store.add_key("dup", "e" * 64, inbox=inbox.address))


def test_add_key_with_an_overlong_label_is_invalid_name(store: Store) -> None:
    inbox = run(store.create_inbox(address()))
    with pytest.raises(errors.InvalidName):
        run(store.add_key("long", "d" * 64, inbox=inbox.address, label="x" * 256))


def test_list_and_revoke_keys(store: Store) -> None:
    inbox = run(store.create_inbox(address()))
    a = run(store.add_key("ka", "a" * 64, inbox=inbox.address))
    b = run(store.add_key("kb", "b" * 64, pod=DEFAULT_POD))
    assert {k.id for k in run(store.list_keys())} == {a.id, b.id}
    revoked = run(store.revoke_key("ka"))
    assert not revoked.active
    assert revoked.revoked_at is not None
    assert run(store.get_key("ka")) == revoked
    # Revoking twice keeps the first revocation time.
    assert run(store.revoke_key("ka")).revoked_at == revoked.revoked_at
    assert run(store.get_key("kb")).active  # type: ignore[union-attr]
    with pytest.raises(errors.KeyNotFound):
        run(store.revoke_key("nope"))
    assert run(store.get_key("nope")) is None


def test_rename_key_changes_its_label_only(store: Store) -> None:
    inbox = run(store.create_inbox(address()))
    key = run(store.add_key("kr", "a" * 64, inbox=inbox.address, label="old"))
    assert key.updated_at == key.created_at
    renamed = run(store.rename_key("kr", "new name"))
    assert renamed.label == "new name"
    assert renamed.updated_at >= key.created_at
    assert (renamed.id, renamed.pod_id, renamed.inbox_id, renamed.secret_hash) == (
        key.id,
        key.pod_id,
        key.inbox_id,
        key.secret_hash,
    )
    assert run(store.get_key("kr")) == renamed
    # A revoked key keeps its name and may be renamed; it stays revoked.
    run(store.revoke_key("kr"))
    assert not run(store.rename_key("kr", "gone")).active
    with pytest.raises(errors.KeyNotFound):
        run(store.rename_key("nope", "x"))
    with pytest.raises(errors.KeyNotFound):
        run(store.rename_key("", "x"))
    with pytest.raises(errors.InvalidName):
        run(store.rename_key("kr", "x" * 256))


def test_pod_isolation_at_the_key_level(store: Store) -> None:
    """A key names its pod and (optionally) its inbox: exactly what auth needs to refuse a
    login into another pod. Two pods' keys and inboxes never share ids."""
    red1 = run(store.create_inbox("one@red.test", "red"))
    red2 = run(store.create_inbox("two@red.test", "red"))
    blue = run(store.create_inbox("one@blue.test", "blue"))
    red_pod_key = run(store.add_key("redpod", "1" * 64, pod="red"))
    red1_key = run(store.add_key("red1", "2" * 64, inbox=red1.address))
    blue_pod_key = run(store.add_key("bluepod", "3" * 64, pod="blue"))

    assert red1.pod_id == red2.pod_id != blue.pod_id
    assert red_pod_key.pod_id == red1.pod_id
    assert red_pod_key.inbox_id is None
    assert red1_key.pod_id == red1.pod_id
    assert red1_key.inbox_id == red1.id
    assert blue_pod_key.pod_id == blue.pod_id
    # Mailboxes belong to one inbox: the same name in two inboxes is two mailboxes.
    red_box = run(store.get_mailbox(red1.id, "INBOX"))
    blue_box = run(store.get_mailbox(blue.id, "INBOX"))
    assert red_box.id != blue_box.id
    run(store.append(red_box.id, message(1)))
    assert run(store.status(blue_box.id)).messages == 0
    assert [i.address for i in run(store.list_inboxes("blue"))] == ["one@blue.test"]


def test_a_mailbox_of_another_inbox_is_not_found_by_name(store: Store) -> None:
    a = run(store.create_inbox(address()))
    b = run(store.create_inbox(address()))
    run(store.create_mailbox(a.id, "Private"))
    with pytest.raises(errors.MailboxNotFound):
        run(store.get_mailbox(b.id, "Private"))


# ------------------------------------------------------------------------ logins (auth + store)


@pytest.fixture
def authenticator(store: Store) -> Authenticator:
    return Authenticator(store, AuthSettings(max_failures=1000, failure_delay=0.0))


def login(auth: Authenticator, address: str, token: str) -> str:
    return run(auth.login(address, token, "192.0.2.1", protocol="imap")).address


def test_login_with_inbox_key(store: Store, authenticator: Authenticator) -> None:
    inbox = run(store.create_inbox("Login@Example.test"))
    key, token = run(issue_key(store, inbox=inbox.address))
    assert token not in repr(key)
    assert login(authenticator, "LOGIN@example.TEST", token) == inbox.address
    assert login(authenticator, f"  {inbox.address} ", f" {token} ") == inbox.address
    principal = run(authenticator.login(inbox.address, token, "192.0.2.1", protocol="imap"))
    assert principal.key_id == key.id
    assert principal.inbox == inbox


def test_stored_hash_is_not_the_token(store: Store) -> None:
    inbox = run(store.create_inbox(address()))
    key, token = run(issue_key(store, inbox=inbox.address))
    key_id, secret = split_token(token)  # type: ignore[misc]
    assert key_id == key.id
    assert key.secret_hash == hash_secret(secret)
    stored = rows(store, "SELECT secret_hash FROM api_keys WHERE id = :k", k=key.id)
    assert stored == [(hash_secret(secret),)]
    assert secret not in str(rows(store, "SELECT * FROM api_keys"))


def test_login_refusals(store: Store, authenticator: Authenticator) -> None:
    alice = run(store.create_inbox(address("alice")))
    bob = run(store.create_inbox(address("bob")))
    _, token = run(issue_key(store, inbox=alice.address))
    key_id, secret = split_token(token)  # type: ignore[misc]
    refused = [
        (bob.address, token),  # someone else's inbox
        ("nobody@example.test", token),  # no such inbox
        ("not an address", token),
        (alice.address, f"mgk_{key_id}_{secret[:-1]}x"),  # wrong secret
        (alice.address, f"mgk_unknown_{secret}"),  # unknown key id
        (alice.address, secret),  # not a token
        (alice.address, ""),
        (alice.address, "mgk_\x00_x"),  # NUL in the key id (LOGIN literal junk)
        (alice.address, "mgk_\ufffd\ufffd_x"),  # undecodable bytes, replaced
    ]
    for who, what in refused:
        with pytest.raises(AuthFailed):
            run(authenticator.login(who, what, "192.0.2.1", protocol="imap"))
    assert login(authenticator, alice.address, token) == alice.address


def test_revoked_key_is_refused(store: Store, authenticator: Authenticator) -> None:
    inbox = run(store.create_inbox(address()))
    key, token = run(issue_key(store, inbox=inbox.address))
    assert login(authenticator, inbox.address, token) == inbox.address
    run(store.revoke_key(key.id))
    with pytest.raises(AuthFailed):
        run(authenticator.login(inbox.address, token, "192.0.2.1", protocol="imap"))


def test_pod_key_opens_every_inbox_of_its_pod_and_no_other(
    store: Store, authenticator: Authenticator
) -> None:
    red1 = run(store.create_inbox("one@red.test", "red"))
    red2 = run(store.create_inbox("two@red.test", "red"))
    blue = run(store.create_inbox("one@blue.test", "blue"))
    default = run(store.create_inbox(address()))
    _, red_token = run(issue_key(store, pod="red"))
    assert login(authenticator, red1.address, red_token) == red1.address
    assert login(authenticator, red2.address, red_token) == red2.address
    later = run(store.create_inbox("three@red.test", "red"))  # created after the key
    assert login(authenticator, later.address, red_token) == later.address
    for outsider in (blue, default):
        with pytest.raises(AuthFailed):
            run(authenticator.login(outsider.address, red_token, "192.0.2.1", protocol="imap"))
    # An inbox key of the red pod opens that inbox only.
    _, red1_token = run(issue_key(store, inbox=red1.address))
    with pytest.raises(AuthFailed):
        run(authenticator.login(red2.address, red1_token, "192.0.2.1", protocol="imap"))


def test_key_of_a_deleted_and_recreated_inbox_is_refused(
    store: Store, authenticator: Authenticator
) -> None:
    inbox = run(store.create_inbox("reborn@example.test"))
    _, token = run(issue_key(store, inbox=inbox.address))
    run(store.delete_inbox(inbox.address))
    run(store.create_inbox("reborn@example.test"))
    with pytest.raises(AuthFailed):
        run(authenticator.login("reborn@example.test", token, "192.0.2.1", protocol="imap"))


def test_repeated_failures_ban_the_client_when_the_operator_asks(store: Store) -> None:
    auth = Authenticator(store, AuthSettings(ban_after=3, lockout=60, failure_delay=0.0))
    inbox = run(store.create_inbox(address()))
    _, token = run(issue_key(store, inbox=inbox.address))
    for _ in range(3):
        with pytest.raises(AuthFailed):
            run(auth.login(inbox.address, "mgk_x_wrong", "198.51.100.7", protocol="imap"))
    with pytest.raises(LockedOut):
        run(auth.login(inbox.address, token, "198.51.100.7", protocol="imap"))
    assert (
        run(auth.login(inbox.address, token, "198.51.100.8", protocol="imap")).address
        == inbox.address
    )


# ------------------------------------------------------------------------ errors


HOSTILE = ["", "\x00", "a\x00b", "\udcff", "x" * 5000, "%", "_", "'; DROP TABLE pods; --", "ü"]


def test_errors_are_the_stores_own(store: Store) -> None:
    """Whatever a caller passes, what comes back is a value or a StoreError (or ValueError for a
    programming mistake): never a SQLAlchemy or driver exception."""
    inbox = run(store.create_inbox(address()))
    box = run(store.get_mailbox(inbox.id, "INBOX"))
    calls = []
    for text in HOSTILE:
        calls += [
            lambda t=text: store.get_inbox(t),
            lambda t=text: store.find_inboxes([t]),
            lambda t=text: store.create_inbox(t),
            lambda t=text: store.delete_inbox(t),
            lambda t=text: store.create_pod(t),
            lambda t=text: store.get_pod(t),
            lambda t=text: store.delete_pod(t),
            lambda t=text: store.list_inboxes(t),
            lambda t=text: store.get_key(t),
            lambda t=text: store.revoke_key(t),
            lambda t=text: store.add_key(t, "0" * 64, inbox=inbox.address),
            lambda t=text: store.add_key("k" + str(len(t)), "0" * 64, pod=DEFAULT_POD, label=t),
            lambda t=text: store.get_mailbox(inbox.id, t),
            lambda t=text: store.create_mailbox(inbox.id, t),
            lambda t=text: store.delete_mailbox(inbox.id, t),
            lambda t=text: store.rename_mailbox(inbox.id, t, "New"),
            lambda t=text: store.rename_mailbox(inbox.id, "INBOX", t),
            lambda t=text: store.set_subscribed(inbox.id, t, True),
            lambda t=text: store.store_flags(box.id, [(1, 1)], "+", [t]),
            lambda t=text: store.append(box.id, message(1), flags=[t]),
        ]
    for missing in (0, -1, 2**62, 2**70):
        calls += [
            lambda m=missing: store.status(m),
            lambda m=missing: store.snapshot(m),
            lambda m=missing: store.fetch(m, [(1, 10)], ["data", "envelope"]),
            lambda m=missing: store.store_flags(m, [(1, 1)], "+", ["\\Seen"]),
            lambda m=missing: store.expunge(m),
            lambda m=missing: store.copy(box.id, [(1, 1)], m),
            lambda m=missing: store.move(m, [(1, 1)], box.id),
            lambda m=missing: store.changes_since(m, 0),
            lambda m=missing: store.append(m, message(2)),
            lambda m=missing: store.create_mailbox(m, "X"),
            lambda m=missing: store.list_mailboxes(m),
            lambda m=missing: store.fetch(box.id, [(1, abs(m))]),
            lambda m=missing: store.store_flags(box.id, [(abs(m), abs(m))], "+", ["$x"]),
            lambda m=missing: store.expunge(box.id, [(abs(m), abs(m) + 1)]),
        ]
    foreign = []
    for call in calls:
        try:
            run(call())
        except errors.StoreError:
            pass
        except Exception as exc:
            # Plain ValueError only: UnicodeEncodeError is a ValueError too, and a bug.
            if type(exc) is not ValueError:
                foreign.append(exc)
    assert foreign == []
    # Nothing hostile got in, and the store still works.
    assert [i.address for i in run(store.list_inboxes())] == [inbox.address]
    assert run(store.append(box.id, message(3))).uid >= 1


# ------------------------------------------------------------------------ what the API adds


def test_an_organization_key_opens_every_inbox_of_every_pod(store: Store) -> None:
    auth = Authenticator(store, AuthSettings(max_failures=1000, failure_delay=0.0))
    a = run(store.create_inbox(address(), "pod-a"))
    b = run(store.create_inbox(address(), "pod-b"))
    key, token = run(issue_key(store, organization=True, label="platform"))
    assert (key.scope, key.pod, key.pod_id, key.inbox) == ("organization", None, None, None)
    for inbox in (a, b):
        assert run(auth.login(inbox.address, token, "192.0.2.1", protocol="imap")).inbox == inbox
    assert run(store.get_key(key.id)) == key
    assert key in run(store.list_keys())
    with pytest.raises(ValueError, match="exactly one"):
        run(store.add_key("both", "0" * 64, pod="pod-a", organization=True))


def test_creating_with_a_client_id_twice_creates_once(store: Store) -> None:
    pod = run(store.create_pod("agents-1", client_id="tenant-42"))
    assert run(store.create_pod("agents-2", client_id="tenant-42")) == pod
    assert [p.name for p in run(store.list_pods())].count("agents-2") == 0
    first = run(store.create_inbox(address(), "agents-1", client_id="agent-7"))
    again = run(store.create_inbox(address(), "agents-1", client_id="agent-7"))
    assert again == first
    assert len(run(store.list_inboxes("agents-1"))) == 1
    with pytest.raises(errors.PodExists):
        run(store.create_pod("agents-1", client_id="another"))


def test_update_inbox_changes_only_what_is_given(store: Store) -> None:
    inbox = run(store.create_inbox(address(), display_name="Support", metadata='{"team": "a"}'))
    assert (inbox.display_name, inbox.metadata) == ("Support", '{"team": "a"}')
    renamed = run(store.update_inbox(inbox.address, display_name="Help desk"))
    assert (renamed.display_name, renamed.metadata) == ("Help desk", '{"team": "a"}')
    cleared = run(store.update_inbox(inbox.address, metadata=None))
    assert (cleared.display_name, cleared.metadata) == ("Help desk", None)
    assert cleared.updated_at >= inbox.updated_at
    assert run(store.get_inbox(inbox.address)) == cleared
    with pytest.raises(errors.InboxNotFound):
        run(store.update_inbox(address(), display_name="x"))
    with pytest.raises(errors.InvalidName):
        run(store.update_inbox(inbox.address, display_name="two\nlines"))


def test_a_secret_is_made_once_and_shared(store: Store, open_store: Callable[..., Store]) -> None:
    first = run(store.secret("tokens"))
    assert len(first) == 32
    assert run(open_store().secret("tokens")) == first
    assert run(store.secret("other")) != first
