"""Django app configuration for the node's own state."""

from django.apps import AppConfig


class ApplianceConfig(AppConfig):
    """The appliance app: identity, licence, settings, maintenance mode, peer API."""

    name = "appliance"
    verbose_name = "Appliance"
