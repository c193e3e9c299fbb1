"""Settings of one appliance node, read from environment variables.

Every value has a safe default for the two-node demo on one machine; a bad value stops the
process at start-up. Two nodes on one machine differ only in their environment (addresses,
databases, directories, broker database).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from config.env import (
    base_url,
    env_bool,
    env_emails,
    env_float,
    env_int,
    env_list,
    env_mysql,
    env_secret_key,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
# The demo (`make demo`, the tests) says so; anywhere else a node must have its own secret key.
APPLIANCE_DEMO = env_bool("APPLIANCE_DEMO", False)
SECRET_KEY = env_secret_key("DJANGO_SECRET_KEY", demo=APPLIANCE_DEMO)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,127.0.0.2,localhost,[::1]")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "appliance",
    "appliance.data",
    "migrations_engine",
    "wizard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "appliance.middleware.MaintenanceMiddleware",
    "axes.middleware.AxesMiddleware",
]

# Behind a front web server (nginx, `manage.py front_config`) that terminates TLS on this node
# and passes requests on over a local socket: it says the request came over HTTPS and from which
# address (it overwrites what clients send). Only requests that came over that socket are believed.
APPLIANCE_FRONT_SERVER = env_bool("APPLIANCE_FRONT_SERVER", False)
if APPLIANCE_FRONT_SERVER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    MIDDLEWARE.insert(0, "appliance.middleware.FrontServerMiddleware")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "appliance.context_processors.node",
            ],
        },
    },
]

# The control database holds this node's own state and the wizard's runs; the data database
# holds the appliance's business data, the part a migration copies and overwrites.
CONTROL_DB = env_mysql("CONTROL_DB_URL", "mysql://root@127.0.0.1:3306/appliance_control")
DATA_DB = env_mysql("DATA_DB_URL", "mysql://root@127.0.0.1:3306/appliance_data")
TEST_DB_SUFFIX = env_str("TEST_DB_SUFFIX", "")  # lets two test runs share one server
DATABASES = {
    "default": CONTROL_DB.django_database()
    | {"TEST": {"NAME": f"test_{CONTROL_DB.database}{TEST_DB_SUFFIX}"}},
    "data": DATA_DB.django_database()
    | {"TEST": {"NAME": f"test_{DATA_DB.database}{TEST_DB_SUFFIX}"}},
}
DATABASE_ROUTERS = ["appliance.routers.DataDatabaseRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Django-axes guards the login page and the admin site: LOGIN_FAILURE_LIMIT failed logins from one
# address, or to one account, each within LOGIN_LOCKOUT seconds of the one before, lock logins
# there out. That failure and every attempt in the LOGIN_LOCKOUT seconds after it get the lockout
# page (an attempt meanwhile starts the wait again); a success starts the count again. The address
# is the one FrontServerMiddleware settles on. The peer API checks the Admin User password past
# axes, with its own lockout (appliance/peer_auth.py).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
LOGIN_LOCKOUT = env_int("LOGIN_LOCKOUT", 900, minimum=1)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_LOCKOUT)
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_CLIENT_IP_CALLABLE = "appliance.middleware.client_address"
AXES_LOCKOUT_CALLABLE = "appliance.auth.lockout_response"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "console"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True  # served straight from static/: no collectstatic step

# HTTPS everywhere: nodes serve their pages and the peer API over TLS with their own certificate.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=300)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = False
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# HSTS for subdomains and preload lists: appliances live under their customers' domains.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]

# Celery: the broker is Redis; each node on a machine uses its own Redis database.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = None

# Sessions are read from Redis (the node's own Redis database, shared by its web processes, so a
# logout ends the session everywhere) and kept in the control database too: a page polled by many
# browsers need not query the database for the session.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env_str("CACHE_URL", CELERY_BROKER_URL),
        "KEY_PREFIX": "appliance",
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# This node: where it keeps its files and how it restarts and reboots itself.
APPLIANCE_VAR_DIR = Path(env_str("APPLIANCE_VAR_DIR", str(BASE_DIR / "var" / "node")))
APPLIANCE_TRAFFIC_LOG_DIR = Path(
    env_str("APPLIANCE_TRAFFIC_LOG_DIR", str(APPLIANCE_VAR_DIR / "traffic-logs"))
)
APPLIANCE_CERT_DIR = Path(env_str("APPLIANCE_CERT_DIR", str(APPLIANCE_VAR_DIR / "certs")))
# Backups of this node's own state (taken before a migration overwrites it); "" = var dir/backups.
APPLIANCE_BACKUP_DIR = env_str("APPLIANCE_BACKUP_DIR", "")
APPLIANCE_RESTART_COMMAND = env_str(
    "APPLIANCE_RESTART_COMMAND", "systemctl restart appliance.target"
)
APPLIANCE_REBOOT_COMMAND = env_str("APPLIANCE_REBOOT_COMMAND", "systemctl reboot")
APPLIANCE_ADMIN_USER = env_str("APPLIANCE_ADMIN_USER", "admin")

# The peer API this node serves when it is the source of a migration.
PEER_TOKEN_TTL = env_int("PEER_TOKEN_TTL", 900, minimum=30)
PEER_AUTH_MAX_FAILURES = env_int("PEER_AUTH_MAX_FAILURES", 5, minimum=1)
PEER_AUTH_LOCKOUT = env_int("PEER_AUTH_LOCKOUT", 300, minimum=1)
# Each lockout in a row lasts twice the one before, up to this; an address with no lockout for
# this long starts over.
PEER_AUTH_LOCKOUT_MAX = env_int("PEER_AUTH_LOCKOUT_MAX", 86400, minimum=1)
PEER_AUTH_DELAY = env_float("PEER_AUTH_DELAY", 0.5)
PEER_CREDENTIAL_TTL = env_int("PEER_CREDENTIAL_TTL", 6 * 3600, minimum=60)

# How the current system reaches a source's MySQL and SSH, as handed out by the peer API.
APPLIANCE_DATA_DB_PUBLIC_HOST = env_str("APPLIANCE_DATA_DB_PUBLIC_HOST", DATA_DB.host)
APPLIANCE_DATA_DB_PUBLIC_PORT = env_int("APPLIANCE_DATA_DB_PUBLIC_PORT", DATA_DB.port, minimum=1)
# The TLS certificate (PEM) of this node's database server: its fingerprint goes out through the
# pinned HTTPS channel, so that a system migrating from this one can check it on port 3306.
APPLIANCE_DATA_DB_CERTIFICATE = env_str("APPLIANCE_DATA_DB_CERTIFICATE", "")
APPLIANCE_SSH_HOST = env_str("APPLIANCE_SSH_HOST", "")
APPLIANCE_SSH_PORT = env_int("APPLIANCE_SSH_PORT", 22, minimum=1)
APPLIANCE_SSH_USER = env_str("APPLIANCE_SSH_USER", "appliance-migration")
APPLIANCE_SSH_HOST_KEY = Path(
    env_str("APPLIANCE_SSH_HOST_KEY", "/etc/ssh/ssh_host_ed25519_key.pub")
)
APPLIANCE_SSH_AUTHORIZED_KEYS = Path(
    env_str("APPLIANCE_SSH_AUTHORIZED_KEYS", str(APPLIANCE_VAR_DIR / "ssh" / "authorized_keys"))
)

# Where this node's own web process answers (checked after its services restart).
APPLIANCE_WEB_ADDRESS = env_str("APPLIANCE_WEB_ADDRESS", "127.0.0.1")
APPLIANCE_WEB_PORT = env_int("APPLIANCE_WEB_PORT", 443, minimum=1)

# The wizard: a loopback source is only accepted where this says so (the demo and tests).
WIZARD_ALLOW_LOOPBACK = env_bool("WIZARD_ALLOW_LOOPBACK", False)
# Where the progress partials of runs in progress are published for the front web server to hand
# out (wizard/progress.py); empty: browsers poll Django itself.
WIZARD_PUBLISH_DIR = env_str("WIZARD_PUBLISH_DIR", "")
# How the current system reaches a source: its HTTPS port, and the ports checked before a run.
MIGRATION_SOURCE_HTTPS_PORT = env_int("MIGRATION_SOURCE_HTTPS_PORT", 443, minimum=1)
MIGRATION_SOURCE_PORTS = [
    int(port)
    for port in env_list("MIGRATION_SOURCE_PORTS", f"80,{MIGRATION_SOURCE_HTTPS_PORT},3306,22")
]

# Execution of a migration on this node when it is the current system.
# The copier's own account here: rights on the data database, its rehearsal copy and the copy
# checkpoints only (`manage.py migration_accounts` creates it); objects copied from a source get
# the definer account, which has rights on the data database alone.
MIGRATION_COPIER_DB = (
    env_mysql("MIGRATION_COPIER_DB_URL", "") if env_str("MIGRATION_COPIER_DB_URL", "") else DATA_DB
)
MIGRATION_DEFINER = env_str("MIGRATION_DEFINER", "appliance_definer@localhost")
MIGRATION_COPY_WORKERS = env_int("MIGRATION_COPY_WORKERS", 2, minimum=1)
MIGRATION_HEARTBEAT_STALE = env_int("MIGRATION_HEARTBEAT_STALE", 30, minimum=5)
MIGRATION_STALL_SECONDS = env_int("MIGRATION_STALL_SECONDS", 120, minimum=10)
MIGRATION_SERVICE_TIMEOUT = env_int("MIGRATION_SERVICE_TIMEOUT", 180, minimum=5)
MIGRATION_REPLICA_TIMEOUT = env_int("MIGRATION_REPLICA_TIMEOUT", 900, minimum=10)
# The online pre-copy: a lag that has not shrunk over this many seconds is a stall warning, and
# the window a cutover would then take adds this margin for the verification of every table.
MIGRATION_LAG_WINDOW = env_int("MIGRATION_LAG_WINDOW", 60, minimum=2)
MIGRATION_VERIFY_MARGIN = env_int("MIGRATION_VERIFY_MARGIN", 10, minimum=0)
MIGRATION_REBOOT_LIMIT = env_int("MIGRATION_REBOOT_LIMIT", 600, minimum=10)
# Seconds a node is given to stop answering after its reboot command (a node still up then is
# taken as rebooted already, or as one whose reboot command does nothing).
MIGRATION_REBOOT_SETTLE = env_int("MIGRATION_REBOOT_SETTLE", 15, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "sweep-migration-runs": {"task": "migrations_engine.tasks.sweep_runs", "schedule": 15.0},
    "revoke-expired-credentials": {
        "task": "appliance.tasks.revoke_expired_credentials",
        "schedule": 60.0,
    },
}

# Email notifications of a run's outcome (completed, failed, stalled, waiting for its cutover) to
# these addresses, with a link to the run and its report (migrations_engine/notifications.py).
# Off when no address is set. The SMTP password is a secret: never logged or shown.
MIGRATION_NOTIFY_EMAILS = env_emails("MIGRATION_NOTIFY_EMAILS")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)  # seconds; a silent server is given up
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "appliance-migration@localhost")
# How administrators reach this node's pages (the links in the emails).
APPLIANCE_BASE_URL = env_str(
    "APPLIANCE_BASE_URL", base_url(APPLIANCE_WEB_ADDRESS, APPLIANCE_WEB_PORT)
).rstrip("/")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # django-axes: failed logins and lockouts (names and addresses masked), not every step.
    "loggers": {"axes": {"level": "WARNING"}},
}
