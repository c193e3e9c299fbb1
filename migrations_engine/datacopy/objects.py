"""Views, triggers, stored procedures and functions: read from the source, checked, made here.

Each is created with the SQL mode and character set it was created with on the source, the
way mariadb-dump does it. Triggers are made after the rows are loaded, so loading fires none.
Every creation first drops an object of the same name, so running it again is harmless.

What the source's server says is hostile until checked. Before a definition runs here, its
text must be exactly one CREATE statement of the expected kind, for the expected object, in
the copied database; a trigger must be on one of the copied tables. Its DEFINER becomes the
definer account (MIGRATION_DEFINER), which has rights on the data database only, so whatever
the object does when it runs, it does with no more power than that: views keep the SQL
SECURITY they had (the account creating them must see what they read, so they are confined
either way), routines always run as their definer. A definition that fails a check, or that
this server refuses, is not created but listed with the reason. Events are never copied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pymysql
from pymysql.connections import Connection
from pymysql.constants import CLIENT
from pymysql.cursors import Cursor

from migrations_engine.datacopy.errors import CopyError, UnsafeDefinitionError
from migrations_engine.datacopy.sql import (
    error_code,
    execute,
    fetch_all,
    fetch_one,
    is_connection_lost,
    quote_name,
)

KINDS = ("VIEW", "TRIGGER", "PROCEDURE", "FUNCTION")
ROUTINE_KINDS = frozenset({"PROCEDURE", "FUNCTION"})
SAFE_CLIENT_CHARSETS = frozenset({"utf8mb4", "utf8mb3", "utf8", "latin1", "ascii"})
"""Character sets in which a byte below 128 is always that ASCII character.

In others (sjis, gbk, big5...) a quote or backslash can be the second byte of a character,
so the server could read the text differently from the checks here.
"""
EVENTS_NOT_COPIED = (
    "events are not copied: an event runs statements by itself on a schedule; create it "
    "again on the current system if it is still needed"
)
SET_USER_DENIED = 1227
NO_SUCH_DEFINER = 1449
BINLOG_NEEDS_SUPER = frozenset({1418, 1419})

WORD = "word"
NAME = "name"
STRING = "string"
SYMBOL = "symbol"
WORD_PATTERN = re.compile(r"[0-9A-Za-z_$\u0080-\U0010ffff]+")
EXECUTABLE_COMMENT = re.compile(r"/\*M?!\d{0,6}")
BLOCK_CLOSERS = frozenset({"IF", "LOOP", "WHILE", "REPEAT", "CASE", "FOR"})
"""The words after END that close a compound statement other than BEGIN ... END."""

Edit = tuple[int, int, str]
"""A change to a text: replace what lies between two offsets."""


@dataclass(frozen=True)
class SchemaObject:
    """One view, trigger, procedure or function, as its CREATE statement and session settings."""

    kind: str
    name: str
    create_sql: str
    sql_mode: str
    character_set_client: str
    collation_connection: str
    table: str = ""
    """The table a trigger is on, as the source's information_schema lists it ('' if unknown)."""


@dataclass(frozen=True)
class RefusedObject:
    """A table, view, trigger, routine or event of the source not created here, and why."""

    kind: str
    name: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """The refusal as plain data, for a run's result and its report."""
        return {"kind": self.kind, "name": self.name, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> RefusedObject:
        return cls(str(data["kind"]), str(data["name"]), str(data["reason"]))


@dataclass(frozen=True)
class Token:
    """One piece of a SQL text: a word, a quoted name (unquoted), a string or a symbol."""

    kind: str
    value: str
    start: int
    end: int

    def is_word(self, *values: str) -> bool:
        """Whether this is one of the words `values` (given in capitals)."""
        return self.kind == WORD and self.value.upper() in values

    def is_symbol(self, value: str) -> bool:
        return self.kind == SYMBOL and self.value == value


# Reading SQL text -------------------------------------------------------------------------


def sql_tokens(text: str, sql_mode: str = "") -> list[Token]:
    """The tokens of a SQL text as MariaDB reads it in `sql_mode`, comments left out.

    The contents of executable comments (`/*! ... */`, `/*M! ... */`) count as SQL, whatever
    version they name: the server may run them. Raises UnsafeDefinitionError for a text that
    does not end properly (an open quote or comment).
    """
    modes = {mode.strip().upper() for mode in sql_mode.split(",")}
    backslash_escapes = "NO_BACKSLASH_ESCAPES" not in modes
    quoted_names = '`"' if "ANSI_QUOTES" in modes else "`"
    tokens: list[Token] = []
    position = 0
    executable = False
    while position < len(text):
        char = text[position]
        if char.isspace():
            position += 1
        elif executable and text.startswith("*/", position):
            executable, position = False, position + 2
        elif text.startswith("/*", position):
            marker = EXECUTABLE_COMMENT.match(text, position)
            if marker and executable:
                raise UnsafeDefinitionError("its text nests executable comments")
            if marker:
                executable, position = True, marker.end()
            else:
                position = _comment_end(text, position)
        elif char == "#" or _starts_dash_comment(text, position):
            end = text.find("\n", position)
            position = len(text) if end < 0 else end + 1
        elif char in "`'\"":
            is_name = char in quoted_names
            value, end = _quoted(text, position, backslash_escapes and not is_name)
            tokens.append(Token(NAME if is_name else STRING, value, position, end))
            position = end
        elif match := WORD_PATTERN.match(text, position):
            tokens.append(Token(WORD, match.group(), position, match.end()))
            position = match.end()
        else:
            tokens.append(Token(SYMBOL, char, position, position + 1))
            position += 1
    if executable:
        raise UnsafeDefinitionError("its text has an executable comment that never ends")
    return tokens


def _comment_end(text: str, start: int) -> int:
    end = text.find("*/", start + 2)
    if end < 0:
        raise UnsafeDefinitionError("its text has a comment that never ends")
    return end + 2


def _starts_dash_comment(text: str, position: int) -> bool:
    """`-- ` starts a comment only when a space or control character follows the dashes."""
    if not text.startswith("--", position):
        return False
    return position + 2 == len(text) or text[position + 2] <= " "


def _quoted(text: str, start: int, backslash_escapes: bool) -> tuple[str, int]:
    """The value of the quoted name or string at `start` and where it ends."""
    quote = text[start]
    value: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if backslash_escapes and char == "\\" and position + 1 < len(text):
            value.append(text[position : position + 2])
            position += 2
        elif char == quote and text.startswith(quote * 2, position):
            value.append(quote)
            position += 2
        elif char == quote:
            return "".join(value), position + 1
        else:
            value.append(char)
            position += 1
    raise UnsafeDefinitionError("its text has a quoted name or value that never ends")


def statement_problem(tokens: list[Token]) -> str | None:
    """Why the tokens are not exactly one statement, or None when they are.

    A `;` may only appear inside a compound statement (BEGIN ... END, IF ... END IF, LOOP,
    WHILE, REPEAT, CASE, FOR), as in the body of a trigger or a routine.
    """
    depth = 0
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.is_symbol(";") and depth == 0:
            return "its text holds more than one statement"
        if token.is_word("END"):
            if _word_at(tokens, index + 1) in BLOCK_CLOSERS:
                index += 1
            depth -= 1
            if depth < 0:
                return "its text has an END without a matching BEGIN"
        elif token.kind == WORD and _opens_block(tokens, index):
            depth += 1
        index += 1
    if depth:
        return "its text has a BEGIN (or IF, LOOP, CASE...) without a matching END"
    return None


def _word_at(tokens: list[Token], index: int) -> str | None:
    if index < len(tokens) and tokens[index].kind == WORD:
        return tokens[index].value.upper()
    return None


def _symbol_at(tokens: list[Token], index: int, value: str) -> bool:
    return index < len(tokens) and tokens[index].is_symbol(value)


def _opens_block(tokens: list[Token], index: int) -> bool:
    """Whether the word at `index` starts something that an END closes."""
    word = tokens[index].value.upper()
    if word in ("BEGIN", "LOOP", "WHILE", "CASE"):
        return True
    if word == "REPEAT":  # the statement, not the REPEAT() function
        return not _symbol_at(tokens, index + 1, "(")
    if word == "FOR":  # FOR var IN ... DO ... END FOR, not FOR EACH ROW or FOR UPDATE
        return _word_at(tokens, index + 2) == "IN"
    if word == "IF":
        return _opens_if(tokens, index)
    return False


def _opens_if(tokens: list[Token], index: int) -> bool:
    """IF cond THEN ... END IF, unlike the IF() function and DDL's IF [NOT] EXISTS name."""
    following = _word_at(tokens, index + 1)
    if following == "EXISTS":
        return _symbol_at(tokens, index + 2, "(")
    if following == "NOT" and _word_at(tokens, index + 2) == "EXISTS":
        return _symbol_at(tokens, index + 3, "(")
    if _symbol_at(tokens, index + 1, "("):
        return not _group_has_comma(tokens, index + 1)
    return True


def _group_has_comma(tokens: list[Token], opening: int) -> bool:
    """Whether the parenthesised group opening at `opening` lists several things."""
    depth = 0
    for token in tokens[opening:]:
        if token.is_symbol("("):
            depth += 1
        elif token.is_symbol(")"):
            depth -= 1
            if depth == 0:
                return False
        elif token.is_symbol(",") and depth == 1:
            return True
    return False


def group_end(tokens: list[Token], opening: int) -> int:
    """The index just after the parenthesis that closes the one at `opening`."""
    depth = 0
    for index in range(opening, len(tokens)):
        if tokens[index].is_symbol("("):
            depth += 1
        elif tokens[index].is_symbol(")"):
            depth -= 1
            if depth == 0:
                return index + 1
    raise UnsafeDefinitionError("its text has a parenthesis that is never closed")


class TokenReader:
    """Walks the tokens of a statement's header, refusing what it does not expect."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self, ahead: int = 0) -> Token | None:
        index = self.index + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    @property
    def position(self) -> int:
        """Where the next token starts in the text (its end when there is none)."""
        token = self.peek()
        if token is not None:
            return token.start
        return self.tokens[-1].end if self.tokens else 0

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise UnsafeDefinitionError("its text ends too early")
        self.index += 1
        return token

    def word(self, *values: str) -> Token | None:
        """Take the next token when it is one of these words."""
        token = self.peek()
        if token is not None and token.is_word(*values):
            self.index += 1
            return token
        return None

    def symbol(self, value: str) -> Token | None:
        token = self.peek()
        if token is not None and token.is_symbol(value):
            self.index += 1
            return token
        return None

    def expect(self, *values: str) -> Token:
        token = self.word(*values)
        if token is None:
            found = self.peek()
            shown = found.value if found is not None else "the end of the text"
            raise UnsafeDefinitionError(
                f"its text has {shown!r} where {' or '.join(values)} belongs"
            )
        return token

    def name(self) -> QualifiedName:
        """A name, perhaps with its database in front (`db`.`name`)."""
        first = self._name_part()
        if self.symbol("."):
            second = self._name_part()
            return QualifiedName(first.value, second.value, first.start, second.end)
        return QualifiedName(None, first.value, first.start, first.end)

    def _name_part(self) -> Token:
        token = self.take()
        if token.kind not in (NAME, WORD):
            raise UnsafeDefinitionError(f"its text has {token.value!r} where a name belongs")
        return token


@dataclass(frozen=True)
class QualifiedName:
    """A name as written in a statement, with its database if one was written, and its span."""

    database: str | None
    name: str
    start: int
    end: int


# Checking a view, trigger or routine -----------------------------------------------------


@dataclass(frozen=True)
class _Header:
    """The parts of a CREATE statement's header that the checks and the rewrite need."""

    kind: str
    name: QualifiedName
    definer_start: int
    definer_end: int
    """The DEFINER clause's span; both equal where a missing one goes."""


def definer_sql(definer: str) -> str:
    """An account name like `appliance_definer@localhost` quoted for a DEFINER clause."""
    user, separator, host = definer.rpartition("@")
    if not separator or not user or not host:
        raise CopyError(
            f"MIGRATION_DEFINER={definer!r} is not an account name such as "
            "appliance_definer@localhost."
        )
    return f"{quote_name(user)}@{quote_name(host)}"


def prepare_object(
    item: SchemaObject, *, definer: str, database: str, tables: set[str]
) -> SchemaObject:
    """The object with its definition checked and its DEFINER rewritten, ready to create here.

    `definer` is a quoted account (see `definer_sql`), `database` the source database's name
    and `tables` the tables the copy made. Raises UnsafeDefinitionError saying what is wrong.
    """
    if item.kind not in KINDS:
        raise UnsafeDefinitionError(f"a {item.kind.lower()} is not a kind of object the copy makes")
    if item.character_set_client.lower() not in SAFE_CLIENT_CHARSETS:
        raise UnsafeDefinitionError(
            f"it was written in character set {item.character_set_client!r}, in which a quote "
            "or backslash can hide inside another character; only "
            f"{', '.join(sorted(SAFE_CLIENT_CHARSETS))} are accepted"
        )
    if "ORACLE" in {mode.strip().upper() for mode in item.sql_mode.split(",")}:
        raise UnsafeDefinitionError(
            "it was written in Oracle compatibility mode (sql_mode ORACLE), which the copy "
            "does not read"
        )
    tokens = sql_tokens(item.create_sql, item.sql_mode)
    problem = statement_problem(tokens)
    if problem:
        raise UnsafeDefinitionError(problem)
    reader = TokenReader(tokens)
    header = _read_header(reader)
    if header.kind != item.kind:
        raise UnsafeDefinitionError(
            f"its text creates a {header.kind.lower()}, not a {item.kind.lower()}"
        )
    clause = f"DEFINER={definer}"
    if header.definer_start == header.definer_end:
        clause += " "  # the source's text had none: it goes before what follows
    edits: list[Edit] = [(header.definer_start, header.definer_end, clause)]
    edits += _own_name(header.name, item.name, item.kind, database)
    if item.kind == "TRIGGER":
        edits += _trigger_table(reader, database, tables, item.table)
    elif item.kind == "VIEW":
        _view_rest(reader)
    else:
        edits += _routine_security(reader, item.kind)
    return SchemaObject(
        item.kind,
        item.name,
        _apply(item.create_sql, edits),
        item.sql_mode,
        item.character_set_client,
        item.collation_connection,
        item.table,
    )


def _read_header(reader: TokenReader) -> _Header:
    """CREATE [OR REPLACE] [ALGORITHM=...] [DEFINER=...] [SQL SECURITY ...] kind [IF NOT EXISTS]
    name: what MariaDB's SHOW CREATE writes, and what it accepts in the same place."""
    if reader.word("CREATE") is None:
        raise UnsafeDefinitionError("its text is not a CREATE statement")
    if reader.word("OR"):
        reader.expect("REPLACE")
    if reader.word("ALGORITHM"):
        reader.symbol("=")
        reader.expect("UNDEFINED", "MERGE", "TEMPTABLE")
    definer_start = definer_end = reader.position
    if reader.word("DEFINER"):
        reader.symbol("=")
        definer_end = _skip_account(reader)
    if reader.word("SQL"):
        reader.expect("SECURITY")
        reader.expect("DEFINER", "INVOKER")
    reader.word("AGGREGATE")
    kind = reader.word(*KINDS)
    if kind is None:
        found = reader.peek()
        raise UnsafeDefinitionError(
            "its text does not create a view, trigger, procedure or function"
            + (f" (it creates a {found.value.lower()})" if found is not None else "")
        )
    if reader.word("IF"):
        reader.expect("NOT")
        reader.expect("EXISTS")
    return _Header(kind.value.upper(), reader.name(), definer_start, definer_end)


def _skip_account(reader: TokenReader) -> int:
    """Skip `user@host`, `user` or CURRENT_USER[()]; where the account's text ends."""
    token = reader.take()
    end = token.end
    if token.is_word("CURRENT_USER"):
        if reader.symbol("("):
            end = reader.take().end
        return end
    if token.kind not in (NAME, STRING, WORD):
        raise UnsafeDefinitionError(f"its DEFINER is not an account ({token.value!r})")
    if reader.symbol("@"):
        host = reader.take()
        if host.kind not in (NAME, STRING, WORD):
            raise UnsafeDefinitionError(f"its DEFINER is not an account ({host.value!r})")
        end = host.end
        while reader.symbol("."):  # an unquoted address such as 10.0.0.1
            end = reader.take().end
    return end


def _own_name(name: QualifiedName, expected: str, kind: str, database: str) -> list[Edit]:
    """Check the object's name; a name qualified with the copied database loses the database."""
    if name.name != expected:
        raise UnsafeDefinitionError(
            f"its text creates {kind.lower()} {name.name!r}, not {expected!r}"
        )
    return _unqualified(name, database, f"the {kind.lower()}")


def _unqualified(name: QualifiedName, database: str, what: str) -> list[Edit]:
    """Drop the copied database from a qualified name (the copy may have another name here)."""
    if name.database is None:
        return []
    if name.database != database:
        raise UnsafeDefinitionError(
            f"its text puts {what} in database {name.database!r}, not in the copied one"
        )
    return [(name.start, name.end, quote_name(name.name))]


def _trigger_table(reader: TokenReader, database: str, tables: set[str], listed: str) -> list[Edit]:
    """{BEFORE|AFTER} event [OR event] ON table FOR EACH ROW: the table must be a copied one,
    and the one the source lists the trigger on (`listed`, when known)."""
    reader.expect("BEFORE", "AFTER")
    reader.expect("INSERT", "UPDATE", "DELETE")
    while reader.word("OR"):
        reader.expect("INSERT", "UPDATE", "DELETE")
    reader.expect("ON")
    table = reader.name()
    edits = _unqualified(table, database, "the trigger's table")
    if table.name not in tables:
        raise UnsafeDefinitionError(
            f"it is on table {table.name!r}, which is not one of the copied tables"
        )
    if listed and table.name != listed:
        raise UnsafeDefinitionError(
            f"its text is on table {table.name!r}, but the source lists it on {listed!r}"
        )
    reader.expect("FOR")
    reader.expect("EACH")
    reader.expect("ROW")
    if reader.word("FOLLOWS", "PRECEDES"):
        other = reader.name()
        edits += _unqualified(other, database, "the trigger it follows or precedes")
    return edits


def _view_rest(reader: TokenReader) -> None:
    """[(columns)] AS select..."""
    token = reader.peek()
    if token is not None and token.is_symbol("("):
        reader.index = group_end(reader.tokens, reader.index)
    reader.expect("AS")


def _routine_security(reader: TokenReader, kind: str) -> list[Edit]:
    """Make the routine run as its definer: SQL SECURITY INVOKER becomes DEFINER.

    With INVOKER, the body would run with the rights of whoever calls it here, which may be
    an account with rights beyond the data database.
    """
    token = reader.peek()
    if token is None or not token.is_symbol("("):
        raise UnsafeDefinitionError(
            f"its text is not a stored {kind.lower()} (one loaded from a library, SONAME, is "
            "never copied)"
            if kind == "FUNCTION"
            else "its text has no parameter list"
        )
    tokens = reader.tokens
    index = group_end(tokens, reader.index)
    if kind == "FUNCTION" and _word_at(tokens, index) != "RETURNS":
        raise UnsafeDefinitionError("its text has no RETURNS clause")
    while (
        index < len(tokens)
        and not tokens[index].is_word("BEGIN")
        and not tokens[index].is_symbol(";")
    ):
        if tokens[index].is_word("SONAME"):
            raise UnsafeDefinitionError("its text loads a library (SONAME)")
        if _word_at(tokens, index) == "SQL" and _word_at(tokens, index + 1) == "SECURITY":
            setting = tokens[index + 2] if index + 2 < len(tokens) else None
            if setting is not None and setting.is_word("INVOKER"):
                return [(setting.start, setting.end, "DEFINER")]
            return []
        index += 1
    return []


def _apply(text: str, edits: list[Edit]) -> str:
    """The text with each (start, end, replacement) made, from the last to the first."""
    for start, end, replacement in sorted(edits, key=lambda edit: -edit[0]):
        text = text[:start] + replacement + text[end:]
    return text


# Reading from the source ----------------------------------------------------------------


def read_triggers(source: Connection, database: str, tables: set[str] | None) -> list[SchemaObject]:
    """The database's triggers (those of `tables` only, when given), in firing order."""
    rows = fetch_all(
        source,
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER",
        (database,),
    )
    triggers = []
    for name, table in rows:
        if tables is not None and table not in tables:
            continue
        row = fetch_one(source, f"SHOW CREATE TRIGGER {quote_name(str(name))}")
        triggers.append(
            SchemaObject(
                "TRIGGER",
                str(name),
                str(row[2]),
                str(row[1]),
                str(row[3]),
                str(row[4]),
                str(table),
            )
        )
    return triggers


def read_routines(
    source: Connection, database: str
) -> tuple[list[SchemaObject], list[RefusedObject]]:
    """The database's stored procedures and functions, and what is not copied of the rest."""
    rows = fetch_all(
        source,
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = %s ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
        (database,),
    )
    routines = []
    refused = []
    for kind, name in rows:
        if kind not in ROUTINE_KINDS:
            refused.append(
                RefusedObject(
                    str(kind).lower(), str(name), "only procedures and functions are copied"
                )
            )
            continue
        row = fetch_one(source, f"SHOW CREATE {kind} {quote_name(str(name))}")
        if row[2] is None:
            raise CopyError(
                f"The source's account may not read the definition of {str(kind).lower()} "
                f"{name!r}; grant it SHOW CREATE ROUTINE (or SELECT on mysql.proc)."
            )
        routines.append(
            SchemaObject(str(kind), str(name), str(row[2]), str(row[1]), str(row[3]), str(row[4]))
        )
    return routines, refused


def read_views(source: Connection, database: str) -> list[SchemaObject]:
    """The database's views."""
    rows = fetch_all(
        source,
        "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s "
        "ORDER BY TABLE_NAME",
        (database,),
    )
    views = []
    for (name,) in rows:
        row = fetch_one(source, f"SHOW CREATE VIEW {quote_name(str(name))}")
        views.append(SchemaObject("VIEW", str(name), str(row[1]), "", str(row[2]), str(row[3])))
    return views


def read_events(source: Connection, database: str) -> list[RefusedObject]:
    """The database's events, each listed as not copied (the source's account sees only those
    it has the EVENT privilege for)."""
    rows = fetch_all(
        source,
        "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s "
        "ORDER BY EVENT_NAME",
        (database,),
    )
    return [RefusedObject("event", str(name), EVENTS_NOT_COPIED) for (name,) in rows]


# Creating on the target -----------------------------------------------------------------


def require_single_statements(target: Connection) -> None:
    """Refuse a connection that lets one call run several statements (CLIENT.MULTI_STATEMENTS).

    Without that flag the server runs exactly one statement per call, whatever a text holds.
    """
    if int(getattr(target, "client_flag", 0)) & CLIENT.MULTI_STATEMENTS:
        raise CopyError(
            "The connection to the current system's database server allows several statements "
            "per call; the copy does not run the source's definitions on such a connection."
        )


def create_object(target: Connection, item: SchemaObject) -> None:
    """Replace the object on the target with the source's definition (as `prepare_object`
    returned it)."""
    require_single_statements(target)
    execute(target, f"DROP {item.kind} IF EXISTS {quote_name(item.name)}")
    with target.cursor() as cursor:
        if item.sql_mode:
            cursor.execute("SET SESSION sql_mode = %s", (item.sql_mode,))
        cursor.execute(
            "SET SESSION character_set_client = %s, collation_connection = %s",
            (item.character_set_client, item.collation_connection),
        )
        try:
            cursor.execute(item.create_sql)
            _require_definer(cursor)
        finally:
            cursor.execute("SET NAMES utf8mb4")
            cursor.execute("SET SESSION sql_mode = ''")


def _require_definer(cursor: Cursor) -> None:
    """Stop when the server warns that the DEFINER does not exist: nothing made for it runs."""
    cursor.execute("SHOW WARNINGS")
    for _level, code, message in cursor.fetchall():
        if int(code) == NO_SUCH_DEFINER:
            raise CopyError(
                f"The definer account of copied views, triggers and routines does not exist on "
                f"the current system's database server ({message}); they could not run. Run "
                "manage.py migration_accounts (or set MIGRATION_DEFINER to an existing account "
                "with rights on the data database only), then resume the copy."
            )


def create_objects(target: Connection, items: list[SchemaObject]) -> list[RefusedObject]:
    """Create triggers and routines, then views; those the server refuses are listed.

    A view is created after the views it reads from, by trying again those that failed while
    any other succeeds. A lost connection is not a refusal: it raises.
    """
    refused: list[RefusedObject] = []
    for item in items:
        if item.kind == "VIEW":
            continue
        try:
            create_object(target, item)
        except pymysql.MySQLError as error:
            refused.append(_server_refusal(item, error))
    pending = [item for item in items if item.kind == "VIEW"]
    while pending:
        failed: list[tuple[SchemaObject, pymysql.MySQLError]] = []
        for view in pending:
            try:
                create_object(target, view)
            except pymysql.MySQLError as error:
                failed.append((view, error))
        if len(failed) == len(pending):
            refused += [_server_refusal(view, error) for view, error in failed]
            break
        pending = [view for view, _ in failed]
    return refused


def _server_refusal(item: SchemaObject, error: pymysql.MySQLError) -> RefusedObject:
    if is_connection_lost(error):
        raise error
    reason = f"the current system's database server refused it: {error.args[-1]}"
    if error_code(error) == SET_USER_DENIED:
        reason += (
            " (the copier's account needs the SET USER privilege to create objects for the "
            "definer account: run manage.py migration_accounts)"
        )
    elif error_code(error) in BINLOG_NEEDS_SUPER:
        reason += (
            " (binary logging is on here: set log_bin_trust_function_creators = ON on the "
            "current system's database server)"
        )
    return RefusedObject(item.kind.lower(), item.name, reason)
