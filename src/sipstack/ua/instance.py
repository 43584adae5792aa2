"""The instance id of a SIP Outbound user agent (RFC 5626 §4.1): a URN that names this UA
instance and stays the same across restarts, sent as ``+sip.instance="<urn:…>"`` in the
Contact of its REGISTERs so that the registrar can tell its flows (and its reboots) apart.

:func:`new_instance_id` makes a ``urn:uuid:`` URN (RFC 4122 version 4); :func:`load_instance_id`
keeps one in a file; :func:`normalise_instance_id` checks and tidies one given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import uuid
from pathlib import Path

log = logging.getLogger("sipstack.ua")


def new_instance_id() -> str:
    """A fresh instance id: ``urn:uuid:`` and a random (version 4) UUID (RFC 4122)."""
    return f"urn:uuid:{uuid.uuid4()}"


def normalise_instance_id(text: str) -> str:
    """``text`` as an instance URN: ``<…>`` and surrounding blanks dropped, a bare UUID given
    its ``urn:uuid:`` prefix. Raises ValueError for anything that is not a URN (§4.1: the
    instance id MUST be a URN)."""
    value = text.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    if value.lower().startswith("urn:uuid:"):
        return f"urn:uuid:{uuid.UUID(value[9:])}"  # canonical lower-case form; ValueError if bad
    if value.lower().startswith("urn:") and len(value) > 4 and '"' not in value and ">" not in value:
        return value
    try:
        return f"urn:uuid:{uuid.UUID(value)}"
    except ValueError:
        raise ValueError(f"not an instance URN: {text!r}") from None


def load_instance_id(path: str | os.PathLike[str]) -> str:
    """The instance id kept in the file at ``path``: read when the file holds one, else a new
    one written there first (atomically; parent directories created). A UA that keeps this
    file keeps its instance id across restarts, as §4.1 asks."""
    file = Path(path)
    try:
        return normalise_instance_id(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except ValueError:
        log.warning("%s holds no instance URN: writing a new one", file)
    instance = new_instance_id()
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".instance-", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(instance + "\n")
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return instance


__all__ = ["load_instance_id", "new_instance_id", "normalise_instance_id"]
