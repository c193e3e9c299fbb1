"""What can go wrong with a source's peer API, and how its answers are read field by field.

Kept apart from the client so that the typed reading of answers (`source_info`) and the client
can both use it.
"""

from __future__ import annotations

from typing import Any

CERTIFICATE_CHANGED_FIX = (
    "Stop here: someone may be impersonating the source. Compare the fingerprint shown on the "
    "source's console with the one you confirmed; only when you know why the certificate "
    "changed (it was renewed), start again and confirm the new fingerprint."
)


class PeerError(Exception):
    """The source refused or failed a request; the message is meant for the administrator."""

    fix = "Check that the source is reachable, then Resume."

    def __init__(self, message: str, status: int = 0, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PeerUnreachable(PeerError):
    """The source did not answer on its HTTPS port (or not in time)."""


class CertificateMismatch(PeerError):
    """The source presented a certificate other than the pinned one."""

    fix = CERTIFICATE_CHANGED_FIX


class BadAnswer(PeerError):
    """The source answered something other than what the peer API answers: too large, not
    JSON, or without a field of the right type."""

    fix = "Check that the address names an appliance with this software, then try again."


def answer_object(answer: Any, what: str) -> dict[str, Any]:
    """The answer as a JSON object, or BadAnswer."""
    if not isinstance(answer, dict):
        raise BadAnswer(f"The source's answer to {what} is not a JSON object.")
    return answer


def answer_field(
    answer: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str
) -> Any:
    """One field of an answer, of the expected type (bool is not an int here), or BadAnswer."""
    value = answer.get(name)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(item.__name__ for item in kinds)
        raise BadAnswer(f"The source's answer to {what} lacks '{name}' or it is not a {names}.")
    return value
