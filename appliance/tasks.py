"""Periodic tasks of a node: take back the migration credentials whose time is up.

Celery beat runs `revoke_expired_credentials` every minute (CELERY_BEAT_SCHEDULE), so an expired
database account or SSH key is gone within a minute, not only at the next peer-API login.
"""

from __future__ import annotations

import logging

from celery import shared_task

from appliance import credentials

logger = logging.getLogger(__name__)


@shared_task
def revoke_expired_credentials() -> int:
    """Drop the expired database accounts and remove the expired SSH keys; returns how many."""
    count = credentials.credentials_revoke_expired()
    if count:
        logger.info("Revoked %s expired migration credential(s)", count)
    return count
