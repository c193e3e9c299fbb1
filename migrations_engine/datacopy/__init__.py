"""Copies an appliance's data database from the source's MariaDB server to the current system's.

The public entry point is `copy_database`; `upgrade_data_schema` brings a copy made from an older
software version up to this version's data schema.
"""

from migrations_engine.datacopy.copier import (
    CopyResult,
    TableResult,
    copy_database,
    copy_forget,
)
from migrations_engine.datacopy.errors import (
    CopyError,
    SourceUnavailableError,
    TargetFullError,
    VerificationError,
)
from migrations_engine.datacopy.objects import RefusedObject
from migrations_engine.datacopy.progress import ProgressEvent

__all__ = [
    "CopyError",
    "CopyResult",
    "ProgressEvent",
    "RefusedObject",
    "SourceUnavailableError",
    "TableResult",
    "TargetFullError",
    "VerificationError",
    "copy_database",
    "copy_forget",
]
