"""Dialogs (RFC 3261 §12), sans-I/O (floor 3): creation from the request or the response
that establishes them, route sets, remote targets, sequence numbers and in-dialog requests;
the dialogs one INVITE creates when it forks; the end-to-end retransmissions and the RSeq /
RAck bookkeeping of reliable provisional responses (RFC 3262).

Public contract::

    dialog = Dialog.from_response(invite, response_2xx)      # UAC (§12.1.2)
    dialog = Dialog.from_request(invite, to_tag)             # UAS (§12.1.1), then .confirm()
    bye = dialog.create_request("BYE")                       # To/From/Call-ID/CSeq/Route/R-URI
    ack = dialog.create_ack(invite.cseq.seq)
    status = dialog.receive_request(request)                 # None, or 500 when out of order
    dialogs = DialogSet(invite); dialogs.receive_response(r) # forked early/confirmed dialogs
"""

from .dialog import (
    TARGET_REFRESH_METHODS,
    Dialog,
    DialogId,
    DialogState,
    initial_sequence,
    uac_dialog_id,
    uas_dialog_id,
)
from .dialogset import DialogSet
from .reliable import RAck, ReliableProvisionals, Retransmission, is_reliable, parse_rack, parse_rseq

__all__ = [
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogId",
    "DialogSet",
    "DialogState",
    "RAck",
    "ReliableProvisionals",
    "Retransmission",
    "initial_sequence",
    "is_reliable",
    "parse_rack",
    "parse_rseq",
    "uac_dialog_id",
    "uas_dialog_id",
]
