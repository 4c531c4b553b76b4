"""mailgate: a self-hosted IMAP/SMTP gateway where every inbox is an address."""

__version__ = "0.1.0"
