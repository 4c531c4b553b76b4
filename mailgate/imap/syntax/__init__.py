"""IMAP command syntax, pure: framed bytes in, typed values out (commands.parse_request)."""
