"""The source's definitions are checked and rewritten before they run on the current system."""

from __future__ import annotations

from dataclasses import replace

import pytest

from migrations_engine.datacopy.errors import UnsafeDefinitionError
from migrations_engine.datacopy.objects import (
    SchemaObject,
    definer_sql,
    prepare_object,
    sql_tokens,
    statement_problem,
)
from migrations_engine.datacopy.schema import check_create_table, check_key_definition

DEFINER = definer_sql("appliance_definer@localhost")
TABLES = {"items", "notes"}
PROCEDURE = (
    "CREATE DEFINER=`root`@`localhost` PROCEDURE `count_items`(OUT n INT)\n"
    "    READS SQL DATA\n"
    "BEGIN\n"
    "  DECLARE done INT DEFAULT 0;\n"
    "  IF (SELECT COUNT(*) FROM items) > 0 THEN\n"
    "    SELECT COUNT(*) INTO n FROM items WHERE name <> 'a;b' AND name <> 'it''s; \\' ;';\n"
    "  ELSE\n"
    "    SET n = IF(done, 1, 0); -- a comment; with a semicolon\n"
    "  END IF;\n"
    "  lbl: LOOP LEAVE lbl; END LOOP lbl;\n"
    "  SET n = CASE WHEN n > 1 THEN n ELSE 0 END;\n"
    "END"
)
TABLE = (
    "CREATE TABLE `items` (\n"
    "  `id` int(11) NOT NULL,\n"
    "  `name` varchar(50) DEFAULT NULL COMMENT 'ENGINE=CONNECT; DATA DIRECTORY',\n"
    "  PRIMARY KEY (`id`),\n"
    "  KEY `ix_name` (`name`)\n"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"
)


def item(kind: str, name: str, text: str, **settings: str) -> SchemaObject:
    return SchemaObject(
        kind,
        name,
        text,
        settings.get("sql_mode", "STRICT_TRANS_TABLES"),
        settings.get("charset", "utf8mb4"),
        "utf8mb4_general_ci",
    )


def prepared(kind: str, name: str, text: str, **settings: str) -> str:
    ready = prepare_object(
        item(kind, name, text, **settings),
        definer=DEFINER,
        database="appliance_data",
        tables=TABLES,
    )
    return ready.create_sql


def refusal(kind: str, name: str, text: str, **settings: str) -> str:
    with pytest.raises(UnsafeDefinitionError) as caught:
        prepared(kind, name, text, **settings)
    return str(caught.value)


def test_a_routine_with_semicolons_inside_its_body_is_one_statement() -> None:
    assert statement_problem(sql_tokens(PROCEDURE)) is None
    assert prepared("PROCEDURE", "count_items", PROCEDURE).startswith(
        "CREATE DEFINER=`appliance_definer`@`localhost` PROCEDURE `count_items`(OUT n INT)"
    )


@pytest.mark.parametrize(
    "tail",
    [
        "; DROP DATABASE appliance_control",
        ";DROP DATABASE appliance_control",
        "\n/*!50000 ; DROP DATABASE appliance_control */",
        "/*M!100100 ;*/ DROP DATABASE appliance_control",
        ";",
    ],
)
def test_a_second_statement_after_a_routine_is_refused(tail: str) -> None:
    reason = refusal("PROCEDURE", "count_items", PROCEDURE + tail)
    assert reason == "its text holds more than one statement"


def test_quotes_are_read_in_the_sql_mode_the_text_runs_in() -> None:
    text = "CREATE DEFINER=root@localhost PROCEDURE p() SELECT 'a\\'; DROP TABLE t; -- '"
    # With backslash escapes (the default) all of it after SELECT is one string.
    assert prepared("PROCEDURE", "p", text).startswith(
        "CREATE DEFINER=`appliance_definer`@`localhost` PROCEDURE p()"
    )
    # Without them the string ends at the second quote, and a second statement follows.
    reason = refusal("PROCEDURE", "p", text, sql_mode="NO_BACKSLASH_ESCAPES")
    assert reason == "its text holds more than one statement"


def test_unbalanced_blocks_are_refused() -> None:
    text = "CREATE PROCEDURE p() SELECT 1 END"
    assert "END without a matching BEGIN" in refusal("PROCEDURE", "p", text)
    text = "CREATE PROCEDURE p() BEGIN SELECT 1;"
    assert "without a matching END" in refusal("PROCEDURE", "p", text)


@pytest.mark.parametrize(
    ("kind", "name", "text", "expected"),
    [
        (
            "TRIGGER",
            "items_spy",
            "CREATE DEFINER=`root`@`%` TRIGGER items_spy AFTER INSERT ON items "
            "FOR EACH ROW INSERT INTO appliance_control.secrets VALUES (NEW.name)",
            "CREATE DEFINER=`appliance_definer`@`localhost` TRIGGER items_spy AFTER INSERT ON "
            "items FOR EACH ROW INSERT INTO appliance_control.secrets VALUES (NEW.name)",
        ),
        (
            "TRIGGER",
            "t",
            "CREATE TRIGGER `appliance_data`.`t` BEFORE UPDATE OR DELETE ON "
            "`appliance_data`.`items` FOR EACH ROW FOLLOWS other SET @x = 1",
            "CREATE DEFINER=`appliance_definer`@`localhost` TRIGGER `t` BEFORE UPDATE OR DELETE "
            "ON `items` FOR EACH ROW FOLLOWS other SET @x = 1",
        ),
        (
            "VIEW",
            "v",
            "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY INVOKER VIEW `v` "
            "AS select `items`.`name` AS `name` from `items`",
            "CREATE ALGORITHM=UNDEFINED DEFINER=`appliance_definer`@`localhost` SQL SECURITY "
            "INVOKER VIEW `v` AS select `items`.`name` AS `name` from `items`",
        ),
        (
            "VIEW",
            "v",
            "CREATE DEFINER=CURRENT_USER() VIEW v (a, b) AS SELECT 1, 2",
            "CREATE DEFINER=`appliance_definer`@`localhost` VIEW v (a, b) AS SELECT 1, 2",
        ),
        (
            "FUNCTION",
            "f",
            "CREATE DEFINER='root'@'10.0.0.1' FUNCTION `f`(a INT) RETURNS int(11)\n"
            "    SQL SECURITY INVOKER\n    DETERMINISTIC\nRETURN a + 1",
            "CREATE DEFINER=`appliance_definer`@`localhost` FUNCTION `f`(a INT) RETURNS int(11)\n"
            "    SQL SECURITY DEFINER\n    DETERMINISTIC\nRETURN a + 1",
        ),
        (
            "PROCEDURE",
            "p",
            "CREATE DEFINER=root@10.0.0.1 PROCEDURE p() SQL SECURITY INVOKER BEGIN "
            "CREATE SQL SECURITY INVOKER VIEW w AS SELECT 1; END",
            "CREATE DEFINER=`appliance_definer`@`localhost` PROCEDURE p() SQL SECURITY DEFINER "
            "BEGIN CREATE SQL SECURITY INVOKER VIEW w AS SELECT 1; END",
        ),
    ],
)
def test_every_definer_becomes_the_definer_account(
    kind: str, name: str, text: str, expected: str
) -> None:
    assert prepared(kind, name, text) == expected


@pytest.mark.parametrize(
    ("kind", "name", "text", "reason"),
    [
        ("TRIGGER", "t", "CREATE PROCEDURE t() SELECT 1", "creates a procedure, not a trigger"),
        ("FUNCTION", "f", "CREATE PROCEDURE f() SELECT 1", "creates a procedure, not a function"),
        ("VIEW", "v", "CREATE TABLE v (a INT)", "does not create a view"),
        ("VIEW", "v", "DROP DATABASE appliance_control", "is not a CREATE statement"),
        ("VIEW", "v", "CREATE VIEW w AS SELECT 1", "creates view 'w', not 'v'"),
        ("PROCEDURE", "p", "CREATE PROCEDURE `P`() SELECT 1", "creates procedure 'P', not 'p'"),
        (
            "VIEW",
            "v",
            "CREATE VIEW appliance_control.v AS SELECT 1",
            "puts the view in database 'appliance_control'",
        ),
        (
            "TRIGGER",
            "t",
            "CREATE TRIGGER t AFTER INSERT ON appliance_control.users FOR EACH ROW SET @a = 1",
            "puts the trigger's table in database 'appliance_control'",
        ),
        (
            "TRIGGER",
            "t",
            "CREATE TRIGGER t AFTER INSERT ON orders FOR EACH ROW SET @a = 1",
            "on table 'orders', which is not one of the copied tables",
        ),
        (
            "FUNCTION",
            "f",
            "CREATE FUNCTION f RETURNS STRING SONAME 'evil.so'",
            "loaded from a library",
        ),
        ("EVENT", "e", "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1", "not a kind"),
        ("VIEW", "v", "CREATE VIEW v AS SELECT 'open", "never ends"),
        ("VIEW", "v", "CREATE VIEW v AS SELECT 1 /*! , 2", "never ends"),
    ],
)
def test_a_definition_of_another_kind_or_object_is_refused(
    kind: str, name: str, text: str, reason: str
) -> None:
    assert reason in refusal(kind, name, text)


def test_a_trigger_on_another_table_than_the_source_lists_is_refused() -> None:
    text = "CREATE TRIGGER t AFTER INSERT ON notes FOR EACH ROW SET @a = 1"
    trigger = replace(item("TRIGGER", "t", text), table="items")
    with pytest.raises(UnsafeDefinitionError, match="but the source lists it on 'items'"):
        prepare_object(trigger, definer=DEFINER, database="appliance_data", tables=TABLES)


def test_a_client_character_set_that_can_hide_a_quote_is_refused() -> None:
    text = "CREATE VIEW v AS SELECT 1"
    assert "character set 'sjis'" in refusal("VIEW", "v", text, charset="sjis")
    assert "Oracle" in refusal("VIEW", "v", text, sql_mode="ORACLE,ANSI_QUOTES")


def test_an_ordinary_table_passes() -> None:
    check_create_table(TABLE, "items")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda text: text + " DATA DIRECTORY='/tmp/x'", "DATA DIRECTORY"),
        (lambda text: text + " /*!50100 INDEX DIRECTORY='/tmp/x' */", "INDEX DIRECTORY"),
        (lambda text: text.replace("ENGINE=InnoDB", "ENGINE=CONNECT"), "engine CONNECT"),
        (lambda text: text.replace("ENGINE=InnoDB", "ENGINE = FEDERATED"), "engine FEDERATED"),
        (lambda text: text.replace("ENGINE=InnoDB", "ENGINE=SPIDER"), "engine SPIDER"),
        (lambda text: text + " CONNECTION='mysql://root@10.0.0.1/x/y'", "CONNECTION"),
        (lambda text: text + "; DROP DATABASE appliance_control", "more than one statement"),
        (lambda text: text + " SELECT * FROM appliance_control.secrets", "from a query"),
        (lambda text: text.replace("`items`", "`other`", 1), "creates table 'other'"),
        (lambda text: text.replace("`items`", "`ctl`.`items`", 1), "in another database"),
        (lambda text: text.replace("CREATE TABLE", "CREATE VIEW"), "not a CREATE TABLE"),
        (
            lambda text: text.replace(
                "KEY `ix_name` (`name`)",
                "CONSTRAINT `fk` FOREIGN KEY (`id`) REFERENCES `ctl`.`users` (`id`)",
            ),
            "foreign key to a table of database 'ctl'",
        ),
        (
            lambda text: text.replace(
                "ENGINE=InnoDB",
                "ENGINE=InnoDB PARTITION BY HASH (`id`) (PARTITION p0 DATA DIRECTORY = '/x')",
            ),
            "DATA DIRECTORY",
        ),
    ],
)
def test_a_table_that_reaches_beyond_the_database_is_refused(change: object, reason: str) -> None:
    with pytest.raises(UnsafeDefinitionError, match=reason):
        check_create_table(change(TABLE), "items")  # type: ignore[operator]


@pytest.mark.parametrize(
    "definition",
    [
        "KEY `ix_name` (`name`), DROP COLUMN `id`",
        "UNIQUE KEY `u` (`name`), ENGINE=CONNECT",
        "CONSTRAINT `fk` FOREIGN KEY (`id`) REFERENCES `t` (`id`); DROP TABLE `t`",
        "DROP COLUMN `id`",
    ],
)
def test_an_index_definition_with_a_second_clause_is_refused(definition: str) -> None:
    """Deferred indexes and foreign keys are added by ALTER TABLE ... ADD <definition>."""
    with pytest.raises(UnsafeDefinitionError):
        check_key_definition(definition)


def test_ordinary_index_and_foreign_key_definitions_pass() -> None:
    check_key_definition("KEY `ix` (`a`,`b`(10))")
    check_key_definition("FULLTEXT KEY `ft` (`title`,`description`)")
    check_key_definition(
        "CONSTRAINT `fk` FOREIGN KEY (`a`, `b`) REFERENCES `parent` (`a`, `b`) ON DELETE CASCADE"
    )
