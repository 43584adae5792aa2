"""SIP authentication (sans-I/O, floor 3): HTTP Digest per RFC 3261 §22, RFC 7616, RFC 8760.

Public contract::

    nonces = NonceManager(secret)                      # stateless, HMAC-signed, expiring nonces
    auth = DigestAuthenticator("example.com", nonces)  # proxy=True: 407 / Proxy-Authorization
    creds = auth.credentials_for(request)              # Auth | None; look the user up by
    result = auth.verify(request, user, source)        #   creds.params["username"]
    if not result.ok: answer result.status (+ result.challenge.headers when there is one)

    client = DigestClient("alice", "secret")           # the UAC side (RFC 7616 §3.4)
    if client.handle_challenge(response_401_or_407):   # then, for the retry and later requests:
        client.authorize(request)                      #   Authorization / Proxy-Authorization
"""

from .client import PREFERENCE, DigestClient, ProtectionSpace, digest_response
from .digest import (
    ALGORITHMS,
    AuthResult,
    Challenge,
    DigestAuthenticator,
    NonceManager,
    authentication_info,
    compute_ha1,
    compute_response,
    ha1_all,
)

__all__ = [
    "ALGORITHMS",
    "PREFERENCE",
    "AuthResult",
    "Challenge",
    "DigestAuthenticator",
    "DigestClient",
    "NonceManager",
    "ProtectionSpace",
    "authentication_info",
    "compute_ha1",
    "compute_response",
    "digest_response",
    "ha1_all",
]
