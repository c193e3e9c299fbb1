"""URLs of the node's own pages."""

from django.urls import path

from appliance import views

urlpatterns = [
    path("", views.home, name="home"),
    path("console/", views.console, name="console"),
    path("console/maintenance", views.maintenance_toggle, name="maintenance-toggle"),
    path(
        "console/backups/<str:backup_id>/restore",
        views.backup_restore_view,
        name="backup-restore",
    ),
]
