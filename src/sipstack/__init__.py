"""sipstack: a SIP stack (RFC 3261 and companions) and a SIP server in Python."""

__version__ = "0.1.0"
