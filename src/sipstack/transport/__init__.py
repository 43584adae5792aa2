"""Transports: UDP, TCP and TLS sockets, and locating SIP servers (RFC 3263)."""
