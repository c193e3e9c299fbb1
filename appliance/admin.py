"""Django admin pages for the node's own state (identity, licence, settings, credentials)."""

from django.contrib import admin

from appliance.models import IssuedCredential, Licence, Node, Setting


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("host_name", "domain_name", "ip_address", "server_role", "maintenance")


@admin.register(Licence)
class LicenceAdmin(admin.ModelAdmin):
    list_display = ("guid", "holder", "state", "maintenance_until")


@admin.register(Setting)
class SettingAdmin(admin.ModelAdmin):
    list_display = ("group", "key", "value")
    list_filter = ("group",)


@admin.register(IssuedCredential)
class IssuedCredentialAdmin(admin.ModelAdmin):
    list_display = ("kind", "name", "run_ref", "expires_at", "revoked_at")
    readonly_fields = ("kind", "name", "run_ref", "client_address", "created_at", "expires_at")
