"""The ``flask scs`` commands: check the deployment; count, list, show, delete and purge sessions.

Exit statuses: 0 done; 1 an error (no such session, Redis down, a failed
check); 2 wrong usage (an unknown option, something that is not a session
id, ``purge --all`` with no terminal to confirm at and no ``--yes``).
"""

from __future__ import annotations

import heapq
import itertools
import json
import re
import sys
from collections.abc import Iterable
from operator import attrgetter
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from .admin import SessionAdmin, SessionInfo
from .checks import check_store
from .errors import SessionError
from .keys import is_id

#: The fewest characters of an id that ``show`` takes.
MIN_ID_PREFIX = 8
_MAX_CANDIDATES = 10
_ID_CHARACTERS = re.compile(r"[A-Za-z0-9_-]+")  # base64url, as ids are
_SORT_FIELDS = {"created": "created_at", "last-seen": "last_seen", "expires": "expires_at"}
# The columns of ``list``: header, field, width (the last takes what it needs).
_COLUMNS = [("ID", "id", 43), ("CREATED", "created_at", 25), ("LAST SEEN", "last_seen", 25)]
_COLUMNS += [("EXPIRES", "expires_at", 25), ("USER", "user", 0)]


def _extension() -> Any:
    extension = current_app.extensions.get("scs_redis")
    if extension is None:
        raise click.ClickException("flask-scs-redis is not set up on this app (RedisSessions)")
    return extension


def _admin() -> SessionAdmin:
    return _extension().admin()  # type: ignore[no-any-return]


def _row(info: SessionInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "user": info.user,
        "created_at": info.created_at.isoformat(timespec="seconds"),
        "last_seen": info.last_seen.isoformat(timespec="seconds"),
        "expires_at": info.expires_at.isoformat(timespec="seconds"),
        "description": info.description,
    }


def _line(cells: dict[str, Any]) -> str:
    return "  ".join(f"{cells[field]!s:<{width}}" for _, field, width in _COLUMNS).rstrip()


class _Group(click.Group):
    """Turn store failures into a clear message and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SessionError as error:
            raise click.ClickException(str(error)) from error


@click.group("scs", cls=_Group)
def scs_command() -> None:
    """Administer the server-side sessions in Redis."""


@scs_command.command("check")
@with_appcontext
def check_command() -> None:
    """Check the deployment: connection, password, Redis version, ACL, replicas.

    Prints one line a check, "ok" or "FAIL" and why; exits 1 if any failed.
    """
    results = check_store(_extension().store())
    for result in results:
        click.echo(str(result))
    if not all(result.ok for result in results):
        raise click.exceptions.Exit(1)


@scs_command.command("count")
@click.option("--json", "as_json", is_flag=True, help='Print {"count": N}.')
@with_appcontext
def count_command(as_json: bool) -> None:
    """Print how many sessions are stored (it reads every record)."""
    count = _admin().count()
    click.echo(json.dumps({"count": count}) if as_json else count)


@scs_command.command("list")
@click.option("--user", "user", help="Only this user's sessions (from the per-user index).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, no header.")
@click.option(
    "--sort", type=click.Choice(list(_SORT_FIELDS)), help="Order by this, earliest first."
)
@click.option("--reverse", is_flag=True, help="With --sort: latest first.")
@click.option("--limit", type=click.IntRange(min=0), help="Print this many at most.")
@with_appcontext
def list_command(
    user: str | None, as_json: bool, sort: str | None, reverse: bool, limit: int | None
) -> None:
    """List sessions: id, created, last seen, expiry, user. Never tokens.

    Rows print as Redis is scanned, so memory stays flat however many there
    are. --sort must see every session first: with --limit N it keeps the N
    best so far; without, it holds every row.
    """
    admin = _admin()
    infos: Iterable[SessionInfo] = (
        admin.user_sessions(user) if user is not None else (i for i, _ in admin.iter_sessions())
    )
    if sort is not None:
        key = attrgetter(_SORT_FIELDS[sort])
        if limit is None:
            infos = sorted(infos, key=key, reverse=reverse)
        else:
            infos = (heapq.nlargest if reverse else heapq.nsmallest)(limit, infos, key=key)
    elif limit is not None:
        infos = itertools.islice(infos, limit)
    if not as_json:
        click.echo(_line({field: header for header, field, _ in _COLUMNS}))
    for info in infos:
        row = _row(info)
        click.echo(json.dumps(row) if as_json else _line({**row, "user": row["user"] or "-"}))


# Ids are base64url, so one in 32 begins with "-": take it as the id, not an option.
_TAKES_AN_ID = {"ignore_unknown_options": True}


def _not_an_id(value: str) -> click.BadParameter:
    return click.BadParameter(f"not a session id: {value!r}", param_hint="'SESSION_ID'")


def _whole_id(admin: SessionAdmin, given: str) -> str:
    """The id that ``given`` is, or begins: refuse what cannot begin one, or begins several."""
    if len(given) > 43 or not _ID_CHARACTERS.fullmatch(given):
        raise _not_an_id(given)
    if is_id(given):
        return given
    if len(given) < MIN_ID_PREFIX:
        raise click.BadParameter(
            f"give at least {MIN_ID_PREFIX} characters of the id, not {given!r}",
            param_hint="'SESSION_ID'",
        )
    matches = admin.ids_starting_with(given)
    if len(matches) > 1:
        shown = ", ".join(matches[:_MAX_CANDIDATES])
        if len(matches) > _MAX_CANDIDATES:
            shown += f" and {len(matches) - _MAX_CANDIDATES} more"
        raise click.ClickException(
            f"ambiguous id {given!r}: {len(matches)} sessions begin with it: {shown}"
        )
    if not matches:
        raise click.ClickException(f"no session {given!r}")
    return matches[0]


@scs_command.command("show", context_settings=_TAKES_AN_ID)
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: list's fields, and values.")
@with_appcontext
def show_command(session_id: str, as_json: bool) -> None:
    """Show one session and its values; SESSION_ID may be its first 8 characters or more.

    Values are shown as Python reprs (in JSON too, as strings), so every
    storable type shows, and shows its type. Sealed values (encryption at
    rest) are not shown: only the session's token opens them.
    """
    admin = _admin()
    found = admin.get(_whole_id(admin, session_id))
    if found is None:
        raise click.ClickException(f"no session {session_id!r}")
    info, values = found
    shown_values = {repr(key): repr(value) for key, value in values.items()}
    if as_json:
        click.echo(json.dumps({**_row(info), "values": None if info.sealed else shown_values}))
        return
    for field, value in _row(info).items():
        click.echo(f"{field:<13}{'-' if value is None else value}")
    if info.sealed:
        click.echo("values       sealed: only the session's own cookie opens them")
        return
    click.echo("values")
    for key, value in shown_values.items():
        click.echo(f"  {key}: {value}")


@scs_command.command("delete", context_settings=_TAKES_AN_ID)
@click.argument("session_id")
@with_appcontext
def delete_command(session_id: str) -> None:
    """End one session; SESSION_ID is its whole id."""
    if not is_id(session_id):  # a lock's or an index's key, or garbage: delete nothing
        raise _not_an_id(session_id)
    if not _admin().destroy(session_id):
        raise click.ClickException(f"no session {session_id!r}")
    click.echo(f"deleted {session_id}")


@scs_command.command("purge")
@click.option("--user", "user", help="End every session of this user.")
@click.option("--all", "everything", is_flag=True, help="End every session (asks first).")
@click.option("--yes", is_flag=True, help="Do not ask; needed for --all without a terminal.")
@with_appcontext
def purge_command(user: str | None, everything: bool, yes: bool) -> None:
    """End every session of a user (--user U), or all of them (--all)."""
    admin = _admin()
    if (user is None) == (not everything):
        raise click.UsageError("give exactly one of --user U and --all")
    if user is not None:
        click.echo(f"ended {admin.destroy_user_sessions(user)} sessions of {user}")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "--all ends every session of every user, and there is no terminal to"
                " confirm at: add --yes"
            )
        click.confirm("End every session of every user?", abort=True)
    # The bar's length need not be exact: count keys, without reading records.
    total = sum(len(keys) for keys in admin.store.scan_keys())
    ended = 0
    with click.progressbar(length=total, label="Ending sessions") as progress:
        for destroyed in admin.destroy_all():
            ended += destroyed
            progress.update(destroyed)
    click.echo(f"ended {ended} sessions")
