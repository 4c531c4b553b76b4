"""The IMAP command grammar: one framed command in, one typed :class:`Request` out. Pure.

The server does the framing. It reads lines and literals off the wire and hands over one
command as ``[line0, literal0, line1, literal1, ..., lineN]`` (lines without their CRLF;
every line but the last ends in a literal marker ``{n}``/``{n+}``). :func:`parse_request`
turns that into the frozen dataclasses of values.py and raises :class:`ParseError` (and
nothing else, whatever the bytes) for anything malformed. No I/O, no server state.

Grammar: RFC 3501 §9 plus LITERAL+ (RFC 7888), MULTIAPPEND (RFC 3502), UIDPLUS (RFC 4315),
ID (RFC 2971), ENABLE (RFC 5161), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819),
SPECIAL-USE (RFC 6154), ESEARCH (RFC 4731), CONDSTORE (RFC 7162), MOVE (RFC 6851),
BINARY (RFC 3516), CATENATE (RFC 4469), SEARCHRES's "$" (RFC 5182), SAVEDATE (RFC 8514),
PREVIEW (RFC 8970), QUOTA (RFC 9208), COMPRESS (RFC 4978) and SASL-IR (RFC 4959); and, in the
dialect of a session that enabled them (values.Dialect), UTF8=ACCEPT (RFC 6855) and IMAP4rev2
(RFC 9051). SEARCH has a module of its own (search.py), and so have SORT and THREAD (sort.py)
and NOTIFY (notify.py); the tokens all commands share are read by reader.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

from mailgate.imap.syntax.notify import parse_notify
from mailgate.imap.syntax.reader import (
    DOT,
    DQUOTE,
    GT,
    LBRACKET,
    LPAREN,
    LT,
    MAX_MODSEQ,
    MAX_NUMBER,
    MAX_NUMBER64,
    RBRACKET,
    RPAREN,
    SP,
    TAG,
    Reader,
    dedupe,
)
from mailgate.imap.syntax.search import parse_search
from mailgate.imap.syntax.sort import parse_sort, parse_thread
from mailgate.imap.syntax.values import (
    REV1,
    Append,
    AppendMessage,
    Arguments,
    Authenticate,
    CancelUpdate,
    CatenatePart,
    Compress,
    CopyMove,
    Dialect,
    Enable,
    Fetch,
    FetchItem,
    Id,
    InvalidMailboxName,
    List,
    Login,
    Lsub,
    MailboxArg,
    Notify,
    ParseError,
    Qresync,
    QuotaRoot,
    Rename,
    Request,
    Section,
    Select,
    SequenceSet,
    SetQuota,
    Status,
    StoreFlags,
    UidExpunge,
)

_STATUS_ITEMS = frozenset(
    {
        "MESSAGES",
        "RECENT",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "HIGHESTMODSEQ",
        "SIZE",
        "DELETED",
        "DELETED-STORAGE",  # RFC 9208 §4.2.2
        "MAILBOXID",  # RFC 8474 §4.2
    }
)


def _status_item(r: Reader) -> str:
    item = r.word()
    if item not in _STATUS_ITEMS:
        raise ParseError("Unknown STATUS item")
    if item == "RECENT" and r.dialect.rev2:
        raise ParseError("IMAP4rev2 has no RECENT status item (RFC 9051)")
    return item


def _status_items(r: Reader) -> tuple[str, ...]:
    return dedupe(r.paren_list(_status_item, empty_ok=False))


def _no_args(r: Reader, uid: bool) -> None:
    r.finish()


def _login(r: Reader, uid: bool) -> Login:
    r.sp()
    user = r.astring()
    r.sp()
    password = r.astring()
    r.finish()
    return Login(bytes(user), bytes(password))


# RFC 4959: initial-response = base64 / "="
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def _authenticate(r: Reader, uid: bool) -> Authenticate:
    r.sp()
    mechanism = r.word()
    response: bytes | None = None
    if r.more():
        token = r.atom()
        if token != b"=" and not _BASE64.fullmatch(token):
            raise ParseError("Invalid initial response")
        response = bytes(token)
    r.finish()
    return Authenticate(mechanism, response)


def _select(r: Reader, uid: bool) -> Select:
    r.sp()
    mailbox = r.mailbox()
    condstore = False
    qresync: Qresync | None = None
    if r.more():
        # RFC 4466 §2.1 select-params; RFC 7162 §3.1.8 defines CONDSTORE, §3.2.5 QRESYNC.
        # Each name is judged as soon as it is read: QRESYNC's value has a grammar of its own.
        r.expect(LPAREN, "(")
        while True:
            param = r.word()
            if param == "CONDSTORE":
                condstore = True
            elif param == "QRESYNC" and qresync is None:
                r.sp()
                qresync = _qresync(r)
            else:
                raise ParseError("Unknown SELECT parameter")
            if r.peek() != SP:
                break
            r.pos += 1
        r.expect(RPAREN, ")")
    r.finish()
    return Select(mailbox, condstore, qresync)


def _qresync(r: Reader) -> Qresync:
    """ "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"."""
    r.expect(LPAREN, "(")
    uidvalidity = r.number(nonzero=True)
    r.sp()
    modseq = r.number(nonzero=True, maximum=MAX_MODSEQ)
    known: SequenceSet | None = None
    if r.peek() == SP:
        r.pos += 1
        if r.peek() != LPAREN:
            known = _uids_without_star(r)
            if r.peek() == SP:
                r.pos += 1
                _seq_match_data(r)
        else:
            _seq_match_data(r)
    r.expect(RPAREN, ")")
    return Qresync(uidvalidity, modseq, known)


def _uids_without_star(r: Reader) -> SequenceSet:
    uids = r.sequence_set()
    if uids.saved:
        raise ParseError("Known UIDs cannot be $")
    if any(part.start is None or part.end is None for part in uids.ranges):
        raise ParseError("Known UIDs cannot contain *")
    return uids


def _seq_match_data(r: Reader) -> None:
    """ "(" known-sequence-set SP known-uid-set ")", both without "*"."""
    r.expect(LPAREN, "(")
    _uids_without_star(r)
    r.sp()
    _uids_without_star(r)
    r.expect(RPAREN, ")")


def _mailbox_command(r: Reader, uid: bool) -> MailboxArg:
    r.sp()
    mailbox = r.mailbox()
    r.finish()
    return MailboxArg(mailbox)


def _rename(r: Reader, uid: bool) -> Rename:
    r.sp()
    old = r.mailbox()
    r.sp()
    new = r.mailbox()
    r.finish()
    return Rename(old, new)


_LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_LIST_RETURNS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"})


def _list(r: Reader, uid: bool) -> List:
    r.sp()
    selection: set[str] = set()
    if r.peek() == LPAREN:
        for option in r.paren_list(Reader.word, empty_ok=True):
            # RFC 5258 §3: unknown selection options are an error (tagged BAD).
            if option not in _LIST_SELECTION:
                raise ParseError("Unknown LIST selection option")
            selection.add(option)
        # RFC 5258 §3.1: RECURSIVEMATCH alone (or only with REMOTE) is a BAD.
        if "RECURSIVEMATCH" in selection and not selection - {"RECURSIVEMATCH", "REMOTE"}:
            raise ParseError("RECURSIVEMATCH needs another selection option")
        r.sp()
    reference = r.mailbox()
    r.sp()
    if r.peek() == LPAREN:  # RFC 5258 §3: several patterns
        patterns = tuple(r.paren_list(Reader.list_mailbox, empty_ok=False))
    else:
        patterns = (r.list_mailbox(),)
    returns: set[str] = set()
    status_items: tuple[str, ...] = ()
    if r.more():
        if r.word() != "RETURN":
            raise ParseError("Expected RETURN")
        r.sp()
        r.expect(LPAREN, "(")
        if r.peek() != RPAREN:
            while True:
                option = r.word()
                if option == "STATUS":  # RFC 5819 §2
                    r.sp()
                    status_items = _status_items(r)
                elif option not in _LIST_RETURNS:
                    raise ParseError("Unknown LIST return option")
                returns.add(option)
                if r.peek() != SP:
                    break
                r.pos += 1
        r.expect(RPAREN, ")")
    r.finish()
    return List(reference, patterns, frozenset(selection), frozenset(returns), status_items)


def _lsub(r: Reader, uid: bool) -> Lsub:
    r.sp()
    reference = r.mailbox()
    r.sp()
    pattern = r.list_mailbox()
    r.finish()
    return Lsub(reference, pattern)


def _status(r: Reader, uid: bool) -> Status:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    items = _status_items(r)
    r.finish()
    return Status(mailbox, items)


def _append(r: Reader, uid: bool) -> Append:
    # RFC 3502 §6.3.11: append = "APPEND" SP mailbox 1*append-message;
    # append-message = append-opts SP literal; append-opts = [SP flag-list] [SP date-time]
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    messages: list[AppendMessage] = []
    while True:
        flags: tuple[str, ...] = ()
        when: datetime | None = None
        if r.peek() == LPAREN:
            flags = r.flag_list()
            r.sp()
        if r.peek() == DQUOTE:
            when = r.date_time()
            r.sp()
        if r.is_literal():
            # Message data is stored as given; NUL bytes are the MIME layer's business.
            data = bytes(r.literal(allow_nul=True))
            if r.dialect.utf8 and data.startswith(_UTF8_WRAPPED) and data.endswith(b")"):
                # Python's imaplib, once UTF8=ACCEPT is enabled, puts RFC 6855's "UTF8 ("
                # and ")" inside the literal (CPython gh-78319). No message starts so (a
                # field name holds neither space nor "("), so the message is what is inside.
                data = data[len(_UTF8_WRAPPED) : -1]
            messages.append(AppendMessage(flags, when, data))
        elif r.dialect.utf8 and r.match(_UTF8) is not None:
            messages.append(AppendMessage(flags, when, _utf8_literal(r)))
        elif r.match(_CATENATE) is not None:
            r.sp()
            parts = tuple(r.paren_list(_cat_part, empty_ok=False))
            messages.append(AppendMessage(flags, when, b"", parts))
        else:
            raise r.fail("a message literal or CATENATE")
        if not r.more():
            break
    r.finish()
    return Append(mailbox, tuple(messages))


_CATENATE = re.compile(rb"(?i:CATENATE)(?![^ ])")
_CAT_PART = re.compile(rb"(?i:TEXT|URL)(?![^ ])")
_UTF8 = re.compile(rb"(?i:UTF8)(?![^ ])")
_UTF8_WRAPPED = b"UTF8 ("


def _utf8_literal(r: Reader) -> bytes:
    """RFC 6855 §4: utf8-literal = "UTF8" SP "(" literal8 ")", after "UTF8": a message whose
    header may hold UTF-8 (message/global), taken only once UTF-8 is enabled."""
    r.sp()
    r.expect(LPAREN, "(")
    if not r.is_literal8():
        raise r.fail("a literal8 (~{n})")
    data = bytes(r.literal(allow_nul=True))
    r.expect(RPAREN, ")")
    return data


def _cat_part(r: Reader) -> CatenatePart:
    """RFC 4469 §5: cat-part = "TEXT" SP literal / "URL" SP astring (literal8 too, RFC 3516);
    once UTF-8 is enabled also RFC 6855 §4's utf8-literal."""
    if r.dialect.utf8 and r.match(_UTF8) is not None:
        return CatenatePart(text=_utf8_literal(r))
    kind = r.match(_CAT_PART)
    if kind is None:
        raise r.fail("TEXT or URL")
    r.sp()
    if kind.upper() == b"TEXT":
        if not r.is_literal():
            raise r.fail("a literal")
        return CatenatePart(text=bytes(r.literal(allow_nul=True)))
    url = bytes(r.astring())
    if not url.isascii():
        raise ParseError("An IMAP URL is ASCII (RFC 5092)")
    return CatenatePart(url=url.decode("ascii"))


_FETCH_MACROS = {
    # RFC 3501 §6.4.5
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_FETCH_MACRO = re.compile(rb"(?i:ALL|FAST|FULL)(?![^ ])")
_FETCH_SIMPLE = frozenset(
    {
        "UID",
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODYSTRUCTURE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
        "MODSEQ",  # RFC 7162 §3.1.4.1
        "EMAILID",  # RFC 8474 §5
        "THREADID",
        "SAVEDATE",  # RFC 8514 §4.3
    }
)
_FETCH_NAME = re.compile(rb"[A-Za-z0-9.]+")
_SECTION_TOKEN = re.compile(rb"[A-Za-z0-9.]*")
_SECTION_TEXT = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})
# Header field names are echoed unquoted in the response, so they must be RFC 5322 ftext
# that is also ATOM-CHAR.
_FIELD_NAME = re.compile(rb'[^\x00-\x20\x7f-\xff:(){%*"\\\]]+')


def _fetch_att(r: Reader) -> FetchItem:
    token = r.match(_FETCH_NAME)
    if token is None:
        raise r.fail("a FETCH item")
    name = token.decode("ascii").upper()
    if name == "PREVIEW":
        return _preview(r)
    has_section = r.peek() == LBRACKET
    if name in _FETCH_SIMPLE or (name == "BODY" and not has_section):
        if has_section:
            raise ParseError("Unexpected section")
        return FetchItem(name)
    peek = name.endswith(".PEEK")
    base = name.removesuffix(".PEEK")
    if base not in ("BODY", "BINARY", "BINARY.SIZE") or (peek and base == "BINARY.SIZE"):
        raise ParseError("Unknown FETCH item")
    if not has_section:
        raise ParseError("Expected a section")
    r.pos += 1
    section = _section(r, binary=base != "BODY")
    partial: tuple[int, int] | None = None
    if r.peek() == LT and base != "BINARY.SIZE":
        # "<" number "." nz-number ">"; IMAP4rev2's are number64 (RFC 9051 Appendix D).
        largest = MAX_NUMBER64 if r.dialect.rev2 else MAX_NUMBER
        r.pos += 1
        start = r.number(maximum=largest)
        r.expect(DOT, ".")
        length = r.number(nonzero=True, maximum=largest)
        r.expect(GT, ">")
        partial = (start, length)
    return FetchItem(base, section, partial, peek)


_PREVIEW_MODIFIERS = re.compile(rb" \((?i:LAZY)[ )]")


def _preview(r: Reader) -> FetchItem:
    """RFC 8970 §6: "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"], preview-mod = "LAZY".
    LAZY changes nothing here: every preview is computed at ingest, so it is always at hand."""
    # A bare "FETCH 1 PREVIEW (CHANGEDSINCE 5)" is followed by FETCH modifiers, not its own.
    if _PREVIEW_MODIFIERS.match(r.line, r.pos):
        r.pos += 1
        for modifier in r.paren_list(Reader.word, empty_ok=False):
            if modifier != "LAZY":
                raise ParseError("Unknown PREVIEW modifier")
    return FetchItem("PREVIEW")


def _section(r: Reader, *, binary: bool) -> Section:
    token = r.match(_SECTION_TOKEN) or b""
    parts: list[int] = []
    text = ""
    if token:
        components = token.split(b".")
        i = 0
        while i < len(components) and components[i].isdigit():
            component = components[i]
            # section-part = nz-number *("." nz-number)
            if component[0] == 0x30 or len(component) > 10 or int(component) > MAX_NUMBER:
                raise ParseError("Invalid section")
            parts.append(int(component))
            i += 1
        text = b".".join(components[i:]).decode("ascii").upper()
        if text and (binary or text not in _SECTION_TEXT or (text == "MIME" and not parts)):
            raise ParseError("Invalid section")
        if not text and i < len(components):  # e.g. "1." or an empty component
            raise ParseError("Invalid section")
    fields: tuple[str, ...] = ()
    if text.startswith("HEADER.FIELDS"):
        r.sp()
        # Kept as given, repeats too: the response echoes the client's list (as Dovecot does).
        fields = tuple(r.paren_list(_header_field, empty_ok=False))
    r.expect(RBRACKET, "]")
    return Section(tuple(parts), text, fields)


def parse_section(text: bytes) -> Section:
    """A BODY section spec on its own ("1.2.MIME", "HEADER.FIELDS (From)"), as an IMAP URL's
    ;SECTION= carries it (RFC 5092 §9)."""
    r = Reader([text + b"]"])
    section = _section(r, binary=False)
    r.finish()
    return section


def _header_field(r: Reader) -> str:
    raw = r.astring()
    if not _FIELD_NAME.fullmatch(raw):
        raise ParseError("Invalid header field name")
    return bytes(raw).decode("ascii").upper()


def _fetch(r: Reader, uid: bool) -> Fetch:
    r.sp()
    sequence = r.sequence_set()
    r.sp()
    items: list[FetchItem]
    macro = r.match(_FETCH_MACRO)
    if macro is not None:
        items = [FetchItem(n) for n in _FETCH_MACROS[macro.decode("ascii").upper()]]
    elif r.peek() == LPAREN:
        items = r.paren_list(_fetch_att, empty_ok=False)
    else:
        items = [_fetch_att(r)]
    changedsince: int | None = None
    vanished = False
    if r.more():
        # RFC 4466 §2.4 fetch-modifiers; RFC 7162 §3.1.4.1 CHANGEDSINCE, §3.2.6 VANISHED.
        r.expect(LPAREN, "(")
        while True:
            modifier = r.word()
            if modifier == "CHANGEDSINCE" and changedsince is None:
                r.sp()
                changedsince = r.number(maximum=MAX_MODSEQ)
            elif modifier == "VANISHED" and not vanished:
                vanished = True
            else:
                raise ParseError("Unknown FETCH modifier")
            if r.peek() != SP:
                break
            r.pos += 1
        r.expect(RPAREN, ")")
    r.finish()
    if vanished and not (uid and changedsince is not None):
        raise ParseError("VANISHED needs UID FETCH with CHANGEDSINCE")
    implicit: list[FetchItem] = []
    names = {i.name for i in items}
    if uid and "UID" not in names:  # RFC 3501 §6.4.8: UID FETCH always returns UID
        implicit.append(FetchItem("UID"))
    if changedsince is not None and "MODSEQ" not in names:  # RFC 7162 §3.1.4.1
        implicit.append(FetchItem("MODSEQ"))
    return Fetch(sequence, dedupe(implicit + items), changedsince, vanished)


_STORE_ATT = re.compile(rb"[+-]?[A-Za-z.]+")


def _store(r: Reader, uid: bool) -> StoreFlags:
    r.sp()
    sequence = r.sequence_set()
    r.sp()
    unchangedsince: int | None = None
    if r.peek() == LPAREN:
        # RFC 7162 §3.1.3: store-modifier = "UNCHANGEDSINCE" SP mod-sequence-valzer
        r.pos += 1
        if r.word() != "UNCHANGEDSINCE":
            raise ParseError("Unknown STORE modifier")
        r.sp()
        unchangedsince = r.number(maximum=MAX_MODSEQ)
        r.expect(RPAREN, ")")
        r.sp()
    token = r.match(_STORE_ATT)
    if token is None:
        raise r.fail("FLAGS")
    att = token.decode("ascii").upper()
    mode = att[0] if att[0] in "+-" else ""
    att = att.removeprefix(mode)
    if att not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseError("Expected FLAGS")
    r.sp()
    if r.peek() == LPAREN:
        flags = r.flag_list()
    else:
        bare = [r.flag()]
        while r.more():
            bare.append(r.flag())
        flags = dedupe(bare)
    r.finish()
    return StoreFlags(sequence, mode, att == "FLAGS.SILENT", flags, unchangedsince)


def _copy_move(r: Reader, uid: bool) -> CopyMove:
    r.sp()
    sequence = r.sequence_set()
    r.sp()
    mailbox = r.mailbox()
    r.finish()
    return CopyMove(sequence, mailbox)


def _expunge(r: Reader, uid: bool) -> UidExpunge | None:
    if not uid:
        r.finish()
        return None
    r.sp()
    sequence = r.sequence_set()
    r.finish()
    return UidExpunge(sequence)


# RFC 2971 §3.3: fields at most 30 octets, values at most 1024, at most 30 pairs.
_ID_MAX_PAIRS, _ID_MAX_FIELD, _ID_MAX_VALUE = 30, 30, 1024


def _id(r: Reader, uid: bool) -> Id:
    r.sp()
    if r.peek() != LPAREN:
        if r.word() != "NIL":
            raise ParseError("Expected ( or NIL")
        r.finish()
        return Id(None)
    r.pos += 1
    pairs: list[tuple[str, str | None]] = []
    while r.peek() != RPAREN:
        if pairs:
            r.sp()
        if len(pairs) == _ID_MAX_PAIRS:
            raise ParseError("Too many ID fields")
        field = r.string()
        r.sp()
        value = r.nstring()
        if len(field) > _ID_MAX_FIELD or (value is not None and len(value) > _ID_MAX_VALUE):
            raise ParseError("ID field or value too long")
        # ID data is informational (logs): decode leniently rather than refuse the client.
        pairs.append(
            (
                bytes(field).decode("utf-8", "replace"),
                None if value is None else bytes(value).decode("utf-8", "replace"),
            )
        )
    r.pos += 1
    r.finish()
    return Id(tuple(pairs))


def _enable(r: Reader, uid: bool) -> Enable:
    r.sp()
    capabilities = [r.word()]
    while r.more():
        capabilities.append(r.word())
    r.finish()
    return Enable(dedupe(capabilities))


def _quota_root(r: Reader) -> str:
    return r.astring().decode("utf-8", "replace")


def _getquota(r: Reader, uid: bool) -> QuotaRoot:
    r.sp()
    root = _quota_root(r)
    r.finish()
    return QuotaRoot(root)


def _setquota_resource(r: Reader) -> tuple[str, int]:
    name = r.word()
    r.sp()
    return name, r.number(maximum=MAX_NUMBER64)


def _setquota(r: Reader, uid: bool) -> SetQuota:
    r.sp()
    root = _quota_root(r)
    r.sp()
    limits = r.paren_list(_setquota_resource, empty_ok=True)
    r.finish()
    return SetQuota(root, tuple(limits))


def _compress(r: Reader, uid: bool) -> Compress:
    r.sp()
    mechanism = r.word()
    r.finish()
    # RFC 4978 §5: algorithm = "DEFLATE"; anything else is not the command's syntax. The
    # client's word is not echoed: a reason is short fixed text (an atom may be 64 KiB).
    if mechanism != "DEFLATE":
        raise ParseError("Unknown compression mechanism; only DEFLATE is offered")
    return Compress(mechanism)


def _cancel_update(r: Reader, uid: bool) -> CancelUpdate:
    # RFC 5267 §4.3.2: "CANCELUPDATE" 1*(SP tag-string), tag-string = string
    r.sp()
    tags = [bytes(r.string()).decode("ascii", "replace")]
    while r.more():
        tags.append(bytes(r.string()).decode("ascii", "replace"))
    r.finish()
    return CancelUpdate(dedupe(tags))


def _notify(r: Reader, uid: bool) -> Notify:
    return parse_notify(r, _fetch_att)


_COMMANDS: dict[str, Callable[[Reader, bool], Arguments]] = {
    "CAPABILITY": _no_args,
    "NOOP": _no_args,
    "LOGOUT": _no_args,
    "STARTTLS": _no_args,
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _mailbox_command,
    "DELETE": _mailbox_command,
    "RENAME": _rename,
    "SUBSCRIBE": _mailbox_command,
    "UNSUBSCRIBE": _mailbox_command,
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "CHECK": _no_args,
    "CLOSE": _no_args,
    "EXPUNGE": _expunge,
    "SEARCH": parse_search,
    "SORT": parse_sort,
    "THREAD": parse_thread,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy_move,
    "MOVE": _copy_move,
    "IDLE": _no_args,
    "NAMESPACE": _no_args,
    "ID": _id,
    "UNSELECT": _no_args,
    "ENABLE": _enable,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _mailbox_command,
    "SETQUOTA": _setquota,
    "COMPRESS": _compress,
    "NOTIFY": _notify,
    "CANCELUPDATE": _cancel_update,
}
_UID_COMMANDS = frozenset({"FETCH", "SEARCH", "SORT", "THREAD", "STORE", "COPY", "MOVE", "EXPUNGE"})


def parse_tag(chunks: Sequence[bytes]) -> str | None:
    """The command's tag if the first line starts with a valid one followed by SP or the end."""
    try:
        line = chunks[0]
        m = TAG.match(line)
        if m is None or (m.end() < len(line) and line[m.end()] != SP):
            return None
        return bytes(m.group()).decode("ascii")
    except Exception:  # the contract is "never raise": garbage in, None out
        return None


def parse_request(chunks: Sequence[bytes], dialect: Dialect = REV1) -> Request:
    """Parse one framed command in the session's dialect; raises ParseError (and only
    ParseError) if it is malformed."""
    tag = parse_tag(chunks)
    name = ""
    try:
        if tag is None:
            raise ParseError("Missing or invalid tag")
        r = Reader(chunks, dialect)
        r.pos = len(tag)
        if r.at_end():
            raise ParseError("Missing command")
        r.sp()
        name = r.word()
        uid = name == "UID"
        if uid:
            r.sp()
            name = r.word()
            if name not in _UID_COMMANDS:
                raise ParseError("Unknown UID command")
        handler = _COMMANDS.get(name)
        if handler is None:
            raise ParseError("Unknown command")
        return Request(tag, name, uid, handler(r, uid))
    except InvalidMailboxName as exc:
        exc.tag = exc.tag or tag
        exc.code = exc.code or ("CANNOT" if name in ("CREATE", "RENAME") else "NONEXISTENT")
        raise
    except ParseError as exc:
        if exc.tag is None:
            exc.tag = tag
        raise
    except Exception as exc:
        # Belt and braces: the server must only ever see ParseError. The original exception
        # is kept as __cause__ (the fuzz test asserts there never is one).
        raise ParseError("Malformed command", tag) from exc
