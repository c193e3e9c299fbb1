"""Django app configuration for the data database's models."""

from django.apps import AppConfig


class ApplianceDataConfig(AppConfig):
    """The appliance's business data, routed to the `data` database."""

    name = "appliance.data"
    label = "appliance_data"
    verbose_name = "Appliance data"
