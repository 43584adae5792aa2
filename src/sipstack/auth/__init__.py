"""SIP authentication (sans-I/O, floor 3): HTTP Digest per RFC 3261 §22, RFC 7616, RFC 8760.

Public contract::

    nonces = NonceManager(secret)                      # stateless, HMAC-signed, expiring nonces
    auth = DigestAuthenticator("example.com", nonces)  # proxy=True: 407 / Proxy-Authorization
    creds = auth.credentials_for(request)              # Auth | None; look the user up by
    result = auth.verify(request, user, source)        #   creds.params["username"]
    if not result.ok: answer result.status (+ result.challenge.headers when there is one)
"""

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
    "AuthResult",
    "Challenge",
    "DigestAuthenticator",
    "NonceManager",
    "authentication_info",
    "compute_ha1",
    "compute_response",
    "ha1_all",
]
