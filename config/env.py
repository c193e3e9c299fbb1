"""Small readers for settings taken from environment variables, and the MariaDB helpers that
every layer shares (addresses, quoted names).

Each reader returns a typed value or raises ImproperlyConfigured with the variable's name and
what was wrong, so that a bad value stops the process at start-up instead of misbehaving later.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})
DEMO_KEY_PREFIX = "demo-only-"
DEMO_SECRET_KEY = DEMO_KEY_PREFIX + "x" * 50
"""The secret key of a demo started without one: public, so never accepted outside the demo."""


def env_str(name: str, default: str) -> str:
    """The variable's text, or the default when it is not set."""
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    """A yes/no variable; anything but the usual words is an error."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a yes/no value (use 1/0, true/false)")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    """A whole number, optionally with a lower bound."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_float(name: str, default: float) -> float:
    """A number that may have a fraction."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None


def env_secret_key(name: str, *, demo: bool) -> str:
    """Django's secret key: the demo may fall back on its public key, nothing else may use it.

    The messages never show the key itself.
    """
    key = env_str(name, "")
    if demo:
        return key or DEMO_SECRET_KEY
    if not key:
        raise ImproperlyConfigured(
            f"{name} must be set outside the demo (the demo and the tests set APPLIANCE_DEMO=1)"
        )
    if key.startswith(DEMO_KEY_PREFIX):
        raise ImproperlyConfigured(
            f"{name} is the demo's secret key, which is public: outside the demo set it to "
            "a long random value of this system's own"
        )
    return key


def env_list(name: str, default: str) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_emails(name: str) -> list[str]:
    """A comma-separated list of email addresses (empty when unset); a malformed one is an
    error naming it."""
    addresses = env_list(name, "")
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise ImproperlyConfigured(f"{name}: {address!r} is not an email address") from None
    return addresses


def base_url(address: str, port: int) -> str:
    """The https:// address of a web server at `address` (a name, IPv4 or IPv6) and `port`."""
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}" if port == 443 else f"https://{host}:{port}"


class Login(TypedDict):
    """Where and as whom to connect to a MariaDB server."""

    host: str
    port: int
    user: str
    password: str


@dataclass(frozen=True)
class MySQLURL:
    """The parts of a `mysql://user:password@host:port/database` address."""

    user: str
    password: str
    host: str
    port: int
    database: str

    def django_database(self) -> dict[str, object]:
        """This address as an entry of Django's DATABASES setting.

        Connections are kept between requests (checked before reuse): opening one costs more
        than a small page. TLS is not offered to a server on this machine; PyMySQL would
        otherwise build a TLS context (about 25 ms) for every connection.
        """
        options: dict[str, object] = {"charset": "utf8mb4"}
        if self.is_local:
            options["ssl_disabled"] = True
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": self.database,
            "USER": self.user,
            "PASSWORD": self.password,
            "HOST": self.host,
            "PORT": str(self.port),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }

    @property
    def is_local(self) -> bool:
        """Whether the server is on this machine (a loopback address or localhost)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def login(self) -> Login:
        """Where and as whom to connect, as PyMySQL's `connect` takes it."""
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password}

    def redacted(self) -> str:
        """The address with the password left out, safe for logs and messages."""
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"


def quote_name(name: str) -> str:
    """An identifier quoted for MariaDB: backticks around it, backticks inside doubled."""
    return "`" + name.replace("`", "``") + "`"


def parse_mysql_url(url: str, what: str = "database URL") -> MySQLURL:
    """Split a mysql:// address; raises ValueError saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb"):
        raise ValueError(f"{what} must start with mysql://, got {parts.scheme or 'nothing'}://")
    database = parts.path.lstrip("/")
    if not parts.hostname or not database or "/" in database:
        raise ValueError(f"{what} must look like mysql://user@host:port/database")
    try:
        port = parts.port or 3306
    except ValueError:
        raise ValueError(f"{what} has a port that is not a number") from None
    return MySQLURL(
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        host=parts.hostname,
        port=port,
        database=unquote(database),
    )


def env_mysql(name: str, default: str) -> MySQLURL:
    """A mysql:// address from the environment."""
    try:
        return parse_mysql_url(env_str(name, default), name)
    except ValueError as error:
        raise ImproperlyConfigured(str(error)) from None
