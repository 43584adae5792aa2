"""What the user-agent API raises. Timeouts are :class:`sipstack.errors.SipTimeoutError`
(no final response in time, or no ACK / PRACK in time) and unreachable peers
:class:`sipstack.errors.TransportError`, as everywhere in sipstack."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SipError, SipTimeoutError
from ..message import Request, Response

if TYPE_CHECKING:
    from .outgoing import OutgoingCall


class RequestFailed(SipError):
    """A request got a final response other than 2xx; ``response`` is that response."""

    def __init__(self, request: Request | str, response: Response) -> None:
        self.response = response
        self.method = request if isinstance(request, str) else request.method
        target = "" if isinstance(request, str) else f" {request.uri_text}"
        super().__init__(f"{self.method}{target}: {response.status_code} {response.reason}")

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def reason(self) -> str:
        return self.response.reason


class AuthenticationFailed(RequestFailed):
    """A 401 or 407 that the credentials could not answer: none configured, no supported
    challenge, or the credentials were refused."""


class CallCancelled(SipError):
    """The call ended before it was answered: cancelled by the caller (``response`` is the
    487 the INVITE got, when there is one) or, at the callee, by the caller's CANCEL."""

    def __init__(self, message: str = "call cancelled", response: Response | None = None) -> None:
        super().__init__(message)
        self.response = response


class CallTimeout(SipTimeoutError):
    """:meth:`UserAgent.invite` got no answer within its ``timeout`` (and cancelled the
    INVITE) or Timer B: ``response`` is the final response that came after all (the 487 to
    the CANCEL, or None), ``call`` the ended :class:`~sipstack.ua.OutgoingCall`. A
    :class:`sipstack.errors.SipTimeoutError`."""

    def __init__(
        self, message: str, response: Response | None = None, call: OutgoingCall | None = None
    ) -> None:
        super().__init__(message)
        self.response = response
        self.call = call


class CallStateError(SipError):
    """The call is not in a state that allows this (e.g. a BYE before the answer, a second
    re-INVITE while one is in progress, anything after the call ended)."""


__all__ = ["AuthenticationFailed", "CallCancelled", "CallStateError", "CallTimeout", "RequestFailed"]
