"""Errors of the data copy, each with a message an administrator can act on.

The messages name servers by their redacted address only; they never carry a password.
"""

from __future__ import annotations


class CopyError(Exception):
    """The data copy stopped; the message says why and what to do next."""


class SourceUnavailableError(CopyError):
    """The source's database server stopped answering and did not come back in time."""


class TargetFullError(CopyError):
    """The current system's database server ran out of space."""


class VerificationError(CopyError):
    """A chunk still differed between source and target after being copied again."""


class UnsafeDefinitionError(Exception):
    """A definition read from the source that is not created here; the message says why.

    Not a CopyError: the copy goes on without that table, view, trigger or routine, and lists
    it with the reason.
    """
