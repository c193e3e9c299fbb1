"""URLs of the peer API, version 1."""

from django.urls import path

from appliance import peer_api

app_name = "peer"

urlpatterns = [
    path("auth", peer_api.auth, name="auth"),
    path("info", peer_api.info, name="info"),
    path("settings", peer_api.settings_export, name="settings"),
    path("maintenance", peer_api.maintenance, name="maintenance"),
    path("ha/round-robin", peer_api.round_robin, name="round-robin"),
    path("ha/replication", peer_api.replication, name="replication"),
    path("licence/release", peer_api.licence_release, name="licence-release"),
    path("configuration", peer_api.configuration, name="configuration"),
    path("credentials/database", peer_api.database_account, name="database-account"),
    path("credentials/ssh-key", peer_api.ssh_key, name="ssh-key"),
    path("credentials/revoke", peer_api.revoke, name="revoke"),
]
