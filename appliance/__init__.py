"""A node's own state (identity, licence, settings, maintenance) and the peer API it serves.

This package knows nothing of migrations: it imports neither `wizard` nor `migrations_engine`.
"""

SOFTWARE_VERSION = "3.2"
