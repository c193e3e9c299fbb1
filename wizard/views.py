"""The wizard's pages: each step reads and writes the run's row through the engine's services."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth import logout
from django.contrib.auth.views import LogoutView
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from appliance.backup import BackupError
from appliance.decorators import staff_required
from migrations_engine import executor
from migrations_engine.advice import dns_advice_after, dns_advice_before
from migrations_engine.models import MigrationRun
from migrations_engine.plan import online_copy_refusal
from migrations_engine.preflight import AddressRefused
from migrations_engine.rehearsal import RehearsalFailed, rehearsal_last, rehearsal_start
from migrations_engine.report import report_html
from migrations_engine.services import (
    MB,
    PreparationError,
    draft_execute,
    draft_fingerprint_confirm,
    draft_options_set,
    draft_source_check,
    licence_refusal,
    run_close,
    run_cutover_now,
    wizard_run,
)
from wizard.forms import ConfirmationForm, FingerprintForm, OptionsForm, SourceForm
from wizard.progress import poll_pass_give, poll_pass_take_back, progress_context
from wizard.steps import STEP_BY_NAME, STEPS, furthest_step, step_allowed

POLL_STOP = 286
"""htmx stops polling on this status."""

View = Callable[..., HttpResponseBase]


def wizard_step(name: str) -> Callable[[View], View]:
    """A staff-only step page: it gets the wizard's run, or is sent to the step it may show."""

    def decorate(view: View) -> View:
        @staff_required
        @wraps(view)
        def wrapper(request: HttpRequest) -> HttpResponseBase:
            run = wizard_run()
            if not step_allowed(run, name):
                return redirect(f"wizard:{furthest_step(run)}")
            return view(request, run)

        return wrapper

    return decorate


def page(
    request: HttpRequest, name: str, run: MigrationRun | None, step: str = "", **context: Any
) -> HttpResponse:
    """A step's page (or a page within step `step`) with the step indicator."""
    furthest = STEP_BY_NAME[furthest_step(run)].number
    return render(
        request,
        f"wizard/{name}.html",
        {
            "steps": STEPS,
            "step": STEP_BY_NAME[step or name],
            "furthest": furthest,
            "run": run,
            **context,
        },
    )


def posted(request: HttpRequest) -> Any:
    """The form data of a POST (even an empty one), None for a GET."""
    return request.POST if request.method == "POST" else None


@staff_required
def start(request: HttpRequest) -> HttpResponse:
    """/wizard/: the step the wizard's run is on (Welcome when there is none)."""
    run = wizard_run()
    return redirect(f"wizard:{'welcome' if run is None else furthest_step(run)}")


@wizard_step("welcome")
def welcome(request: HttpRequest, run: MigrationRun | None) -> HttpResponse:
    """Step 1: what will happen and what is needed."""
    return page(request, "welcome", run)


@wizard_step("source")
def source(request: HttpRequest, run: MigrationRun | None) -> HttpResponse:
    """Step 2: the source's address and password, and the pre-flight checks.

    The checks that need no password run first; the certificate's fingerprint is confirmed
    here (`source_confirm`), and only then does the password go to the source.
    """
    initial = {"address": run.source_address} if run else {}
    form = SourceForm(posted(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            draft_source_check(
                run,
                address=form.cleaned_data["address"],
                password=form.cleaned_data["password"],
                user_id=request.user.pk,
            )
            return redirect("wizard:source")
        except AddressRefused as error:
            form.add_error("address", str(error))
        except PreparationError as error:
            form.add_error("password", str(error))
    return page(request, "source", run, form=form, fingerprint_form=FingerprintForm())


@require_POST
@wizard_step("source")
def source_confirm(request: HttpRequest, run: MigrationRun | None) -> HttpResponse:
    """The fingerprint matches the source's console: send the password and finish the checks."""
    fingerprint_form = FingerprintForm(request.POST)
    if run is not None and fingerprint_form.is_valid():
        try:
            draft_fingerprint_confirm(run)
            return redirect("wizard:source")
        except PreparationError as error:
            fingerprint_form.add_error(None, str(error))
    form = SourceForm(initial={"address": run.source_address if run else ""})
    return page(request, "source", run, form=form, fingerprint_form=fingerprint_form)


@require_POST
@wizard_step("source")
def source_start_again(request: HttpRequest, run: MigrationRun | None) -> HttpResponse:
    """Give up this source's draft (its certificate changed, say) and name the source anew."""
    if run is not None:
        run_close(run)
    return redirect("wizard:source")


@wizard_step("source_info")
def source_info(request: HttpRequest, run: MigrationRun) -> HttpResponse:
    """Step 3: who the source is (read after its confirmed certificate took the password)."""
    return page(request, "source_info", run, info=run.source, advice=dns_advice_before(run))


@wizard_step("options")
def options(request: HttpRequest, run: MigrationRun) -> HttpResponse:
    """Step 4: Swap Configuration, Migrate License, Copy User Traffic Logs, which data."""
    source = run.source
    tables = source.data_tables
    initial = {
        "swap_configuration": run.swap_configuration,
        "migrate_licence": run.migrate_licence,
        "copy_traffic_logs": run.copy_traffic_logs,
        "scope": "chosen" if run.tables is not None else "accounts" if run.accounts else "all",
        "tables": run.tables or [],
        "accounts": "\n".join(run.accounts or []),
        "cutover_mode": run.cutover_mode,
        "cutover_at": timezone.localtime(run.cutover_at) if run.cutover_at else None,
        "bandwidth_limit": run.bandwidth_limit / MB if run.bandwidth_limit else None,
    }
    form = OptionsForm(
        posted(request),
        initial=initial,
        tables=[(table.name, table.name) for table in tables],
        licence_refusal=licence_refusal(source),
    )
    if request.method == "POST" and form.is_valid():
        try:
            draft_options_set(
                run,
                swap_configuration=form.cleaned_data["swap_configuration"],
                migrate_licence=form.cleaned_data["migrate_licence"],
                copy_traffic_logs=form.cleaned_data["copy_traffic_logs"],
                tables=form.chosen_tables(),
                accounts=form.chosen_accounts(),
                timing=form.timing(),
            )
            if "rehearse" in request.POST:
                run.refresh_from_db()
                rehearsal_start(run)
                return redirect("wizard:rehearsal")
            return redirect("wizard:confirmation")
        except (PreparationError, RehearsalFailed) as error:
            form.add_error(None, str(error))
    return page(
        request,
        "options",
        run,
        form=form,
        info=source,
        tables=tables,
        online_refusal=online_copy_refusal(executor.run_facts(run)),
    )


@wizard_step("options")
def rehearsal(request: HttpRequest, run: MigrationRun) -> HttpResponse:
    """Within Options: the dry run's progress, then what it found and the estimate."""
    return page(request, "rehearsal", run, step="options", **_rehearsal_shown(run))


def _rehearsal_shown(run: MigrationRun) -> dict[str, Any]:
    """The run's last rehearsal, and whether the page keeps polling it (until it has ended)."""
    last = rehearsal_last(run)
    return {"rehearsal": last, "polling": last is not None and last.is_going}


@staff_required
def rehearsal_progress(request: HttpRequest, run_id: int) -> HttpResponse:
    """The rehearsal partial, polled once a second; status 286 once it has ended."""
    return polled_partial(
        request,
        run_id,
        "wizard/rehearsal_progress.html",
        _rehearsal_shown,
    )


RUN_FIELDS_NOT_POLLED = (
    "log", "report", "plan", "source_certificate", "source_info", "current_info", "checks",
)  # fmt: skip
"""Large fields of a run that no polled partial shows: not read twice a second."""


def polled_partial(
    request: HttpRequest,
    run_id: int,
    template: str,
    context: Callable[[MigrationRun], dict[str, Any]],
) -> HttpResponse:
    """A partial htmx polls: rendered for the run, with status 286 once polling should stop."""
    run = MigrationRun.objects.filter(id=run_id).defer(*RUN_FIELDS_NOT_POLLED).first()
    if run is None:
        return HttpResponse("This migration no longer exists.", status=POLL_STOP)
    values = context(run)
    response = render(request, template, {"run": run, **values})
    if not values["polling"]:
        response.status_code = POLL_STOP
    return response


@wizard_step("confirmation")
def confirmation(request: HttpRequest, run: MigrationRun) -> HttpResponse:
    """Step 5: the exact operations, the warning, and the typed confirmation before Execute."""
    form = ConfirmationForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            draft_execute(run, typed_name=form.cleaned_data["host_name"])
            return redirect("wizard:execution")
        except PreparationError as error:
            form.add_error("host_name", str(error))
    return page(request, "confirmation", run, form=form)


@wizard_step("execution")
def execution(request: HttpRequest, run: MigrationRun) -> HttpResponse:
    """Step 6: one progress bar per operation, kept up to date by the progress partial."""
    return poll_pass_give(page(request, "execution", run, **progress_context(run)))


@staff_required
def progress(request: HttpRequest, run_id: int) -> HttpResponse:
    """The progress partial, polled once a second; status 286 once the run has ended.

    Where partials are published, browsers poll the front server's copy and come here when
    their poll pass has run out (they get a new one) or the run has ended.
    """
    return poll_pass_give(polled_partial(request, run_id, "wizard/progress.html", progress_context))


@require_POST
@staff_required
def resume(request: HttpRequest, run_id: int) -> HttpResponse:
    """Resume a failed run where it stopped."""
    return _run_action(request, run_id, executor.run_resume)


@require_POST
@staff_required
def cutover(request: HttpRequest, run_id: int) -> HttpResponse:
    """Cut over now: the run that keeps its copy in sync begins its maintenance window."""
    return _run_action(request, run_id, run_cutover_now)


@require_POST
@staff_required
def abandon(request: HttpRequest, run_id: int) -> HttpResponse:
    """Give up a failed run: what can be undone is undone; a new run may begin."""
    return _run_action(request, run_id, _abandon_and_close)


@require_POST
@staff_required
def start_over(request: HttpRequest, run_id: int) -> HttpResponse:
    """Give a failed run up, restore this system's backup from before it, begin anew."""
    return _run_action(request, run_id, executor.run_start_over)


def _abandon_and_close(run: MigrationRun) -> None:
    """Abandon the run once (undo, revoke), then close it."""
    executor.run_abandon(run)  # refreshes `run`: closing it does not abandon it again
    run_close(run)


def _run_action(request: HttpRequest, run_id: int, action: Callable[[MigrationRun], Any]) -> Any:
    run = MigrationRun.objects.filter(id=run_id).first()
    error = ""
    if run is not None:
        try:
            action(run)
        except (executor.RunRefused, PreparationError, BackupError) as refused:
            error = str(refused)
    if run is not None:
        run.refresh_from_db()
    htmx = request.headers.get("HX-Request") == "true"
    if run is None or run.closed_at or not htmx:
        if htmx:
            response = HttpResponse(status=204)
            response["HX-Redirect"] = reverse("wizard:start")
            return response
        return redirect("wizard:start")
    return render(
        request, "wizard/progress.html", {"run": run, **progress_context(run), "error": error}
    )


@wizard_step("result")
def result(request: HttpRequest, run: MigrationRun) -> HttpResponse:
    """Step 7: success, the DNS advice to revert, the report, and Close."""
    return page(request, "result", run, advice=dns_advice_after(run))


@staff_required
def report(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run's report as an HTML file to download."""
    run = MigrationRun.objects.filter(id=run_id).exclude(report={}).first()
    if run is None:
        return HttpResponse("This migration has no report yet.", status=404)
    response = HttpResponse(report_html(run), content_type="text/html; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="migration-{run.id}-report.html"'
    return response


@require_POST
@staff_required
def close(request: HttpRequest) -> HttpResponse:
    """Close the wizard: the run is done with, and the browser goes to this system's login."""
    run = wizard_run()
    if run is not None:
        try:
            run_close(run)
        except PreparationError:
            return redirect("wizard:execution")
    logout(request)
    return poll_pass_take_back(redirect("login"))


class Logout(LogoutView):
    """Log out, and take back the poll pass: the browser no longer sees a run's progress."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return poll_pass_take_back(super().post(request, *args, **kwargs))
