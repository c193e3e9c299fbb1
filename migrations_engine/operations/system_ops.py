"""Operations on this system itself: its certificate and its services."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from appliance import services
from appliance.certificates import self_signed_certificate
from migrations_engine.context import Progress, RunContext
from migrations_engine.operations.base import Operation, OperationFailed, remote_failure
from migrations_engine.peer_client import PeerError, PinnedHTTPSConnection
from migrations_engine.remote.errors import RemoteError
from migrations_engine.remote.session import ssh_session
from migrations_engine.remote.tree import copy_file

COMMAND_TIMEOUT = 120


def run_local_command(command: str, context: RunContext, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run one of this system's configured commands; its output goes to the run's log."""
    try:
        completed = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise OperationFailed(
            f"The command {command!r} did not finish within {timeout:.0f} seconds.",
            "Check the command configured for this system, then Resume.",
        ) from None
    except OSError as error:
        raise OperationFailed(f"The command {command!r} could not start: {error}") from None
    output = (completed.stdout + completed.stderr).strip()[-2000:]
    context.log(f"$ {command} -> exit {completed.returncode}" + (f"\n{output}" if output else ""))
    if completed.returncode != 0:
        raise OperationFailed(
            f"The command {command!r} failed with exit status {completed.returncode}.",
            "Look at the run's log for its output, fix the cause, then Resume.",
        )
    return output


class UpdateCertificates(Operation):
    """8. Install the certificate of this system's (new) identity: with a swap the source's own
    certificate and key (over SFTP), otherwise a fresh one for this system's name."""

    name = "update_certificates"
    label = "Updates the certificates"
    reversible = True

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        cert, key = services.certificate_path(), services.private_key_path()
        backup = Path(settings.APPLIANCE_CERT_DIR) / f"before-run-{context.run.id}"
        if "backup" not in context.memory and cert.exists():
            backup.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(cert, backup / cert.name)
            shutil.copy2(key, backup / key.name)
            context.remember(backup=str(backup))
        node = services.node_get()
        if context.run.swap_configuration:
            self._copy_source_certificate(context, cert, key)
            fingerprint = services.tls_fingerprint()
            context.log(f"installed the source's certificate: {fingerprint}")
            return {"certificate_for": node.fqdn, "fingerprint": fingerprint, "from": "source"}
        fingerprint = self_signed_certificate(
            cert_path=cert, key_path=key, common_name=node.fqdn, addresses=[node.ip_address]
        )
        context.log(f"new certificate for {node.fqdn}: {fingerprint}")
        return {"certificate_for": node.fqdn, "fingerprint": fingerprint, "from": "new"}

    @staticmethod
    def _copy_source_certificate(context: RunContext, cert: Path, key: Path) -> None:
        files = context.run.source.certificate_files
        if not files.certificate or not files.key:
            raise OperationFailed(
                "The source did not say where its certificate is.", "Update the source."
            )
        try:
            with ssh_session(context.peer(), context.run.peer_ref) as session:
                for remote, local, private in (
                    (files.certificate, cert, False),
                    (files.key, key, True),
                ):
                    copied = copy_file(session.client, remote, local, private=private)
                    if not copied.complete:
                        raise OperationFailed(
                            f"The source's {local.name} could not be copied: "
                            f"{copied.not_copied[0].reason}"
                        )
        except RemoteError as error:
            raise remote_failure(error) from error

    def undo(self, context: RunContext) -> None:
        if "backup" in context.memory:
            backup = Path(context.memory["backup"])
            for path in (services.certificate_path(), services.private_key_path()):
                shutil.copy2(backup / path.name, path)
            context.log("the previous certificate is back")


class RestartServices(Operation):
    """9. Restart this system's services and check that they answer again."""

    name = "restart_services"
    label = "Restarts the services"
    stall_hint = "This system's web service does not answer after the restart."

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        if "requested_at" not in context.memory:  # a command that failed runs again on Resume
            run_local_command(settings.APPLIANCE_RESTART_COMMAND, context)
            context.remember(requested_at=timezone.now().isoformat())
        progress.update(0.5, message="waiting for the services to answer", force=True)
        seconds = wait_until_web_answers(context, progress)
        context.downtime_ends()
        return {"restarted": True, "answered_after_seconds": round(seconds, 1)}


def web_answers() -> bool:
    """Whether this system's HTTPS login page answers, with its current certificate."""
    connection = PinnedHTTPSConnection(
        settings.APPLIANCE_WEB_ADDRESS,
        settings.APPLIANCE_WEB_PORT,
        services.certificate_path().read_text(),
        timeout=3,
    )
    try:
        connection.request("GET", "/accounts/login/")
        return connection.getresponse().status == 200
    except (OSError, PeerError):
        return False
    finally:
        connection.close()


def wait_until_web_down(context: RunContext) -> bool:
    """After a reboot was asked for: wait until this system's web stops answering, so that the
    wait for it to come back does not see it still up (False if it stayed up
    MIGRATION_REBOOT_SETTLE s)."""
    settle = settings.MIGRATION_REBOOT_SETTLE
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if not web_answers():
            return True
        time.sleep(0.5)
    context.log(f"this system's web still answered {settle:.0f} s after the reboot command")
    return False


def wait_until_web_answers(context: RunContext, progress: Progress) -> float:
    """Wait until this system's HTTPS login page answers with its current certificate."""
    started = time.monotonic()
    deadline = started + settings.MIGRATION_SERVICE_TIMEOUT
    while time.monotonic() < deadline:
        if web_answers():
            return time.monotonic() - started
        progress.update(0.5, message="waiting for the services to answer")
        time.sleep(1)
    raise OperationFailed(
        "This system's services did not answer within "
        f"{settings.MIGRATION_SERVICE_TIMEOUT} seconds after the restart.",
        "Check the services' logs on this system, then Resume.",
    )
