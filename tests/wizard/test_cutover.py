"""The wizard's side of the online pre-copy: when to cut over and the traffic limit (Options),
Cut over now (Execution), and the downtime and what moved (Result)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from migrations_engine.models import CutoverMode, MigrationRun, OperationStatus, RunStatus
from tests.wizard.test_steps import draft, input_tag, is_checked, no_network, page_text, started

pytestmark = pytest.mark.django_db
__all__ = ["no_network"]  # every test here runs with the network guard

ONLINE_INFO = {
    "host_name": "oldgw",
    "domain_name": "example.test",
    "server_role": "standalone",
    "data_binlog": {"log_bin": True, "format": "ROW", "server_version": "10.11.6-MariaDB"},
}


def test_a_cutover_at_a_time_is_kept_with_the_limit_and_planned(staff_client: Client) -> None:
    run = draft(fingerprint_confirmed=True, source_info=ONLINE_INFO)
    response = staff_client.post(
        "/wizard/options/",
        {
            "scope": "all",
            "cutover_mode": "at",
            "cutover_at": "2030-01-02T03:04",
            "bandwidth_limit": "20",
        },
    )
    assert response.status_code == 302, page_text(response)
    run.refresh_from_db()
    assert run.cutover_mode == CutoverMode.AT
    assert timezone.localtime(run.cutover_at).strftime("%Y-%m-%d %H:%M") == "2030-01-02 03:04"
    assert run.bandwidth_limit == 20_000_000
    names = [op.name for op in run.operations.order_by("position")]
    assert names[2:5] == ["precopy_data", "await_cutover", "source_maintenance"]
    page = page_text(staff_client.get("/wizard/options/"))
    assert is_checked(input_tag(page, "cutover_mode", "at"))
    assert 'value="2030-01-02T03:04"' in page
    assert 'value="20.0"' in page


def test_a_cutover_at_a_time_needs_the_time(staff_client: Client) -> None:
    run = draft(fingerprint_confirmed=True, source_info=ONLINE_INFO)
    response = staff_client.post("/wizard/options/", {"scope": "all", "cutover_mode": "at"})
    assert response.status_code == 200
    assert "Give the time of the cutover." in page_text(response)
    run.refresh_from_db()
    assert not run.options_chosen


def test_options_say_why_the_data_is_copied_inside_the_window(staff_client: Client) -> None:
    draft(fingerprint_confirmed=True)  # a source that says nothing of its binary log
    page = page_text(staff_client.get("/wizard/options/"))
    assert "The data is copied inside the maintenance window because the source does not say" in (
        page
    )


def in_sync_waiting_for_cut_over_now() -> MigrationRun:
    """A run pre-copied and in sync with the source, waiting for Cut over now."""
    return started(
        RunStatus.RUNNING,
        [
            {"name": "precopy_data", "status": OperationStatus.SUCCEEDED, "fraction": 1.0},
            {
                "name": "await_cutover",
                "status": OperationStatus.RUNNING,
                "fraction": 0.9,
                "figures": {"in_sync": True, "transactions_behind": 0, "seconds_behind": 0},
            },
            {"name": "source_maintenance", "status": OperationStatus.PENDING},
        ],
        cutover_mode=CutoverMode.MANUAL,
    )


def test_cut_over_now_is_offered_while_in_sync_and_starts_the_window(staff_client: Client) -> None:
    run = in_sync_waiting_for_cut_over_now()
    partial = page_text(staff_client.get(f"/wizard/runs/{run.id}/progress/"))
    assert "Cut over now" in partial
    assert "in sync with the source" in partial

    response = staff_client.post(f"/wizard/runs/{run.id}/cutover/", HTTP_HX_REQUEST="true")

    run.refresh_from_db()
    assert run.cutover_requested_at is not None
    assert "Cut over now" not in page_text(response)


def test_two_administrators_watching_the_same_run_can_each_cut_over(db: None) -> None:
    run = in_sync_waiting_for_cut_over_now()
    browsers = []
    for name in ("first", "second"):
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(User.objects.create_user(name, password="x", is_staff=True))
        assert browser.get("/wizard/execution/").status_code == 200
        browsers.append(browser)
    partials = [page_text(b.get(f"/wizard/runs/{run.id}/progress/")) for b in browsers]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', partials[1])
    assert token is not None

    response = browsers[1].post(
        f"/wizard/runs/{run.id}/cutover/",
        {"csrfmiddlewaretoken": token[1]},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200, page_text(response)
    run.refresh_from_db()
    assert run.cutover_requested_at is not None


def test_cut_over_now_is_refused_past_the_cutover(staff_client: Client) -> None:
    run = started(
        RunStatus.RUNNING,
        [{"name": "await_cutover", "status": OperationStatus.SUCCEEDED, "fraction": 1.0}],
    )
    response = staff_client.post(f"/wizard/runs/{run.id}/cutover/", HTTP_HX_REQUEST="true")
    assert "no cutover to wait for" in page_text(response)
    run.refresh_from_db()
    assert run.cutover_requested_at is None


def test_the_result_gives_the_downtime_and_what_moved(staff_client: Client) -> None:
    began = timezone.now() - timedelta(minutes=5)
    run = started(
        RunStatus.SUCCEEDED,
        [{"name": "copy_data", "status": OperationStatus.SUCCEEDED, "fraction": 1.0}],
        copy_traffic_logs=True,
        downtime_started_at=began,
        downtime_ended_at=began + timedelta(seconds=7.4),
        report={
            "summary": {
                "tables": 4,
                "rows": 1234,
                "files": 3,
                "bytes": 2048,
                "downtime_seconds": 7.4,
            },
            "operations": [{"label": "Copies data", "seconds": 2.5}],
        },
    )
    page = page_text(staff_client.get("/wizard/result/"))
    assert "7.4 s" in page
    assert "4 tables, 1234 rows" in page
    assert "3 files" in page
    assert run.downtime_seconds == pytest.approx(7.4)
    partial = page_text(staff_client.get(f"/wizard/runs/{run.id}/progress/"))
    assert "Service downtime: <strong>7.4 s</strong>" in partial
