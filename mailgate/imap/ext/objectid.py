"""OBJECTID (RFC 8474): ids that stay with a mailbox and a message, for clients that cache.

    MAILBOXID  "F" and the mailbox's row id: kept through RENAME (SELECT, STATUS)
    EMAILID    "M" and the stored message's blob id: the same for its copies in every mailbox
               of the inbox (FETCH, SEARCH)
    THREADID   the thread's public id, the `thread_id` the HTTP API shows for the same
               conversation (FETCH, SEARCH)

The FETCH items, the SEARCH keys and the MAILBOXID of SELECT and STATUS are answered where those
commands are; this module says what the ids are and how they are written.
"""

from __future__ import annotations


def email_id(blob_id: int) -> str:
    return f"M{blob_id}"


def mailbox_item(row_id: int) -> bytes:
    return b"MAILBOXID (F%d)" % row_id


def email_item(blob_id: int | None) -> bytes:
    return b"EMAILID NIL" if blob_id is None else b"EMAILID (M%d)" % blob_id


def thread_item(thread: str | None) -> bytes:
    return b"THREADID NIL" if thread is None else b"THREADID (" + thread.encode() + b")"
