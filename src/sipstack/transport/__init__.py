"""Transports: UDP, TCP, TLS and WebSocket (RFC 7118) sockets, locating SIP servers
(RFC 3263), connection reuse (RFC 5923), and the SIP Outbound keep-alives (RFC 5626:
CRLF ping/pong, STUN)."""
