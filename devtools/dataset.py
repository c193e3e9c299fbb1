"""The benchmark's data set, made by the project itself: three tables shaped like an appliance's
data database, filled by the server from MariaDB's SEQUENCE engine (`seq_1_to_N`).

- `users`: UTF-8 names, a unique name, BLOBs, TEXT with tabs, newlines, quotes and backslashes,
  NULLs, DECIMAL, DATETIME(6) and TIMESTAMP;
- `accounting`: BIGINT, VARBINARY, ENUM, DATETIME, a foreign key and secondary indexes;
- `event_log`: JSON and no primary key.

Scale 1 is 2.0 M rows (about 330 MB on disk); 0.01 is 20 k rows, for tests.

    python devtools/dataset.py DATABASE [SCALE] [--host H] [--port P]   (as root, no password)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import pymysql

USERS, ACCOUNTING, EVENTS = 200_000, 1_500_000, 300_000
"""Rows of each table at scale 1."""


def count(base: int, scale: float) -> int:
    """Rows of a table at this scale (at least one)."""
    return max(1, int(base * scale))


def statements(database: str, scale: float) -> list[str]:
    """The SQL that (re)creates the data set in `database`."""
    users, accounting, events = (count(n, scale) for n in (USERS, ACCOUNTING, EVENTS))
    name = "`" + database.replace("`", "``") + "`"
    return [
        f"DROP DATABASE IF EXISTS {name}",
        f"CREATE DATABASE {name} CHARACTER SET utf8mb4",
        f"USE {name}",
        """CREATE TABLE users (
          id INT UNSIGNED PRIMARY KEY AUTO_INCREMENT,
          username VARCHAR(64) NOT NULL UNIQUE,
          full_name VARCHAR(128) NULL,
          email VARCHAR(190) NOT NULL,
          password_hash CHAR(64) NOT NULL,
          created_at DATETIME(6) NOT NULL,
          last_login TIMESTAMP NULL,
          quota_mb DECIMAL(12,2) NOT NULL DEFAULT 0,
          is_active TINYINT(1) NOT NULL DEFAULT 1,
          avatar BLOB NULL,
          notes TEXT NULL,
          KEY ix_email (email)
        ) ENGINE=InnoDB""",
        f"""INSERT INTO users (username, full_name, email, password_hash, created_at, last_login,
          quota_mb, is_active, avatar, notes)
        SELECT CONCAT('user', seq), CONCAT('Zoë Ñúñez-', seq, ' 用户'),
          CONCAT('u', seq, '@example.test'), SHA2(seq, 256),
          '2026-06-01' - INTERVAL seq SECOND,
          IF(seq % 7 = 0, NULL, '2026-06-01' - INTERVAL seq MINUTE),
          seq / 3, seq % 2, IF(seq % 5 = 0, UNHEX(SHA2(seq, 512)), NULL),
          IF(seq % 3 = 0, CONCAT('line1\\nline2\\t"quoted" \\'s\\' \\\\ back ', seq), NULL)
        FROM seq_1_to_{users}""",
        """CREATE TABLE accounting (
          id BIGINT UNSIGNED PRIMARY KEY AUTO_INCREMENT,
          user_id INT UNSIGNED NOT NULL,
          session_id VARCHAR(64) NOT NULL,
          nas_ip VARBINARY(16) NOT NULL,
          started_at DATETIME NOT NULL,
          stopped_at DATETIME NULL,
          bytes_in BIGINT UNSIGNED NOT NULL,
          bytes_out BIGINT UNSIGNED NOT NULL,
          terminate_cause ENUM('user','idle','timeout','admin','lost') NULL,
          mac CHAR(17) NOT NULL,
          KEY ix_user (user_id), KEY ix_started (started_at),
          CONSTRAINT fk_acc_user FOREIGN KEY (user_id) REFERENCES users(id)
        ) ENGINE=InnoDB""",
        f"""INSERT INTO accounting (user_id, session_id, nas_ip, started_at, stopped_at, bytes_in,
          bytes_out, terminate_cause, mac)
        SELECT 1 + (seq % {users}), MD5(seq),
          INET6_ATON(CONCAT('10.', seq % 256, '.', (seq DIV 256) % 256, '.1')),
          '2026-01-01' + INTERVAL seq SECOND,
          IF(seq % 11 = 0, NULL, '2026-01-01' + INTERVAL seq + 600 SECOND),
          seq * 1013, seq * 17, ELT(1 + seq % 5, 'user', 'idle', 'timeout', 'admin', 'lost'),
          CONCAT_WS(':', LPAD(HEX(seq % 256), 2, '0'), 'aa', 'bb', 'cc', 'dd', 'ee')
        FROM seq_1_to_{accounting}""",
        """CREATE TABLE event_log (
          ts DATETIME(3) NOT NULL,
          source VARCHAR(32) NOT NULL,
          payload JSON NOT NULL,
          KEY ix_ts (ts)
        ) ENGINE=InnoDB""",
        f"""INSERT INTO event_log
        SELECT '2026-01-01' + INTERVAL seq SECOND, ELT(1 + seq % 3, 'radius', 'portal', 'admin'),
          JSON_OBJECT('n', seq, 'msg', CONCAT('évènement ', seq))
        FROM seq_1_to_{events}""",
        "ANALYZE TABLE users, accounting, event_log",
    ]


def dataset_make(
    database: str,
    scale: float = 1.0,
    *,
    host: str = "127.0.0.1",
    port: int = 3306,
    say: Callable[[int, int], None] | None = None,
) -> int:
    """(Re)create the data set on the server at `host` (as root); returns its rows. `say` hears
    (statements done, statements in all), for a progress bar."""
    todo = statements(database, scale)
    with (
        pymysql.connect(
            host=host, port=port, user="root", charset="utf8mb4", autocommit=True, read_timeout=3600
        ) as connection,
        connection.cursor() as cursor,
    ):
        for done, statement in enumerate(todo, start=1):
            cursor.execute(statement)
            if say is not None:
                say(done, len(todo))
    return sum(count(n, scale) for n in (USERS, ACCOUNTING, EVENTS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database")
    parser.add_argument("scale", nargs="?", type=float, default=1.0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3306)
    options = parser.parse_args()
    started = time.monotonic()
    rows = dataset_make(options.database, options.scale, host=options.host, port=options.port)
    print(f"created `{options.database}`: {rows:,} rows in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
