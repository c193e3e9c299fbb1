"""Project configuration: settings, URLs, the Celery app and the WSGI entry point."""

import sys

import pymysql
import pymysql.constants
import pymysql.converters
import pymysql.err

pymysql.install_as_MySQLdb()
# Django imports MySQLdb.constants and MySQLdb.converters; alias the submodules too, or Python
# loads second copies of them whose exception classes differ from the ones PyMySQL raises.
for _name in ("constants", "constants.CLIENT", "constants.FIELD_TYPE", "converters", "err"):
    sys.modules[f"MySQLdb.{_name}"] = sys.modules[f"pymysql.{_name}"]

from .celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
