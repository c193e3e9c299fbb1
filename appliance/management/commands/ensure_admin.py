"""`manage.py ensure_admin`: create or update the Admin User, password from the environment.

The password must pass Django's password validators (AUTH_PASSWORD_VALIDATORS): it opens the
staff pages and the peer API, through which another system can take this one's data.
"""

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class Command(BaseCommand):
    help = "Create or update a staff superuser whose password is read from an environment variable."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--username", default=None, help="default: APPLIANCE_ADMIN_USER")
        parser.add_argument(
            "--password-env", default="ADMIN_PASSWORD", help="variable holding the password"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"] or settings.APPLIANCE_ADMIN_USER
        variable = options["password_env"]
        password = os.environ.get(variable, "")
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first() or user_model(username=username)
        created = user.pk is None
        password_check(user, password, variable)
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"{'created' if created else 'updated'} staff user {username}")


def password_check(user: User, password: str, variable: str) -> None:
    """Refuse a password the validators reject, with their reasons (never the password)."""
    try:
        validate_password(password, user)
    except ValidationError as problem:
        reasons = " ".join(problem.messages)
        raise CommandError(f"The password in {variable} is too weak: {reasons}") from None
