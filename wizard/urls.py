"""URLs of the wizard's steps, the progress partial and the run's actions."""

from django.urls import path

from wizard import views

app_name = "wizard"

urlpatterns = [
    path("", views.start, name="start"),
    path("welcome/", views.welcome, name="welcome"),
    path("source/", views.source, name="source"),
    path("source/confirm/", views.source_confirm, name="source_confirm"),
    path("source/start-again/", views.source_start_again, name="source_start_again"),
    path("source-info/", views.source_info, name="source_info"),
    path("options/", views.options, name="options"),
    path("rehearsal/", views.rehearsal, name="rehearsal"),
    path("confirmation/", views.confirmation, name="confirmation"),
    path("execution/", views.execution, name="execution"),
    path("result/", views.result, name="result"),
    path("close/", views.close, name="close"),
    path("runs/<int:run_id>/progress/", views.progress, name="progress"),
    path("runs/<int:run_id>/rehearsal/", views.rehearsal_progress, name="rehearsal_progress"),
    path("runs/<int:run_id>/resume/", views.resume, name="resume"),
    path("runs/<int:run_id>/abandon/", views.abandon, name="abandon"),
    path("runs/<int:run_id>/cutover/", views.cutover, name="cutover"),
    path("runs/<int:run_id>/start-over/", views.start_over, name="start_over"),
    path("runs/<int:run_id>/report.html", views.report, name="report"),
]
