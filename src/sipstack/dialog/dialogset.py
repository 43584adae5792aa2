"""The dialogs one INVITE creates at its UAC: forking gives one per To tag (RFC 3261
§12.1.2, §13.2.2.4; early dialogs from 101–199 responses, RFC 3261 §12.1)."""

from __future__ import annotations

from ..message import Request, Response
from .dialog import Dialog, DialogState


class DialogSet:
    """The early and confirmed dialogs of one INVITE, keyed by the remote (To) tag.

    Feed every response of the INVITE to :meth:`receive_response`. ``confirmed`` is the
    first dialog a 2xx confirmed; a later 2xx with another To tag creates another confirmed
    dialog (a forked answer), which the UA ACKs and may end with a BYE."""

    def __init__(self, invite: Request, *, local_contact: str | None = None) -> None:
        self.invite = invite
        """The INVITE as sent (its From tag is the local tag of every dialog here)."""
        self.local_contact = local_contact
        self.dialogs: dict[str, Dialog] = {}
        self.confirmed: Dialog | None = None
        self.final_status: int | None = None

    def receive_response(self, response: Response) -> tuple[Dialog | None, bool]:
        """The dialog ``response`` belongs to, and whether it was created by it.

        101–199 with a To tag: an early dialog (created, or its target refreshed); 2xx: its
        dialog confirmed (route set and target recomputed from it) or created confirmed;
        300–699: every early dialog terminated (§12.3). Responses without a To tag (a 100)
        belong to no dialog."""
        code = response.status_code
        tag = response.to.tag
        if code >= 300:
            self.final_status = self.final_status or code
            for dialog in self.dialogs.values():
                if dialog.early:
                    dialog.terminate()
            return None, False
        if tag is None or code == 100:
            return None, False
        dialog = self.dialogs.get(tag)
        created = dialog is None
        if code >= 200:
            self.final_status = self.final_status or code
            if dialog is None:
                dialog = Dialog.from_response(self.invite, response, local_contact=self.local_contact)
                self.dialogs[tag] = dialog
            elif dialog.early:
                dialog.confirm(response)
            if self.confirmed is None and dialog.confirmed:
                self.confirmed = dialog
        elif dialog is None:
            dialog = Dialog.from_response(self.invite, response, local_contact=self.local_contact)
            self.dialogs[tag] = dialog
        elif dialog.early:
            dialog.refresh_target(response)
        return dialog, created

    def early_dialogs(self) -> list[Dialog]:
        return [d for d in self.dialogs.values() if d.state is DialogState.EARLY]

    def terminate_early(self) -> list[Dialog]:
        """End the early dialogs that never got a 2xx (the INVITE transaction is over,
        §13.2.2.4); the ones ended."""
        ended = self.early_dialogs()
        for dialog in ended:
            dialog.terminate()
        return ended
