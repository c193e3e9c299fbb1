"""A copy arrives identical: Sakila, and tables that are awkward in every way we know of."""

from __future__ import annotations

from dataclasses import replace

import pytest

from migrations_engine.datacopy import CopyError, ProgressEvent, copy_database
from migrations_engine.datacopy import copier as copier_module

from .conftest import SAKILA, Scratch, query, quote, run_sql

ODD_TABLES = [
    "CREATE TABLE `no key` (a INT, b VARCHAR(20)) ENGINE=InnoDB",
    "INSERT INTO `no key` VALUES (1, 'x'), (1, 'x'), (NULL, NULL), (2, 'tab\\there')",
    "CREATE TABLE `composite` (a INT NOT NULL, b VARCHAR(10) NOT NULL, v TEXT, "
    "PRIMARY KEY (a, b)) ENGINE=InnoDB",
    "INSERT INTO `composite` SELECT seq % 7, CONCAT('k', seq), REPEAT('z', seq % 50) "
    "FROM seq_1_to_3000",
    "CREATE TABLE `we``ird name` (`select` INT PRIMARY KEY, `from` VARCHAR(10), "
    "`col with space` DOUBLE) ENGINE=InnoDB",
    "INSERT INTO `we``ird name` VALUES (1, 'a', 1.5), (2, NULL, -0.1e-300), (3, '\\\\', 1e300)",
    "CREATE TABLE `order` (id INT PRIMARY KEY) ENGINE=InnoDB",
    "CREATE TABLE `empty` (id BIGINT AUTO_INCREMENT PRIMARY KEY, x INT) ENGINE=InnoDB "
    "AUTO_INCREMENT=42",
    "CREATE TABLE emoji (name VARCHAR(100) PRIMARY KEY, note TEXT, "
    "old VARCHAR(20) CHARACTER SET latin1) ENGINE=InnoDB",
    "INSERT INTO emoji VALUES ('🎉 party', 'line\\nbreak \\\\ back\\ttab 😀', 'café'), "
    "('Zoë', '', NULL), ('用户', 'ok', 'naïve')",
    "CREATE TABLE dates (id INT AUTO_INCREMENT PRIMARY KEY, d DATE, dt DATETIME(6), "
    "ts TIMESTAMP NULL, t TIME, y YEAR) ENGINE=InnoDB",
    "INSERT INTO dates (d, dt, ts, t, y) VALUES ('0000-00-00', '0000-00-00 00:00:00', NULL, "
    "'-838:59:59', 0000), ('2024-02-29', '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07', "
    "'12:00:00', 2155), ('2024-00-10', '1000-01-01 00:00:00', '1970-01-01 00:00:01', NULL, NULL)",
    "DELETE FROM dates WHERE id = 3",
    "CREATE TABLE bits (id INT PRIMARY KEY, b1 BIT(1), b64 BIT(64), f FLOAT, "
    "dec_ DECIMAL(30,10), e ENUM('a','b c'), s SET('x','y')) ENGINE=InnoDB",
    "INSERT INTO bits VALUES (1, b'1', b'1010101010101010101010101010101010101010', "
    "1.2345678, -12345678901234567890.0123456789, 'b c', 'x,y'), "
    "(2, b'0', NULL, NULL, 0, NULL, '')",
    "CREATE TABLE places (id INT PRIMARY KEY, g GEOMETRY NOT NULL, p POINT, SPATIAL KEY ix_g (g)) "
    "ENGINE=InnoDB",
    "INSERT INTO places VALUES (1, ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))'), "
    "ST_GeomFromText('POINT(1.5 -2.25)')), (2, ST_GeomFromText('POINT(9 9)'), NULL)",
    "CREATE TABLE docs (id INT PRIMARY KEY, body JSON, "
    "kind VARCHAR(20) AS (JSON_VALUE(body, '$.kind')) VIRTUAL, "
    "size INT AS (LENGTH(body)) STORED, KEY ix_kind (kind), KEY ix_size (size)) ENGINE=InnoDB",
    'INSERT INTO docs (id, body) VALUES (1, \'{"kind": "a", "n": [1, 2]}\'), '
    '(2, \'{"kind": "tab\\\\there", "x": null}\'), (3, NULL)',
    "CREATE TABLE parts (id INT NOT NULL, created DATE NOT NULL, v VARCHAR(10), "
    "PRIMARY KEY (id, created)) ENGINE=InnoDB PARTITION BY RANGE (YEAR(created)) "
    "(PARTITION p2023 VALUES LESS THAN (2024), PARTITION p2024 VALUES LESS THAN (2025), "
    "PARTITION pmax VALUES LESS THAN MAXVALUE)",
    "INSERT INTO parts SELECT seq, '2023-06-01' + INTERVAL seq DAY, CONCAT('v', seq) "
    "FROM seq_1_to_900",
    "CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB) ENGINE=InnoDB",
    "INSERT INTO blobs VALUES (1, RANDOM_BYTES(1024)), (2, ''), (3, NULL), "
    "(4, (SELECT GROUP_CONCAT(CHAR(seq - 1) ORDER BY seq SEPARATOR '') FROM seq_1_to_256)), "
    "(5, REPEAT(UNHEX('00FF5C090A0D'), 3000000))",
    "CREATE TABLE uniq (code VARCHAR(20) NOT NULL, n INT, UNIQUE KEY (code)) ENGINE=InnoDB",
    "INSERT INTO uniq SELECT CONCAT('c', seq), seq FROM seq_1_to_500",
    "CREATE TABLE parent (id INT PRIMARY KEY) ENGINE=InnoDB",
    "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, "
    "CONSTRAINT fk_child_parent FOREIGN KEY (parent_id) REFERENCES parent (id) "
    "ON DELETE CASCADE) ENGINE=InnoDB",
    "INSERT INTO parent VALUES (1), (2)",
    "INSERT INTO child VALUES (1, 1), (2, 2), (3, NULL)",
]


def create_odd_tables(scratch: Scratch) -> None:
    with scratch.source() as connection:
        run_sql(connection, "SET SESSION sql_mode = ''", "SET SESSION time_zone = '+00:00'")
        run_sql(connection, *ODD_TABLES)
        tables = [
            row[0] for row in query(connection, "SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
        ]
        run_sql(connection, "ANALYZE TABLE " + ", ".join(quote(name) for name in tables))


def test_odd_tables_arrive_identical(scratch: Scratch) -> None:
    create_odd_tables(scratch)
    events: list[ProgressEvent] = []

    result = copy_database(
        scratch.source_url, scratch.target_url, chunk_bytes=16384, progress=events.append
    )

    expected = scratch.assert_identical()
    for table, facts in expected["tables"].items():
        assert result.tables[table].rows == facts["rows"]
    assert result.tables["blobs"].rows == 5
    assert result.tables["composite"].chunks > 1
    assert events[-1].phase == "done"
    assert events[-1].rows == result.rows
    with scratch.target() as target:
        run_sql(target, f"USE `{scratch.name}`")
        assert query(target, "SELECT LENGTH(data) FROM blobs WHERE id = 5")[0][0] == 18_000_000
        assert query(target, "SELECT note FROM emoji WHERE name = '🎉 party'")[0][0] == (
            "line\nbreak \\ back\ttab 😀"
        )


def test_a_chunk_too_big_to_format_at_once_is_streamed(
    scratch: Scratch, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scratch.source() as connection:
        run_sql(
            connection,
            "CREATE TABLE big (n INT, data LONGBLOB) ENGINE=InnoDB",
            "INSERT INTO big SELECT seq, REPEAT(CHAR(seq), 300000) FROM seq_1_to_12",
        )
    monkeypatch.setattr(copier_module, "LARGEST_CONCAT", 1 << 20)

    result = copy_database(scratch.source_url, scratch.target_url, workers=1)

    scratch.assert_identical()
    assert result.tables["big"].rows == 12


def test_sakila_arrives_identical(scratch: Scratch) -> None:
    scratch.source_name = "sakila"  # its views and routines name their database
    scratch.load_sql_file(SAKILA / "sakila-schema.sql")
    scratch.load_sql_file(SAKILA / "sakila-data.sql")

    result = copy_database(scratch.source_url, scratch.target_url, chunk_bytes=64 * 1024)

    expected = scratch.assert_identical()
    assert len(expected["views"]) == 7
    assert len(expected["triggers"]) == 6
    assert len(expected["routines"]) == 6
    assert result.tables["rental"].rows == 16044
    assert sorted(result.views) == sorted(expected["views"])
    with scratch.target() as target:
        run_sql(target, f"USE `{scratch.name}`")
        assert (
            query(
                target,
                "SELECT COUNT(*) FROM film_text WHERE MATCH(title, description) AGAINST('drama')",
            )[0][0]
            > 0
        )


def test_a_subset_of_tables_replaces_only_those(scratch: Scratch) -> None:
    create_odd_tables(scratch)
    with scratch.target() as target:
        run_sql(
            target,
            f"CREATE DATABASE `{scratch.name}`",
            f"CREATE TABLE `{scratch.name}`.keep_me (id INT PRIMARY KEY)",
            f"CREATE TABLE `{scratch.name}`.emoji (stale INT)",
        )

    result = copy_database(scratch.source_url, scratch.target_url, tables=["emoji", "parts"])

    assert set(result.tables) == {"emoji", "parts"}
    with scratch.target() as target:
        run_sql(target, f"USE `{scratch.name}`")
        tables = {row[0] for row in query(target, "SHOW TABLES")}
        assert tables == {"keep_me", "emoji", "parts"}
        assert query(target, "SELECT COUNT(*) FROM emoji")[0][0] == 3


def test_an_unknown_table_is_refused_with_its_name(scratch: Scratch) -> None:
    with pytest.raises(CopyError, match="no table named 'nope'"):
        copy_database(scratch.source_url, scratch.target_url, tables=["nope"])


def test_a_chunk_that_arrives_different_is_copied_again(
    scratch: Scratch, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_odd_tables(scratch)
    from migrations_engine.datacopy import sql

    original = sql.LoadingConnection.load_bytes
    spoiled: list[bool] = []

    def spoil_once(self: sql.LoadingConnection, statement: str, payload: bytes) -> int:
        if "`composite`" in statement and not spoiled:
            spoiled.append(True)
            payload = payload.replace(b"zzz", b"zzy", 1)
        return original(self, statement, payload)

    monkeypatch.setattr(sql.LoadingConnection, "load_bytes", spoil_once)

    copy_database(scratch.source_url, scratch.target_url, workers=1)

    assert spoiled
    scratch.assert_identical()


def test_an_unreachable_source_is_a_clear_error(scratch: Scratch) -> None:
    url = scratch.source_url
    wrong = replace(url, password="secret-password", port=3399)
    with pytest.raises(CopyError) as caught:
        copy_database(wrong, scratch.target_url)
    assert "Cannot connect to the source" in str(caught.value)
    assert "secret-password" not in str(caught.value)
