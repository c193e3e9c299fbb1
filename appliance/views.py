"""Pages of the node itself: the public portal page and the staff console."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from appliance import SOFTWARE_VERSION, services
from appliance.backup import BackupError, backup_get, backup_restore, backup_root, backups_list
from appliance.decorators import staff_required
from appliance.models import SITE_BOUND_GROUPS, IssuedCredential


def home(request: HttpRequest) -> HttpResponse:
    """The portal's front page, as subscribers see it."""
    return render(request, "appliance/home.html", {"node": services.node_get()})


@staff_required
def console(request: HttpRequest) -> HttpResponse:
    """Everything staff need to know about this node, on one page."""
    log_dir = Path(settings.APPLIANCE_TRAFFIC_LOG_DIR)
    log_files, log_bytes = services.directory_size_bytes(log_dir)
    context = {
        "node": services.node_get(),
        "licence": services.licence_get(),
        "settings_groups": [
            (group, {key: json.dumps(value) for key, value in pairs.items()})
            for group, pairs in sorted(services.settings_export().items())
        ],
        "site_bound_groups": SITE_BOUND_GROUPS,
        "ha": services.ha_settings(),
        "software_version": SOFTWARE_VERSION,
        "data_schema_version": services.data_schema_version(),
        "traffic_log_dir": log_dir,
        "traffic_log_files": log_files,
        "traffic_log_bytes": log_bytes,
        "cert_dir": settings.APPLIANCE_CERT_DIR,
        "tls_fingerprint": services.tls_fingerprint(),
        "restart_command": settings.APPLIANCE_RESTART_COMMAND,
        "reboot_command": settings.APPLIANCE_REBOOT_COMMAND,
        "credentials": IssuedCredential.objects.order_by("-created_at")[:20],
        "backups": backups_list()[:20],
        "backup_root": backup_root(),
    }
    return render(request, "appliance/console.html", context)


@staff_required
@require_POST
def maintenance_toggle(request: HttpRequest) -> HttpResponse:
    """Switch maintenance mode from the console."""
    enabled = request.POST.get("enabled") == "1"
    services.maintenance_set(enabled=enabled, reason="set from the console" if enabled else "")
    messages.success(request, f"Maintenance mode is now {'on' if enabled else 'off'}.")
    return redirect("console")


@staff_required
@require_POST
def backup_restore_view(request: HttpRequest, backup_id: str) -> HttpResponse:
    """Bring this system back to a backup's state from the console."""
    try:
        outcome = backup_restore(backup_get(backup_id))
    except BackupError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            f"Backup {outcome['backup']} restored: data ({outcome['tables']} tables verified), "
            "settings, licence and certificates are back. Restart the services to serve the "
            "restored certificate.",
        )
    return redirect("console")
