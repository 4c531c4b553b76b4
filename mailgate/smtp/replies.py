"""Every SMTP reply mailgate sends, with its RFC 3463 enhanced status code."""

from __future__ import annotations

GREETING_IDENT = "ESMTP mailgate"

AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
AUTH_TEMPORARY = "454 4.7.0 Temporary authentication failure, try again later"
AUTH_LOCKED_OUT = "454 4.7.0 Too many failed logins from your address, try again later"
AUTH_BEFORE_TLS = "538 5.7.11 Encryption required for requested authentication mechanism"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_BAD_BASE64 = "501 5.5.2 Cannot decode base64"
AUTH_MALFORMED = "501 5.5.2 Malformed authentication data"

SENDER_OK = "250 2.1.0 Sender OK"
SENDER_NOT_AUTHORIZED = "550 5.7.1 Sender not authorized"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
BAD_RECIPIENT = "501 5.1.3 Bad recipient address syntax"
BAD_SENDER = "501 5.1.7 Bad sender address syntax"
# RFC 6531 §3.5 ("mailbox name not allowed") with RFC 6533's X.6.7: a UTF-8 address in a
# transaction whose MAIL FROM did not say SMTPUTF8.
UTF8_ADDRESS_WITHOUT_SMTPUTF8 = (
    "553 5.6.7 Non-ASCII address not permitted without the SMTPUTF8 parameter of MAIL FROM"
)
UNKNOWN_RECIPIENT = "550 5.1.1 No such recipient here"
SENDER_BLOCKED = "550 5.7.1 Sender blocked by the recipient"
MAIL_LOOP = "554 5.4.6 Too many hops: mail loop detected"
POLICY_REJECTED = "550 5.7.1 Message rejected"
POLICY_TEMPORARY = "451 4.7.0 Message deferred, try again later"
RELAY_DENIED = "550 5.7.1 Relaying denied"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
# RFC 3463 X.2.2 "mailbox full", as Dovecot's LMTP answers an inbox over its quota.
MAILBOX_FULL = "552 5.2.2 Mailbox full: the recipient is over its storage quota"
# At DATA, for an inbox that filled up since its RCPT: a retry gets 552 at RCPT for it and
# delivers to the others.
MAILBOX_FULL_NOW = "452 4.2.2 Mailbox full: a recipient is over its storage quota, try again"
MESSAGE_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
ACCEPTED = "250 2.0.0 Message accepted"

TEMPORARY_FAILURE = "451 4.3.0 Temporary server error, try again later"
SESSION_EXPIRED = "421 4.4.2 Session time limit exceeded, closing connection"
IDLE_TIMEOUT = "421 4.4.2 Timeout waiting for a command, closing connection"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
# [limits] connections_per_ip: said in place of the greeting.
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections from your address, try again later"
TLS_ALREADY_ACTIVE = "503 5.5.1 TLS already active"
LINE_TOO_LONG = "500 5.5.6 Line too long"
BAD_UTF8 = "500 5.5.2 Error: bad UTF-8 syntax"  # Postfix's words

# aiosmtpd's own replies, given the enhanced status codes clients and logs expect
# (RFC 2034). Keyed by the stock text's prefix.
STOCK_REWRITES: dict[str, str] = {
    "250 OK": "250 2.0.0 OK",
    "221 Bye": "221 2.0.0 Bye",
    "220 Ready to start TLS": "220 2.0.0 Ready to start TLS",
    "552 Error: Too much mail data": MESSAGE_TOO_BIG,
    "552 Error: message size exceeds": MESSAGE_TOO_BIG,
    "503 Error: need MAIL command": "503 5.5.1 Error: need MAIL command",
    "503 Error: need RCPT command": "503 5.5.1 Error: need RCPT command",
    "503 Error: nested MAIL command": "503 5.5.1 Error: nested MAIL command",
    "503 Error: send HELO first": "503 5.5.1 Error: send HELO first",
    "503 Error: send EHLO first": "503 5.5.1 Error: send EHLO first",
    "503 Already authenticated": "503 5.5.1 Already authenticated",
    "500 Error: command": "500 5.5.2 Error: command not recognized",
    "500 Error: bad syntax": "500 5.5.2 Error: bad syntax",
    "500 Command line too long": "500 5.5.6 Command line too long",
    "500 Line too long": LINE_TOO_LONG,
    "501 Syntax:": "501 5.5.4 Syntax error in parameters or arguments",
    "501 Not enough value": "501 5.5.4 Syntax: AUTH mechanism [initial-response]",
    "501 Too many values": "501 5.5.4 Syntax: AUTH mechanism [initial-response]",
    "501 Error: BODY can only be": "501 5.5.4 BODY must be 7BIT or 8BITMIME",
    "501 Error: SMTPUTF8 takes no arguments": "501 5.5.4 SMTPUTF8 takes no value",
    "501 5.5.2 Can't decode base64": AUTH_BAD_BASE64,
    "501 5.5.2 Can't split auth value": AUTH_MALFORMED,
    "502 EXPN not implemented": "502 5.5.1 EXPN not implemented",
    "502 Could not VRFY": "252 2.5.0 Cannot VRFY user, but will accept message",
    "252 Cannot VRFY": "252 2.5.0 Cannot VRFY user, but will accept message",
    "553 5.1.3 Error: malformed address": "553 5.1.3 Malformed address",
    "555 MAIL FROM parameters": "555 5.5.4 MAIL FROM parameters not recognized",
    "555 RCPT TO parameters": "555 5.5.4 RCPT TO parameters not recognized",
    "454 TLS not available": "454 4.7.0 TLS not available",
    "554 Command refused due to lack of security": "554 5.7.0 TLS negotiation failed",
}


# Stock replies whose text goes on after the prefix (HELP's list of commands and syntax): the
# enhanced code is put in and the rest kept.
STOCK_PREFIXES: dict[str, str] = {
    "250 Supported commands:": "250 2.0.0 Supported commands:",
    "250 Syntax:": "250 2.0.0 Syntax:",
    "501 Supported commands:": "501 5.5.4 Supported commands:",
}


def rewrite(reply: str) -> str:
    for stock, ours in STOCK_REWRITES.items():
        if reply.startswith(stock):
            return ours
    for stock, ours in STOCK_PREFIXES.items():
        if reply.startswith(stock):
            return ours + reply[len(stock) :]
    return reply


def sending_rate(reason: str) -> str:
    """The inbox sent its hourly limit: `reason` says how many and when to try again."""
    return f"450 4.7.1 {reason}"
