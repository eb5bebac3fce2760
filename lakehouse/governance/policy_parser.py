"""Policy as code, parsing: MaxCompute's role, grant and data-masking statements into Statements.

sqlglot has no grammar for these, so this is a small hand-written tokenizer and grammar; applying
the statements is policy_apply.py.

Statements (case-insensitive keywords, `;`-separated, `--` comments; see docs/governance.md):

    CREATE ROLE r;                DROP ROLE r;
    ADD USER u;                   REMOVE USER u;
    GRANT CreateInstance, List ON PROJECT p TO ROLE r | USER u;
    GRANT SELECT ON TABLE [ns.]t TO ROLE r | USER u;
    GRANT r TO [USER] u;          REVOKE ... FROM ...   (the same forms)
    SETPROJECT odps.data.masking.policy.enable=true|false;
    CREATE DATA MASKING POLICY [IF NOT EXISTS] name TO ROLE (r[, ...]) USING FUNCTION(args);
    DROP DATA MASKING POLICY [IF EXISTS] name;
    APPLY DATA MASKING POLICY name BIND TO TABLE [ns.]t COLUMN c;
    APPLY DATA MASKING POLICY name UNBIND FROM TABLE [ns.]t COLUMN c;
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lakehouse.governance import store as g
from lakehouse.governance.masking import MaskingError, validate

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
USER_NAME = re.compile(r"^[A-Za-z0-9_$@.\-]+$")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<quoted>`[^`]+`)
      | (?P<word>[A-Za-z0-9_$@.\-]+)
      | (?P<punct>[(),=])
    )""",
    re.VERBOSE,
)


class PolicyError(ValueError):
    """A statement could not be parsed or applied; the message starts with FILE:LINE."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str

    @property
    def value(self) -> str:
        if self.kind == "string":
            quote = self.text[0]
            return self.text[1:-1].replace(quote * 2, quote)
        if self.kind == "quoted":
            return self.text[1:-1]
        return self.text


@dataclass
class Statement:
    line: int
    text: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)


def split_statements(text: str) -> Iterator[tuple[int, str]]:
    """(line of the statement's first character, its text) for each `;`-separated statement,
    with `--` comments removed (quotes respected)."""
    buf: list[str] = []
    start_line: int | None = None
    line = 1
    i = 0
    quote: str | None = None
    while i < len(text):
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
            start_line = start_line or line
            buf.append(ch)
        elif text.startswith("--", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif ch == ";":
            if "".join(buf).strip():
                yield start_line or line, "".join(buf).strip()
            buf, start_line = [], None
        else:
            if not ch.isspace() and start_line is None:
                start_line = line
            buf.append(ch)
        if ch == "\n":
            line += 1
        i += 1
    if quote:
        raise PolicyError(f"{start_line}: unterminated quote {quote}")
    if "".join(buf).strip():
        yield start_line or line, "".join(buf).strip()


class _Cursor:
    def __init__(self, text: str) -> None:
        self.tokens: list[Token] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if not match or match.end() == pos:
                raise ValueError(f"unexpected character {text[pos:].lstrip()[:1]!r}")
            kind = match.lastgroup or "word"
            self.tokens.append(Token(kind, match.group(kind)))
            pos = match.end()
        self.i = 0

    def peek(self, *words: str) -> bool:
        for offset, word in enumerate(words):
            j = self.i + offset
            if j >= len(self.tokens) or self.tokens[j].kind != "word" or self.tokens[j].text.upper() != word:
                return False
        return True

    def accept(self, *words: str) -> bool:
        if self.peek(*words):
            self.i += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise ValueError(f"expected {' '.join(words)}, found {self._here()}")

    def punct(self, char: str) -> bool:
        if (
            self.i < len(self.tokens)
            and self.tokens[self.i].kind == "punct"
            and self.tokens[self.i].text == char
        ):
            self.i += 1
            return True
        return False

    def _here(self) -> str:
        return repr(self.tokens[self.i].text) if self.i < len(self.tokens) else "the end of the statement"

    def word(self, what: str) -> str:
        if self.i >= len(self.tokens) or self.tokens[self.i].kind not in ("word", "quoted"):
            raise ValueError(f"expected {what}, found {self._here()}")
        self.i += 1
        return self.tokens[self.i - 1].value

    def name(self, what: str, pattern: re.Pattern[str] = NAME) -> str:
        value = self.word(what)
        if not pattern.match(value):
            raise ValueError(f"{what} {value!r} is not a valid name")
        return value

    def end(self) -> None:
        if self.i != len(self.tokens):
            raise ValueError(f"unexpected {self._here()} after the end of the statement")


def _literal(token: Token) -> Any:
    if token.kind == "string":
        return token.value
    if re.fullmatch(r"-?\d+", token.text):
        return int(token.text)
    return token.text


def _privileges(cur: _Cursor) -> list[str]:
    names = [cur.word("a privilege")]
    while cur.punct(","):
        names.append(cur.word("a privilege"))
    return names


def _subject(cur: _Cursor) -> tuple[str, str]:
    if cur.accept("ROLE"):
        return "role", cur.name("role name").lower()
    if cur.accept("USER"):
        return "user", cur.name("user name", USER_NAME)
    raise ValueError(f"expected ROLE name or USER name, found {cur._here()}")


def parse_statement(line: int, text: str) -> Statement:
    cur = _Cursor(text)
    st = Statement(line, " ".join(text.split()), "")
    if cur.accept("CREATE", "ROLE"):
        st.action, st.args = "create_role", {"role": cur.name("role name").lower()}
    elif cur.accept("DROP", "ROLE"):
        st.action, st.args = "drop_role", {"role": cur.name("role name").lower()}
    elif cur.accept("ADD", "USER"):
        user = cur.name("user name", USER_NAME)
        if not g.user_key(user) or g.user_key(user) == g.OWNER:
            # '' would be everyone's fallback key; 'owner' is how the audit names the project owner
            raise ValueError(f"user name {user!r} is reserved")
        st.action, st.args = "add_user", {"user": user}
    elif cur.accept("REMOVE", "USER"):
        st.action, st.args = "remove_user", {"user": cur.name("user name", USER_NAME)}
    elif cur.peek("GRANT") or cur.peek("REVOKE"):
        grant = cur.accept("GRANT")
        if not grant:
            cur.expect("REVOKE")
        first = _privileges(cur)
        if cur.accept("ON"):
            if cur.accept("PROJECT"):
                kind, obj = "project", cur.name("project name")
            elif cur.accept("TABLE"):
                kind, obj = "table", cur.word("table name")
            else:
                raise ValueError(f"expected PROJECT or TABLE after ON, found {cur._here()}")
            cur.expect("TO" if grant else "FROM")
            subject = _subject(cur)
            st.action = "grant" if grant else "revoke"
            st.args = {"privileges": first, "object_kind": kind, "object": obj, "subject": subject}
        else:
            if len(first) != 1 or not NAME.match(first[0]):
                raise ValueError("expected `ON PROJECT|TABLE ...` after the privileges, or one role name")
            cur.expect("TO" if grant else "FROM")
            cur.accept("USER")
            user = cur.name("user name", USER_NAME)
            st.action = "grant_role" if grant else "revoke_role"
            st.args = {"role": first[0].lower(), "user": user}
    elif cur.accept("SETPROJECT"):
        key = cur.word("a project setting").lower()
        if not cur.punct("="):
            raise ValueError("expected key=value after SETPROJECT")
        st.action, st.args = "setproject", {"key": key, "value": cur.word("a value").lower()}
    elif cur.accept("CREATE", "DATA", "MASKING", "POLICY"):
        if_not_exists = cur.accept("IF", "NOT", "EXISTS")
        name = cur.name("policy name").lower()
        cur.expect("TO", "ROLE")
        roles = []
        if cur.punct("("):
            roles.append(cur.name("role name").lower())
            while cur.punct(","):
                roles.append(cur.name("role name").lower())
            if not cur.punct(")"):
                raise ValueError(f"expected ) after the roles, found {cur._here()}")
        else:
            roles.append(cur.name("role name").lower())
        cur.expect("USING")
        function = cur.word("a masking function").upper()
        args: list[Any] = []
        if cur.punct("(") and not cur.punct(")"):
            while True:
                if cur.i >= len(cur.tokens) or cur.tokens[cur.i].kind == "punct":
                    raise ValueError(f"expected an argument of {function}, found {cur._here()}")
                args.append(_literal(cur.tokens[cur.i]))
                cur.i += 1
                if cur.punct(")"):
                    break
                if not cur.punct(","):
                    raise ValueError(f"expected , or ) in the arguments of {function}, found {cur._here()}")
        try:
            function, canonical = validate(function, args)
        except MaskingError as exc:
            raise ValueError(str(exc)) from None
        st.action = "create_policy"
        st.args = {
            "policy": name,
            "roles": sorted(set(roles)),
            "function": function,
            "fargs": list(canonical),
            "if_not_exists": if_not_exists,
        }
    elif cur.accept("DROP", "DATA", "MASKING", "POLICY"):
        cur.accept("IF", "EXISTS")
        st.action, st.args = "drop_policy", {"policy": cur.name("policy name").lower()}
    elif cur.accept("APPLY", "DATA", "MASKING", "POLICY"):
        name = cur.name("policy name").lower()
        if cur.accept("BIND", "TO", "TABLE"):
            st.action = "bind"
        elif cur.accept("UNBIND", "FROM", "TABLE"):
            st.action = "unbind"
        else:
            raise ValueError(f"expected BIND TO TABLE or UNBIND FROM TABLE, found {cur._here()}")
        table = cur.word("table name")
        cur.expect("COLUMN")
        st.args = {"policy": name, "table": table, "column": cur.word("column name")}
    elif cur.peek("SHOW"):
        raise ValueError("SHOW statements are not changes: use `lakehouse policy show`")
    else:
        raise ValueError(f"unknown statement {cur._here()}")
    cur.end()
    return st


def parse(text: str, source: str = "<policy>") -> list[Statement]:
    statements = []
    try:
        pieces = list(split_statements(text))
    except PolicyError as exc:
        raise PolicyError(f"{source}:{exc}") from None
    for line, piece in pieces:
        try:
            statements.append(parse_statement(line, piece))
        except ValueError as exc:
            raise PolicyError(f"{source}:{line}: {exc}") from None
    return statements
