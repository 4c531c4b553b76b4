"""Search over the HTTP API, driven by the agentmail SDK: messages and threads found by a word
of the body, a part of the subject, sender or recipients; best first, with highlights; Spam,
Trash and drafts left out; paged with signed tokens; within the key's scope; the list filters
`from`, `to` and `subject`; and mail delivered over SMTP found at once. Every answer is checked
against the SDK's own model."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from agentmail import NotFoundError, ValidationError
from agentmail.core.api_error import ApiError
from agentmail.messages import ListMessagesResponse, SearchMessagesResponse
from agentmail.threads import ListThreadsResponse, SearchThreadsResponse

from mailgate.store.records import Parcel, Target
from tests.harness import DOMAIN, Server
from tests.http.sdk import Api, username


@dataclass(frozen=True)
class Letter:
    sender: str
    subject: str
    body: str
    cc: str = ""


@pytest.fixture
def pair(org: Api, pod: str, server: Server, apis: Callable[[str], Api]) -> tuple[Api, Api]:
    """Two inboxes of one pod, each with a client holding a key for that inbox only (the
    inbox's address is the client's `address`)."""
    clients = []
    for _ in range(2):
        inbox = org.client.pods.inboxes.create(pod, username=username(), domain=DOMAIN)
        client = apis(server.inbox_key(inbox.inbox_id))
        client.address = inbox.inbox_id  # type: ignore[attr-defined]
        clients.append(client)
    return clients[0], clients[1]


def address(api: Api) -> str:
    return str(api.address)  # type: ignore[attr-defined]


AN_HOUR_AGO = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)


def deliver(server: Server, to: str, *letters: Letter, mailbox: str = "INBOX") -> list[str]:
    """The letters filed in `to`'s `mailbox`, a minute apart from AN_HOUR_AGO on: their ids."""
    ids = [f"<{uuid.uuid4().hex}@elsewhere.test>" for _ in letters]
    start = AN_HOUR_AGO

    async def go() -> None:
        inbox = await server.store.get_inbox(to)
        box = await server.store.get_mailbox(inbox.id, mailbox)
        parcels = []
        for n, (letter, message_id) in enumerate(zip(letters, ids, strict=True)):
            cc = f"Cc: {letter.cc}\r\n" if letter.cc else ""
            raw = (
                f"From: {letter.sender}\r\nTo: {to}\r\n{cc}Subject: {letter.subject}\r\n"
                f"Message-ID: {message_id}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                f"{letter.body}\r\n"
            ).encode()
            when = start + datetime.timedelta(minutes=n)
            parcels.append(Parcel(raw, (Target(box.id),), internaldate=when))
        await server.store.deliver(parcels)

    server.call(go())
    return ids


def search(api: Api, q: str, **options: object) -> SearchMessagesResponse:
    found = api.client.inboxes.messages.search(address(api), q=q, **options)  # type: ignore[arg-type]
    return api.valid(SearchMessagesResponse, found)


def ids(response: SearchMessagesResponse) -> list[str]:
    return [m.message_id for m in response.messages]


INVOICE = Letter(
    "Carol <carol@supplier.test>", "Invoice 42", "Please pay the attached invoice by Friday."
)
LUNCH = Letter("Dave <dave@elsewhere.test>", "Lunch", "Lunch on Friday? Bring the invoice too.")
BILLING = Letter("Invoice Desk <billing@acme.test>", "Hello", "Nothing here.")
OTHER = Letter("Eve <eve@x.test>", "Unrelated", "Nothing to see.", cc="Frank <frank@partner.test>")


def test_found_by_body_subject_sender_and_recipients_best_first(
    server: Server, pair: tuple[Api, Api]
) -> None:
    _, b = pair
    invoice, lunch, billing, other = deliver(server, address(b), INVOICE, LUNCH, BILLING, OTHER)
    # In the subject and the body, then the sender, then the body alone.
    found = search(b, "invoice")
    assert ids(found) == [invoice, billing, lunch]
    assert found.count == 3
    first, second, third = found.messages
    assert first.highlights is not None
    assert first.highlights.subject == ["**Invoice** 42"]
    assert first.highlights.text == ["Please pay the attached **invoice** by Friday."]
    assert first.highlights.from_ is None
    assert second.highlights is not None
    assert second.highlights.from_ == ["**Invoice** Desk <billing@acme.test>"]
    assert (second.highlights.subject, second.highlights.text) == (None, None)
    assert third.highlights is not None
    assert third.highlights.text == ["Lunch on Friday? Bring the **invoice** too."]
    assert third.highlights.subject is None
    # The highlights say which fields matched: only those keys are in the JSON.
    assert set(b.last.json()["messages"][1]["highlights"]) == {"from"}  # type: ignore[union-attr]
    # Words of the body, equal scores newest first; the sender's and recipients' addresses.
    assert ids(search(b, "FRIDAY")) == [lunch, invoice]
    assert ids(search(b, "supplier.test")) == [invoice]
    partner = search(b, "partner")
    assert ids(partner) == [other]
    assert partner.messages[0].highlights is not None
    assert partner.messages[0].highlights.recipients == ["Frank <frank@**partner**.test>"]
    # Summary fields match a part of a word; the body only whole words.
    assert ids(search(b, "voic")) == [invoice, billing]
    # Every term must match; a quoted phrase is its words in order.
    assert ids(search(b, "invoice friday")) == [invoice, lunch]
    assert ids(search(b, '"attached invoice"')) == [invoice]
    assert ids(search(b, '"invoice attached"')) == []
    assert ids(search(b, "nowhere-to-be-found")) == []


def test_query_syntax_is_never_the_index_s(server: Server, pair: tuple[Api, Api]) -> None:
    _, b = pair
    (invoice,) = deliver(server, address(b), INVOICE)
    for q in ("invoice*", "NEAR(invoice friday)", "body:invoice", "invoice OR", "-lunch", "^x"):
        search(b, q)  # answered, whatever FTS5 or tsquery would make of it
    assert ids(search(b, '"invoice')) == [invoice]  # an unclosed quote is not a phrase
    assert ids(search(b, "100%")) == []
    for q in ("", "   ", '""'):
        with pytest.raises(ValidationError) as refused:
            b.client.inboxes.messages.search(address(b), q=q)
        assert [e["path"] for e in refused.value.body.errors] == [["q"]]
    with pytest.raises(ValidationError):
        b.client.inboxes.messages.search(address(b), q=" ".join(f"w{n}" for n in range(17)))


def test_spam_trash_and_drafts_are_left_out(server: Server, pair: tuple[Api, Api]) -> None:
    _, b = pair
    zebra = Letter("z@zoo.test", "Zebra", "a zebra")
    (kept,) = deliver(server, address(b), zebra)
    for mailbox in ("Spam", "Trash", "Drafts"):
        deliver(
            server,
            address(b),
            Letter("z@zoo.test", f"Zebra in {mailbox}", "a zebra"),
            mailbox=mailbox,
        )
    assert ids(search(b, "zebra")) == [kept]
    threads = b.client.inboxes.threads.search(address(b), q="zebra").threads
    assert [t.subject for t in threads] == ["Zebra"]


def test_paging_through_results(server: Server, pair: tuple[Api, Api]) -> None:
    _, b = pair
    letters = [
        Letter(
            f"Sender {n} <{'widget' if n % 3 == 0 else 's'}{n}@x.test>",
            "Widget news" if n % 2 == 0 else f"News {n}",
            "widget inside" if n % 5 == 0 else "nothing",
        )
        for n in range(30)
    ]
    delivered = deliver(server, address(b), *letters)
    everything = ids(search(b, "widget", limit=100))
    assert len(everything) == len(set(everything)) == 22  # those with the word somewhere
    assert set(everything) <= set(delivered)
    pages = []
    token = None
    while True:
        page = search(b, "widget", limit=7, page_token=token)
        pages.append(page)
        token = page.next_page_token
        if token is None:
            break
    assert [p.count for p in pages] == [7, 7, 7, 1]
    assert [i for p in pages for i in ids(p)] == everything  # each once, in rank order
    # A token is signed and bound to its query.
    first = pages[0].next_page_token
    assert first is not None
    data, _, mac = first.partition(".")
    edited = data[:-1] + ("A" if data[-1] != "A" else "B") + "." + mac
    for bad, q in ((edited, "widget"), (first, "gadget"), ("garbage", "widget")):
        with pytest.raises(ValidationError) as refused:
            b.client.inboxes.messages.search(address(b), q=q, page_token=bad)
        assert [e["path"] for e in refused.value.body.errors] == [["page_token"]]
    # before and after narrow by when the mail arrived.
    cut = AN_HOUR_AGO + datetime.timedelta(minutes=14, seconds=30)
    older = ids(search(b, "widget", before=cut))
    newer = ids(search(b, "widget", after=cut))
    assert sorted(older + newer) == sorted(everything)
    assert set(older) <= set(delivered[:15])
    assert set(newer) <= set(delivered[15:])


def test_an_inbox_key_searches_its_own_inbox_only(server: Server, pair: tuple[Api, Api]) -> None:
    a, b = pair
    deliver(server, address(b), INVOICE)
    with pytest.raises(NotFoundError):
        a.client.inboxes.messages.search(address(b), q="invoice")
    with pytest.raises(NotFoundError):
        a.client.inboxes.threads.search(address(b), q="invoice")
    assert ids(search(a, "invoice")) == []
    # At the top level, an inbox key's scope is its inbox.
    assert a.client.threads.search(q="invoice").threads == []


def test_threads_at_the_inbox_pod_and_organization_levels(
    server: Server, pair: tuple[Api, Api], org: Api, pod: str, apis: Callable[[str], Api]
) -> None:
    a, b = pair
    first = a.client.inboxes.messages.send(
        address(a), to=address(b), subject="Kickoff", text="Shall we start?"
    )
    reply = b.client.inboxes.messages.reply(
        address(b), first.message_id, text="Yes, the agenda is below."
    )
    # Each term matched by some message of the thread: the subject of one, the body of another.
    in_a = a.valid(
        SearchThreadsResponse, a.client.inboxes.threads.search(address(a), q="kickoff agenda")
    )
    (thread,) = in_a.threads
    assert thread.thread_id == first.thread_id
    assert thread.message_count == 2
    assert thread.highlights is not None
    assert thread.highlights.subject == ["**Kickoff**", "Re: **Kickoff**"]
    assert thread.highlights.text == ["Yes, the **agenda** is below."]
    pod_key = apis(server.pod_key(pod))
    in_pod = pod_key.valid(
        SearchThreadsResponse, pod_key.client.pods.threads.search(pod, q="agenda")
    )
    assert {t.thread_id for t in in_pod.threads} == {first.thread_id, reply.thread_id}
    everywhere = org.valid(SearchThreadsResponse, org.client.threads.search(q="agenda", limit=100))
    assert {first.thread_id, reply.thread_id} <= {t.thread_id for t in everywhere.threads}
    # Another pod sees none of it.
    other = f"pod-other-{username()}"
    org.client.pods.create(name=other)
    outsider = apis(server.pod_key(other))
    assert outsider.client.threads.search(q="agenda").threads == []
    with pytest.raises(NotFoundError):
        outsider.client.pods.threads.search(pod, q="agenda")
    with pytest.raises(ValidationError):
        pod_key.client.pods.threads.search(pod, q=" ")


def test_list_filters_from_to_and_subject(server: Server, pair: tuple[Api, Api]) -> None:
    _, b = pair
    invoice, lunch, billing, other = deliver(server, address(b), INVOICE, LUNCH, BILLING, OTHER)
    messages = b.client.inboxes.messages

    def listed(**filters: object) -> list[str]:
        page = messages.list(address(b), **filters)  # type: ignore[arg-type]
        return [m.message_id for m in b.valid(ListMessagesResponse, page).messages]

    assert listed(from_=["CAROL"]) == [invoice]
    assert listed(from_=["invoice"]) == [billing]  # the sender only, not the subject
    assert listed(to=["partner.test"]) == [other]
    assert listed(to=[address(b)]) == [other, billing, lunch, invoice]
    assert listed(subject=["UN"]) == [other, lunch]  # "Unrelated", "Lunch"
    assert listed(subject=["in", "42"]) == [invoice]  # every value must match
    assert listed(subject=["lunch"], from_=["carol"]) == []
    # Other clients repeat the parameter: the same filter.
    repeated = b.raw(
        "GET", f"/v0/inboxes/{address(b)}/messages", params=[("subject", "in"), ("subject", "42")]
    )
    assert [m["message_id"] for m in repeated.json()["messages"]] == [invoice]
    # Paging through a filtered list: each once, and the token is bound to the filter.
    first = messages.list(address(b), to=[address(b)], limit=3)
    rest = messages.list(address(b), to=[address(b)], limit=3, page_token=first.next_page_token)
    assert [m.message_id for m in [*first.messages, *rest.messages]] == [
        other,
        billing,
        lunch,
        invoice,
    ]
    with pytest.raises(ApiError) as refused:
        messages.list(address(b), to=["partner"], page_token=first.next_page_token)
    assert refused.value.status_code == 400
    # Threads: a thread whose messages hold each value.
    threads = b.client.inboxes.threads

    def subjects(**filters: object) -> list[str | None]:
        page = threads.list(address(b), **filters)  # type: ignore[arg-type]
        return [t.subject for t in b.valid(ListThreadsResponse, page).threads]

    assert subjects(senders=["dave"]) == ["Lunch"]
    assert subjects(recipients=["frank"]) == ["Unrelated"]
    assert subjects(subject=["INVOICE"]) == ["Invoice 42"]
    assert subjects(senders=["carol", "dave"]) == []


def test_mail_delivered_over_smtp_is_found_at_once(server: Server, pair: tuple[Api, Api]) -> None:
    a, b = pair
    with server.smtp_client() as smtp:
        smtp.login(address(a), a.key)
        smtp.sendmail(
            address(a),
            [address(b)],
            (
                f"From: {address(a)}\r\nTo: {address(b)}\r\nSubject: Over SMTP\r\n\r\n"
                "A xylophone arrives on Monday.\r\n"
            ).encode(),
        )
    (found,) = search(b, "xylophone").messages
    assert found.subject == "Over SMTP"
    assert found.highlights is not None
    assert found.highlights.text == ["A **xylophone** arrives on Monday."]
    # The sender's Sent copy is found in its own inbox too.
    assert [m.subject for m in search(a, "xylophone").messages] == ["Over SMTP"]
