"""Ordinary mistakes as one line, not a traceback: the ``portcullis`` command's error classes and the
translation of environment failures (database unreachable or missing, a secret that does not open the keys).

``main`` prints a CliError as ``portcullis: <message>`` and exits with its code: 2 for usage (an argument
to fix), 1 for the environment (a server, a file or a setting to fix), 130 when interrupted. ``--debug``
prints the traceback as well.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from app.oidc.keys import KeyDecryptionError

EXIT_USAGE = 2
EXIT_ENVIRONMENT = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class CliError(Exception):
    """A failure the operator can act on: one line on stderr."""

    exit_code = EXIT_ENVIRONMENT


class UsageError(CliError):
    """A bad argument or option."""

    exit_code = EXIT_USAGE


class EnvironmentProblem(CliError):
    """Something around the command is wrong: a server down, a missing database, a wrong secret."""

    exit_code = EXIT_ENVIRONMENT


_SECRET_QUERY_WORDS = ("pass", "secret", "token", "key")  # password=, sslpassword=, sslkey=, ...


def shown_url(url: str) -> str:
    """The database URL with its password masked and the query options that look secret left out."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(unparsable URL)"
    secret = [name for name in parsed.query if any(word in name.lower() for word in _SECRET_QUERY_WORDS)]
    return parsed.difference_update_query(secret).render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn the failures of opening the database and its keys into EnvironmentProblem (cause kept)."""
    where = shown_url(url)
    try:
        yield
    except KeyDecryptionError as exc:
        raise EnvironmentProblem(
            f"{exc}: set PORTCULLIS_SECRET_KEY to the secret this database's keys were stored with"
        ) from exc
    except DBAPIError as exc:
        reason = _first_line(exc.orig) if exc.orig is not None else _first_line(exc)
        if "does not exist" in reason and "database" in reason:
            name = make_url(url).database or "?"
            raise EnvironmentProblem(
                f"{reason} at {where}: create it (e.g. `createdb {name}`) or fix PORTCULLIS_DATABASE_URL"
            ) from exc
        raise EnvironmentProblem(
            f"the database at {where} failed: {reason} (check PORTCULLIS_DATABASE_URL)"
        ) from exc
    except (sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:  # the hot path's drivers
        raise EnvironmentProblem(
            f"the database at {where} failed: {_first_line(exc)} (check PORTCULLIS_DATABASE_URL)"
        ) from exc
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        raise EnvironmentProblem(f"{exc.filename}: {exc.strerror}") from exc
    except OSError as exc:  # refused, unknown host, timeout: asyncpg raises these before any SQL
        raise EnvironmentProblem(
            f"cannot connect to the database at {where} ({_first_line(exc)}): is it running? "
            "(PORTCULLIS_DATABASE_URL)"
        ) from exc
