"""One system, three doors: an inbox created over the HTTP API is an inbox like any other; a
key made for it with the `mailgate` command opens it over IMAP, and mail sent to it over SMTP
is there."""

from __future__ import annotations

import json

from agentmail.inboxes import Inbox

from tests.conftest import make_message
from tests.e2e.process import clean_env, run
from tests.harness import DOMAIN, Server
from tests.http.sdk import Api, username


def test_imap_login_with_a_cli_key_to_an_inbox_made_over_the_api(
    server: Server, org: Api, pod: str
) -> None:
    inbox = org.valid(Inbox, org.client.pods.inboxes.create(pod, username=username()))
    assert inbox.email.endswith(f"@{DOMAIN}")
    env = clean_env(MAILGATE_DATABASE_URL=server.settings.database_url)
    made = run(
        "key", "create", "--inbox", inbox.email, "--json", cwd=server.settings.data_path, env=env
    )
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["api_key"]

    sender = server.account()
    with server.smtp_client(sender) as smtp:
        smtp.sendmail(sender.address, [inbox.email], make_message(sender.address, inbox.email))
    imap = server.imap_client()
    try:
        assert imap.login(inbox.email, key)[0] == "OK"
        status, data = imap.select("INBOX")
        assert (status, data) == ("OK", [b"1"])
    finally:
        imap.logout()
