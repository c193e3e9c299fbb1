"""The operations of Execution, in the order they run (PRODUCT.md section 5), after the backup
of the current system (section 6)."""

from migrations_engine.operations.backup_ops import BackupCurrentSystem
from migrations_engine.operations.base import Operation
from migrations_engine.operations.data_ops import (
    CopyAccounts,
    CopyData,
    CopyDataAndActivateReplica,
)
from migrations_engine.operations.licence_ops import MigrateLicence
from migrations_engine.operations.precopy_ops import AwaitCutover, PreCopyData, PreCopyLogs
from migrations_engine.operations.remote_ops import CopySyslog, RebootSystems
from migrations_engine.operations.settings_ops import CopySettings, ModifySourceConfiguration
from migrations_engine.operations.source_ops import (
    DeactivateReplica,
    FinalOperations,
    PlaceSourceUnderMaintenance,
)
from migrations_engine.operations.system_ops import RestartServices, UpdateCertificates

OPERATIONS: list[Operation] = [
    BackupCurrentSystem(),
    CopySettings(),
    PreCopyData(),
    PreCopyLogs(),
    AwaitCutover(),
    PlaceSourceUnderMaintenance(),
    DeactivateReplica(),
    CopyData(),
    CopyAccounts(),
    MigrateLicence(),
    ModifySourceConfiguration(),
    RebootSystems(),
    CopyDataAndActivateReplica(),
    UpdateCertificates(),
    RestartServices(),
    CopySyslog(),
    FinalOperations(),
]

OPERATION_BY_NAME = {operation.name: operation for operation in OPERATIONS}
