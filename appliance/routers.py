"""Sends the business data's models to the data database and everything else to the control one.

While the node is in maintenance mode, a write to the data database through the application is
refused: the source of a migration must stay still while it is copied.
"""

from __future__ import annotations

from typing import Any

DATA_APP_LABEL = "appliance_data"
DATA_DB_ALIAS = "data"
CONTROL_DB_ALIAS = "default"


class MaintenanceModeError(RuntimeError):
    """The application tried to change business data while the node is in maintenance mode."""


def _is_data_model(model: type[Any]) -> bool:
    return bool(model._meta.app_label == DATA_APP_LABEL)


def maintenance_is_on() -> bool:
    """Whether this node is in maintenance mode (read fresh from the control database)."""
    from appliance.models import Node

    return Node.objects.using(CONTROL_DB_ALIAS).filter(id=1, maintenance=True).exists()


class DataDatabaseRouter:
    """Database router: business data to `data`, the node's and wizard's state to `default`."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str:
        return DATA_DB_ALIAS if _is_data_model(model) else CONTROL_DB_ALIAS

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        if not _is_data_model(model):
            return CONTROL_DB_ALIAS
        if maintenance_is_on():
            raise MaintenanceModeError(
                "This system is in maintenance mode: its data cannot be changed until "
                "maintenance mode is switched off."
            )
        return DATA_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return _is_data_model(type(obj1)) == _is_data_model(type(obj2))

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        if app_label == DATA_APP_LABEL:
            return db == DATA_DB_ALIAS
        return db == CONTROL_DB_ALIAS
