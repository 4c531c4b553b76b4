"""What the store accepts as a name: mailboxes, pods, addresses, domains, flags, key ids and
allow/block entries, checked before anything is written. Pure: no SQL."""

from __future__ import annotations

from collections.abc import Iterable

from mailgate.mime.addresses import InvalidAddress, normalize_address
from mailgate.store import errors
from mailgate.store.records import FLAG_BITS, HIERARCHY_DELIMITER, INBOX

MAX_MAILBOX_NAME = 1000
MAX_KEYWORD = 200
MAX_KEY_ID = 32
MAX_LABEL = 255


def canonical_mailbox_name(name: str) -> str:
    """INBOX is case-insensitive, also as a parent ("inbox/x" is "INBOX/x"); nothing else is."""
    head, sep, rest = name.partition(HIERARCHY_DELIMITER)
    if head.upper() == INBOX:
        return INBOX + sep + rest
    return name


def storable(text_value: str) -> bool:
    """Whether a string can be stored and compared at all (PostgreSQL refuses NUL, and UTF-8
    cannot encode lone surrogates such as surrogateescape leaves behind)."""
    if "\x00" in text_value:
        return False
    try:
        text_value.encode()
    except UnicodeEncodeError:
        return False
    return True


def existing_mailbox_name(name: str) -> str:
    """The canonical form of a name to look up; one that create would refuse cannot exist."""
    name = canonical_mailbox_name(name)
    if not storable(name):
        raise no_mailbox(name.encode("utf-8", "replace").decode())
    return name


def valid_mailbox_name(name: str) -> str:
    name = canonical_mailbox_name(name)
    if not storable(name):
        raise errors.InvalidName("a mailbox name must be valid UTF-8 without NUL")
    if not name or len(name.encode()) > MAX_MAILBOX_NAME:
        raise errors.InvalidName("a mailbox name must be 1 to 1000 bytes long")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise errors.InvalidName("a mailbox name cannot contain control characters")
    parts = name.split(HIERARCHY_DELIMITER)
    if any(not p for p in parts):
        raise errors.InvalidName(f"{name!r} has an empty level in its hierarchy")
    if any(c in name for c in "*%"):
        raise errors.InvalidName("a mailbox name cannot contain the wildcards * or %")
    return name


def parents(name: str) -> list[str]:
    """The names above `name` in the hierarchy, outermost first: "a/b/c" -> ["a", "a/b"]."""
    parts = name.split(HIERARCHY_DELIMITER)
    return [HIERARCHY_DELIMITER.join(parts[:depth]) for depth in range(1, len(parts))]


def no_mailbox(name: str) -> errors.MailboxNotFound:
    hint = "" if name == INBOX else " (mailbox names other than INBOX are case-sensitive)"
    return errors.MailboxNotFound(f'Mailbox "{name}" does not exist{hint}')


_SYSTEM_FLAG_NAMES = {name.upper(): name for name in FLAG_BITS}


def checked_flags(flags: Iterable[str]) -> tuple[str, ...]:
    """Flags with system flags in their canonical case, or InvalidName. Keywords are stored
    space-separated, so none may hold a space or a control character, or be empty; other
    backslash names (\\Recent, \\Foo) are not flags a client can set (RFC 3501 §2.3.2)."""
    checked = []
    for flag in flags:
        if flag.startswith("\\"):
            system = _SYSTEM_FLAG_NAMES.get(flag.upper())
            if system is None:
                raise errors.InvalidName(f"{flag!r} cannot be set")
            checked.append(system)
            continue
        if (
            not flag
            or len(flag) > MAX_KEYWORD
            or not storable(flag)
            or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in flag)
        ):
            raise errors.InvalidName(f"{flag!r} is not a valid flag")
        checked.append(flag)
    return tuple(checked)


def valid_key_id(key_id: str) -> bool:
    return 0 < len(key_id) <= MAX_KEY_ID and storable(key_id) and key_id.isprintable()


def optional_text(value: str | None, what: str) -> str | None:
    """A short free text (a display name, a client id), or None."""
    if value is None:
        return None
    if len(value) > MAX_LABEL or not storable(value) or not value.isprintable():
        raise errors.InvalidName(f"a {what} is at most {MAX_LABEL} printable characters")
    return value


def key_label(label: str) -> str:
    if len(label) > MAX_LABEL or not storable(label):
        raise errors.InvalidName(f"a key label is at most {MAX_LABEL} printable characters")
    return label


def domain_name(name: str) -> str:
    try:
        return normalize_address(f"postmaster@{name}").partition("@")[2]
    except InvalidAddress:
        raise errors.InvalidName(f"{name!r} is not a valid domain name") from None


def sender_rule(action: str, entry: str) -> tuple[str, str]:
    if action not in ("allow", "block"):
        raise errors.InvalidName(f"{action!r}: a rule is allow or block")
    entry = entry.strip().lower()
    candidate = entry if "@" in entry else f"postmaster@{entry}"
    try:
        normalized = normalize_address(candidate, utf8=True)
    except InvalidAddress:
        raise errors.InvalidName(f"{entry!r} is neither an address nor a domain") from None
    if entry.isascii():
        return action, entry
    # Kept as senders are compared (delivery/inbound.py): an IDN as its A-labels, a UTF-8
    # local part in NFC.
    return action, normalized if "@" in entry else normalized.partition("@")[2]


def pod_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 255 or not storable(name) or any(ord(c) < 0x21 for c in name):
        raise errors.InvalidName(f"{name!r} is not a valid pod name")
    return name


def address(value: str) -> str:
    try:
        return normalize_address(value)
    except InvalidAddress as exc:
        raise errors.InvalidName(str(exc)) from None
