"""Project configuration: settings, URLs, the Celery app and the WSGI entry point."""

import pymysql

pymysql.install_as_MySQLdb()

from .celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
