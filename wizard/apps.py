"""Django app configuration for the migration wizard."""

from django.apps import AppConfig


class WizardConfig(AppConfig):
    """The browser wizard that drives the migration engine."""

    name = "wizard"
    verbose_name = "Migration wizard"
