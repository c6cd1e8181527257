"""The ``flask scs`` commands: count, list, show, delete and purge sessions."""

from __future__ import annotations

import json
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from .admin import SessionAdmin, SessionInfo
from .errors import SessionError


def _admin() -> SessionAdmin:
    extension = current_app.extensions.get("scs_redis")
    if extension is None:
        raise click.ClickException("flask-scs-redis is not set up on this app (RedisSessions)")
    return extension.admin()  # type: ignore[no-any-return]


def _row(info: SessionInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "user": info.user,
        "created_at": info.created_at.isoformat(timespec="seconds"),
        "last_seen": info.last_seen.isoformat(timespec="seconds"),
        "expires_at": info.expires_at.isoformat(timespec="seconds"),
        "description": info.description,
    }


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


@scs_command.command("count")
@with_appcontext
def count_command() -> None:
    """Print how many sessions are stored."""
    click.echo(_admin().count())


@scs_command.command("list")
@click.option("--user", "user", help="Only this user's sessions (from the per-user index).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@with_appcontext
def list_command(user: str | None, as_json: bool) -> None:
    """List sessions: id, user, created, last seen, expiry. Never tokens."""
    admin = _admin()
    infos = admin.user_sessions(user) if user is not None else (i for i, _ in admin.iter_sessions())
    for info in infos:
        row = _row(info)
        if as_json:
            click.echo(json.dumps(row))
        else:
            click.echo(
                f"{row['id']}  user={row['user'] or '-'}  created={row['created_at']}"
                f"  last_seen={row['last_seen']}  expires={row['expires_at']}"
            )


# Ids are base64url, so one in 32 begins with "-": take it as the id, not an option.
_TAKES_AN_ID = {"ignore_unknown_options": True}


@scs_command.command("show", context_settings=_TAKES_AN_ID)
@click.argument("session_id")
@with_appcontext
def show_command(session_id: str) -> None:
    """Show one session and its values."""
    found = _admin().get(session_id)
    if found is None:
        raise click.ClickException(f"no session {session_id!r}")
    info, values = found
    click.echo(json.dumps(_row(info), indent=2))
    for key, value in values.items():
        click.echo(f"  {key!r}: {value!r}")


@scs_command.command("delete", context_settings=_TAKES_AN_ID)
@click.argument("session_id")
@with_appcontext
def delete_command(session_id: str) -> None:
    """End one session."""
    if not _admin().destroy(session_id):
        raise click.ClickException(f"no session {session_id!r}")
    click.echo(f"deleted {session_id}")


@scs_command.command("purge")
@click.option("--user", "user", help="End every session of this user.")
@click.option("--all", "everything", is_flag=True, help="End every session.")
@click.option("--yes", is_flag=True, help="Confirm --all.")
@with_appcontext
def purge_command(user: str | None, everything: bool, yes: bool) -> None:
    """End every session of a user (--user U), or all of them (--all --yes)."""
    admin = _admin()
    if (user is None) == (not everything):
        raise click.UsageError("give exactly one of --user U and --all")
    if user is not None:
        click.echo(f"ended {admin.destroy_user_sessions(user)} sessions of {user}")
        return
    if not yes:
        raise click.UsageError("--all ends every session of every user; add --yes to confirm")
    # The bar's length need not be exact: count keys, without reading records.
    total = sum(len(keys) for keys in admin.store.scan_keys())
    ended = 0
    with click.progressbar(length=total, label="Ending sessions") as progress:
        for destroyed in admin.destroy_all():
            ended += destroyed
            progress.update(destroyed)
    click.echo(f"ended {ended} sessions")
