"""LIST and LSUB: SPECIAL-USE (RFC 6154), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819),
wildcards, case-sensitive names and modified UTF-7 (RFC 3501 §5.1.3)."""

from __future__ import annotations

from tests.harness import Account, Server
from tests.imap.helpers import append, list_attributes, list_names, message, status_items
from tests.transcript import Response, Transcript

BUILTIN = ["INBOX", "Drafts", "Sent", "Spam", "Trash"]
SPECIAL_USE = {"Sent": "\\Sent", "Trash": "\\Trash", "Spam": "\\Junk", "Drafts": "\\Drafts"}


def test_list_all_shows_builtin_mailboxes_with_special_use(imap: Transcript) -> None:
    r = imap.ok('LIST "" "*"')
    assert list_names(r) == BUILTIN
    attrs = list_attributes(r)
    for name, use in SPECIAL_USE.items():
        assert use in attrs[name], attrs
    assert not {"\\Sent", "\\Trash", "\\Junk", "\\Drafts"} & attrs["INBOX"]
    assert all(b') "/" ' in line for line in r.lines(b"LIST")), r


def test_exact_list_line_for_sent(imap: Transcript) -> None:
    r = imap.ok('LIST "" Sent')
    assert r.untagged == [b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"']


def test_empty_pattern_gives_delimiter_and_root(imap: Transcript) -> None:
    r = imap.ok('LIST "" ""')
    assert r.untagged == [b'* LIST (\\Noselect) "/" ""']


def test_percent_stops_at_the_delimiter_and_star_does_not(imap: Transcript) -> None:
    imap.ok("CREATE Projects/Alpha/Notes")
    imap.ok("CREATE Projects/Beta")

    def names(pattern: str) -> list[str]:
        return sorted(list_names(imap.ok(f'LIST "" "{pattern}"')))

    assert names("%") == sorted([*BUILTIN, "Projects"])
    assert names("Projects/%") == ["Projects/Alpha", "Projects/Beta"]
    assert names("Projects/*") == ["Projects/Alpha", "Projects/Alpha/Notes", "Projects/Beta"]
    assert names("*") == sorted(
        [*BUILTIN, "Projects", "Projects/Alpha", "Projects/Alpha/Notes", "Projects/Beta"]
    )
    assert names("P%") == ["Projects"]
    assert names("*Notes") == ["Projects/Alpha/Notes"]
    assert names("%/%") == ["Projects/Alpha", "Projects/Beta"]


def test_children_attributes(imap: Transcript) -> None:
    imap.ok("CREATE Projects/Alpha")
    attrs = list_attributes(imap.ok('LIST "" "*"'))
    assert "\\HasChildren" in attrs["Projects"]
    assert "\\HasNoChildren" in attrs["Projects/Alpha"]
    assert "\\HasNoChildren" in attrs["Sent"]


def test_reference_is_prefixed_to_the_pattern(imap: Transcript) -> None:
    imap.ok("CREATE Projects/Alpha")
    imap.ok("CREATE Projects/Beta")
    assert list_names(imap.ok('LIST "Projects/" "%"')) == ["Projects/Alpha", "Projects/Beta"]
    assert list_names(imap.ok('LIST "Projects/" "Beta"')) == ["Projects/Beta"]


def test_inbox_matches_case_insensitively_and_others_do_not(imap: Transcript) -> None:
    assert list_names(imap.ok('LIST "" "inbox"')) == ["INBOX"]
    assert list_names(imap.ok('LIST "" "iNbOx"')) == ["INBOX"]
    assert list_names(imap.ok('LIST "" "sent"')) == []
    assert list_names(imap.ok('LIST "" "SENT"')) == []
    assert list_names(imap.ok('LIST "" "Sent"')) == ["Sent"]


def test_names_differing_only_in_case_are_different_mailboxes(imap: Transcript) -> None:
    imap.ok("CREATE sent")
    r = imap.ok('LIST "" "*"')
    attrs = list_attributes(r)
    assert "sent" in attrs
    assert "Sent" in attrs
    assert "\\Sent" in attrs["Sent"]
    assert "\\Sent" not in attrs["sent"]
    append(imap, message("lower"), "sent")
    assert status_items(imap.ok("STATUS Sent (MESSAGES)"))["MESSAGES"] == 0
    assert status_items(imap.ok("STATUS sent (MESSAGES)"))["MESSAGES"] == 1


def test_list_special_use_selection(imap: Transcript) -> None:
    imap.ok("CREATE Ordinary")
    r = imap.ok('LIST (SPECIAL-USE) "" "*"')
    assert sorted(list_names(r)) == sorted(SPECIAL_USE)
    for name, attrs in list_attributes(r).items():
        assert SPECIAL_USE[name] in attrs


def test_list_return_special_use(imap: Transcript) -> None:
    r = imap.ok('LIST "" "*" RETURN (SPECIAL-USE)')
    attrs = list_attributes(r)
    assert list_names(r) == BUILTIN
    for name, use in SPECIAL_USE.items():
        assert use in attrs[name]


def test_list_return_subscribed(imap: Transcript) -> None:
    imap.ok("CREATE Unwatched")
    imap.ok("UNSUBSCRIBE Unwatched")
    attrs = list_attributes(imap.ok('LIST "" "*" RETURN (SUBSCRIBED)'))
    assert "\\Subscribed" in attrs["INBOX"]
    assert "\\Subscribed" in attrs["Sent"]
    assert "\\Subscribed" not in attrs["Unwatched"]


def test_list_subscribed_selection(imap: Transcript) -> None:
    imap.ok("CREATE Unwatched")
    imap.ok("UNSUBSCRIBE Unwatched")
    r = imap.ok('LIST (SUBSCRIBED) "" "*"')
    assert "Unwatched" not in list_names(r)
    assert all("\\Subscribed" in a for a in list_attributes(r).values())


def test_list_return_status(imap: Transcript) -> None:
    append(imap, message("a"))
    append(imap, message("b"), flags="\\Seen")
    append(imap, message("c"), "Trash")
    r = imap.ok('LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))')
    # RFC 5819: each STATUS follows its mailbox's LIST line.
    pairs: dict[str, dict[str, int]] = {}
    current = None
    for line in r.untagged:
        if line.startswith(b"* LIST "):
            current = list_names(Response([line], b""))[0]
        else:
            assert line.startswith(b"* STATUS "), line
            assert current is not None, line
            assert f'"{current}"'.encode() in line
            pairs[current] = status_items(Response([line], b""))
            current = None
    assert pairs["INBOX"] == {"MESSAGES": 2, "UNSEEN": 1, "UIDNEXT": 3}
    assert pairs["Trash"] == {"MESSAGES": 1, "UNSEEN": 1, "UIDNEXT": 2}
    assert pairs["Sent"] == {"MESSAGES": 0, "UNSEEN": 0, "UIDNEXT": 1}


def test_list_several_patterns(imap: Transcript) -> None:
    r = imap.ok('LIST "" ("INBOX" "Trash")')
    assert list_names(r) == ["INBOX", "Trash"]


def test_list_errors(imap: Transcript) -> None:
    imap.bad('LIST (BOGUS) "" "*"')
    imap.bad('LIST "" "*" RETURN (BOGUS)')
    imap.bad('LIST ""')
    imap.bad("LIST")
    imap.bad('LIST (RECURSIVEMATCH) "" "*"')


def test_lsub(imap: Transcript) -> None:
    imap.ok("CREATE Watched")
    imap.ok("SUBSCRIBE Watched")
    imap.ok("CREATE Unwatched")
    r = imap.ok('LSUB "" "*"')
    names = list_names(r, b"LSUB")
    assert "Watched" in names
    assert "INBOX" in names
    assert "Unwatched" not in names
    assert imap.ok('LSUB "" ""').untagged == [b'* LSUB (\\Noselect) "/" ""']
    assert list_names(imap.ok('LSUB "" "W%"'), b"LSUB") == ["Watched"]


def test_modified_utf7_round_trip(imap: Transcript) -> None:
    # "Entwürfe" and "日本語" in modified UTF-7.
    imap.ok('CREATE "Entw&APw-rfe"')
    imap.ok('CREATE "&ZeVnLIqe-"')
    imap.ok('CREATE "Tom &- Jerry"')
    names = list_names(imap.ok('LIST "" "*"'))
    assert {"Entw&APw-rfe", "&ZeVnLIqe-", "Tom &- Jerry"} <= set(names)
    append(imap, message(), "Entw&APw-rfe")
    imap.ok('SELECT "Entw&APw-rfe"')
    assert status_items(imap.ok('STATUS "Entw&APw-rfe" (MESSAGES)'))["MESSAGES"] == 1
    assert list_names(imap.ok('LIST "" "Entw&APw-%"')) == ["Entw&APw-rfe"]


def test_utf8_name_is_listed_in_modified_utf7(imap: Transcript) -> None:
    # A client that sends raw UTF-8 (as UTF8=ACCEPT clients do) sees the mailbox in
    # modified UTF-7, the one form every IMAP4rev1 client understands.
    imap.ok('CREATE "' + "Entwürfe" + '"')
    assert "Entw&APw-rfe" in list_names(imap.ok('LIST "" "*"'))
    imap.ok('SELECT "Entw&APw-rfe"')


def test_invalid_modified_utf7_is_refused(imap: Transcript) -> None:
    imap.no('CREATE "bad&name"', code="CANNOT")
    assert "bad&name" not in list_names(imap.ok('LIST "" "*"'))


# RFC 3501 §9: every one of these characters may appear in an atom (a mailbox name) and, with
# "%" and "*", in a list-mailbox; "&'+,-" is not valid modified UTF-7, so no such mailbox exists.
LEGAL_ATOM = "!#$&'+,-.0123456789:;<=>?@^_`|[}"


def test_legal_atoms_as_names_are_no_and_patterns_ok(imap: Transcript) -> None:
    """imaptest's atoms group: a BAD here made it hang up; a strict client gives up too."""
    imap.ok('LIST "" ~foo')
    imap.no("SELECT ~foo", code="NONEXISTENT")
    imap.no(f"SELECT {LEGAL_ATOM}", code="NONEXISTENT")
    imap.no(f"EXAMINE {LEGAL_ATOM}", code="NONEXISTENT")
    imap.no(f"STATUS {LEGAL_ATOM} (MESSAGES)", code="NONEXISTENT")
    imap.no(f"CREATE {LEGAL_ATOM}", code="CANNOT")
    r = imap.ok(f'LIST "" {LEGAL_ATOM}%*')
    assert r.untagged == []
    assert imap.ok(f'LSUB "" {LEGAL_ATOM}%*').untagged == []
    # A valid name made of the same characters ("&" as "&-") is an ordinary mailbox.
    valid = LEGAL_ATOM.replace("&", "&-")
    imap.ok(f"CREATE {valid}")
    assert list_names(imap.ok(f'LIST "" {valid}%*')) == [valid]
    imap.ok(f"SELECT {valid}")


def test_imaplib_list(server: Server, account: Account) -> None:
    client = server.imap_client(account)
    try:
        typ, data = client.list()
        assert typ == "OK"
        assert b'(\\HasNoChildren \\Junk) "/" "Spam"' in data
        assert len(data) == 5
    finally:
        client.logout()


def test_children_of_inbox(imap: Transcript) -> None:
    imap.ok("CREATE INBOX/Sub")
    assert list_names(imap.ok('LIST "" "inbox/%"')) == ["INBOX/Sub"]
    assert "\\HasChildren" in list_attributes(imap.ok('LIST "" "%"'))["INBOX"]
