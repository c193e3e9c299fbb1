"""Django app configuration for the migration engine."""

from django.apps import AppConfig


class MigrationsEngineConfig(AppConfig):
    """Runs, operations and copiers of a migration."""

    name = "migrations_engine"
    verbose_name = "Migration engine"
