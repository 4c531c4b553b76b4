"""CONDSTORE (RFC 7162 §3.1) switched on by the first command that uses it."""

from __future__ import annotations

from mailgate.imap.interfaces import Session


def enable_condstore(s: Session) -> None:
    """A CONDSTORE-enabling command (ENABLE, SELECT (CONDSTORE), FETCH MODSEQ or CHANGEDSINCE,
    STORE UNCHANGEDSINCE, SEARCH MODSEQ, STATUS HIGHESTMODSEQ) turns it on for the session. If
    a mailbox is selected and CONDSTORE was off, the client learns the HIGHESTMODSEQ it is now
    at (RFC 7162 §3.1, as Dovecot does), since its SELECT did not say it."""
    if s.condstore:
        return
    s.condstore = True
    selected = s.selected
    if selected is not None:
        s.untagged(b"OK [HIGHESTMODSEQ %d] Highest" % selected.modseq)
