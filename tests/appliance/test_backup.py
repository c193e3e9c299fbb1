"""Backups of a node's own state: taken whole, verified, refused without room, restored exactly
from the command line and from the console."""

from __future__ import annotations

import hashlib
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import Client

from appliance import services
from appliance.backup import (
    BackupError,
    backup_create,
    backup_restore,
    backups_list,
    data_checksums,
)
from appliance.certificates import self_signed_certificate
from appliance.models import Licence

pytestmark = pytest.mark.django_db(databases=["default", "data"], transaction=True)


def quiet(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def certificate_create(name: str, address: str) -> None:
    self_signed_certificate(
        cert_path=services.certificate_path(),
        key_path=services.private_key_path(),
        common_name=name,
        addresses=[address],
    )


def node_state() -> dict[str, Any]:
    licence = services.licence_get()
    return {
        "data": data_checksums(),
        "settings": services.settings_export(),
        "identity": services.identity_get(),
        "licence": [licence.guid, licence.state, licence.holder],
        "certificates": [
            hashlib.sha256(path.read_bytes()).hexdigest()
            for path in (services.certificate_path(), services.private_key_path())
        ],
    }


@pytest.fixture
def seeded() -> dict[str, Any]:
    quiet("seed_node", "--size", "small", "--host-name", "appliance-new")
    certificate_create("appliance-new.mycompany.test", "127.0.0.1")
    return node_state()


def change_everything() -> None:
    with connections["data"].cursor() as cursor:
        cursor.execute("DELETE FROM event_log ORDER BY id LIMIT 50")
        cursor.execute("CREATE TABLE leftover (id INT PRIMARY KEY)")
    services.settings_set_all({"language": {"default": "xx"}})
    services.identity_set(host_name="somebody-else", domain_name="x.test", ip_address="10.9.9.9")
    Licence.objects.update(state="none", guid="")
    certificate_create("other.test", "10.9.9.9")


def test_a_backup_holds_every_part_with_its_checksum(seeded: dict[str, Any]) -> None:
    backup = backup_create("by hand")
    parts = backup.manifest["parts"]
    assert set(parts) == {"data.sql.gz", "state.json.gz", "server.crt", "server.key"}
    for name, part in parts.items():
        digest = hashlib.sha256((backup.directory / name).read_bytes()).hexdigest()
        assert part["sha256"] == digest
    assert backup.manifest["table_checksums"] == seeded["data"]
    assert [found.id for found in backups_list()] == [backup.id]
    assert "by hand" in quiet("list_backups")


def test_restore_backup_brings_back_data_settings_licence_and_certificates(
    seeded: dict[str, Any],
) -> None:
    backup = backup_create("before a test")
    change_everything()
    assert node_state() != seeded
    output = quiet("restore_backup", backup.id)
    assert "tables verified" in output
    assert node_state() == seeded
    with connections["data"].cursor() as cursor:
        cursor.execute("SHOW TABLES LIKE 'leftover'")
        assert cursor.fetchall() == ()


def test_the_console_button_restores_the_latest_backup(
    seeded: dict[str, Any], staff_client: Client
) -> None:
    backup = backup_create("before a test")
    change_everything()
    page = staff_client.get("/console/")
    assert backup.id in page.content.decode()
    response = staff_client.post(f"/console/backups/{backup.id}/restore", follow=True)
    assert f"Backup {backup.id} restored" in response.content.decode()
    assert node_state() == seeded


def test_a_damaged_backup_is_refused_and_nothing_is_changed(seeded: dict[str, Any]) -> None:
    backup = backup_create("before a test")
    change_everything()
    changed = node_state()
    with (backup.directory / "state.json.gz").open("ab") as part:
        part.write(b"x")
    with pytest.raises(BackupError, match=r"state\.json\.gz is damaged"):
        backup_restore(backup)
    assert node_state() == changed
    with pytest.raises(CommandError, match="no backup 'nope'"):
        quiet("restore_backup", "nope")


def test_no_room_for_the_backup_is_a_clear_error_and_leaves_nothing(
    seeded: dict[str, Any], small_disk: Path, settings: Any
) -> None:
    settings.APPLIANCE_BACKUP_DIR = str(small_disk)
    with pytest.raises(BackupError, match="Not enough free space"):
        backup_create("no room")
    assert list(small_disk.iterdir()) == []


def test_the_licence_can_be_kept_when_it_moved_here_during_the_run(
    seeded: dict[str, Any],
) -> None:
    backup = backup_create("before a test")
    Licence.objects.update(state="active", guid="MOVED-HERE")
    backup_restore(backup, keep_licence=True)
    assert services.licence_get().guid == "MOVED-HERE"
    assert json.dumps(node_state()["settings"]) == json.dumps(seeded["settings"])
