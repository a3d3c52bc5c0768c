"""Database conversations written once, run by a sync or an async connection.

The store and the ledger describe each operation as a generator of :class:`Sql`
statements (and :class:`Transaction` blocks of them): it yields a statement, receives
its result (or has the statement's error raised at the ``yield``), and returns the
operation's answer. :func:`drive` runs such a generator on a psycopg ``Connection``,
:func:`adrive` on an ``AsyncConnection``; so the SQL, the order of statements and the
handling of their results exist once for ``count`` and ``acount`` alike.

A generator that returns before its first statement (an empty cache, a check that
fails) needs no connection at all: :attr:`Conversation.finished` tells the caller so.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

#: What a statement's step evaluates to: its first row, all rows, the number of rows it
#: changed, or nothing.
Fetch = Literal["one", "all", "rowcount", "none"]


@dataclass(frozen=True, slots=True)
class Sql:
    """One statement of a conversation; the ``yield`` evaluates to what ``fetch`` names."""

    query: str
    params: Sequence[Any] = ()
    fetch: Fetch = "none"


@dataclass(frozen=True, slots=True)
class Transaction:
    """Nested steps run in one transaction: committed, or rolled back if they raise.
    The ``yield`` evaluates to what the nested steps return."""

    steps: Steps[Any]


Steps = Generator[Sql | Transaction, Any, T]


def statements(*sql: Sql) -> Steps[None]:
    """Steps that run ``sql`` in order and return nothing (e.g. for a :class:`Transaction`)."""
    # Not ``yield from sql``: that would send each statement's result into the tuple.
    for statement in sql:  # noqa: UP028
        yield statement


class Conversation:
    """A :data:`Steps` generator being run. Iterating it gives its statements; the
    driver answers each with :meth:`answer` or :meth:`fail` before asking for the next.
    The part before the first statement runs at construction."""

    def __init__(self, steps: Steps[Any]) -> None:
        self._steps = steps
        self._reply: Any = None
        self._error: Exception | None = None
        self._asked = False
        self.result: Any = None
        self._op = self._resume()

    @property
    def finished(self) -> bool:
        """True once the steps have returned; before any statement, no connection is needed."""
        return self._op is None

    def _resume(self) -> Sql | Transaction | None:
        reply, error = self._reply, self._error
        self._reply, self._error = None, None
        try:
            return self._steps.send(reply) if error is None else self._steps.throw(error)
        except StopIteration as done:
            self.result = done.value
            return None

    def __iter__(self) -> Conversation:
        return self

    def __next__(self) -> Sql | Transaction:
        if self._asked:
            self._op = self._resume()
        self._asked = True
        if self._op is None:
            raise StopIteration
        return self._op

    def answer(self, value: Any) -> None:
        """The result of the statement just run."""
        self._reply = value

    def fail(self, error: Exception) -> None:
        """The error of the statement just run: raised inside the steps, which may handle it."""
        self._error = error


def _result(cursor: psycopg.Cursor[Any], fetch: Fetch) -> Any:
    if fetch in ("one", "all"):
        return cursor.fetchone() if fetch == "one" else cursor.fetchall()
    return cursor.rowcount if fetch == "rowcount" else None


async def _aresult(cursor: psycopg.AsyncCursor[Any], fetch: Fetch) -> Any:
    if fetch in ("one", "all"):
        return await (cursor.fetchone() if fetch == "one" else cursor.fetchall())
    return cursor.rowcount if fetch == "rowcount" else None


def drive(conn: psycopg.Connection[Any], talk: Conversation) -> Any:
    """Run a conversation on a sync connection; return what its steps returned."""
    for op in talk:
        try:
            if isinstance(op, Transaction):
                with conn.transaction():
                    talk.answer(drive(conn, Conversation(op.steps)))
            else:
                talk.answer(_result(conn.execute(op.query, op.params), op.fetch))
        except Exception as exc:  # raised inside the steps, at the statement that failed
            talk.fail(exc)
    return talk.result


async def adrive(conn: psycopg.AsyncConnection[Any], talk: Conversation) -> Any:
    """:func:`drive` for an async connection."""
    for op in talk:
        try:
            if isinstance(op, Transaction):
                async with conn.transaction():
                    talk.answer(await adrive(conn, Conversation(op.steps)))
            else:
                cursor = await conn.execute(op.query, op.params)
                talk.answer(await _aresult(cursor, op.fetch))
        except Exception as exc:
            talk.fail(exc)
    return talk.result


__all__ = ["Conversation", "Fetch", "Sql", "Steps", "Transaction", "adrive", "drive", "statements"]
