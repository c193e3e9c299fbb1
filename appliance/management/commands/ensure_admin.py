"""`manage.py ensure_admin`: create or update the Admin User, password from the environment."""

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create or update a staff superuser whose password is read from an environment variable."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--username", default=None, help="default: APPLIANCE_ADMIN_USER")
        parser.add_argument(
            "--password-env", default="ADMIN_PASSWORD", help="variable holding the password"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"] or settings.APPLIANCE_ADMIN_USER
        password = os.environ.get(options["password_env"], "")
        if len(password) < 8:
            raise CommandError(
                f"Set {options['password_env']} to a password of 8 characters or more."
            )
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"{'created' if created else 'updated'} staff user {username}")
