"""A small Flask app that keeps its sessions in Redis with flask-scs-redis.

Run it with ``make demo``, or ``.venv/bin/python examples/flask_app.py``.
Without ``SCS_REDIS_URL`` in the environment it starts a throwaway
redis-server on a free port and stops it on exit; set ``SCS_REDIS_URL`` to use
a Redis of your own instead. ``DEMO_PORT`` changes the HTTP port (5000).

The page shows a per-session visit counter, a login form, a logout button,
flash messages, and when the session ends. It never shows the session token:
the token is the cookie, and whoever holds it holds the session.
"""

from __future__ import annotations

import os
from datetime import timedelta

from flask import Flask, flash, redirect, render_template_string, request, session, url_for
from werkzeug.wrappers import Response

from flask_scs_redis import RedisSessions

from throwaway_redis import redis_url_or_throwaway

PAGE = """<!doctype html>
<title>flask-scs-redis demo</title>
<h1>flask-scs-redis demo</h1>
{% for category, message in get_flashed_messages(with_categories=true) %}
  <p class="flash {{ category }}">[{{ category }}] {{ message }}</p>
{% endfor %}
<p>Visits in this session: {{ visits }}</p>
<p>New session (nothing stored before this request): {{ is_new }}</p>
<p>Session deadline (UTC): {{ deadline.isoformat(timespec="seconds") }}</p>
{% if user %}
  <p>Logged in as <b>{{ user }}</b>.
     <a href="{{ url_for('active_sessions') }}">Active sessions</a></p>
  <form method="post" action="{{ url_for('logout') }}"><button>Log out</button></form>
{% else %}
  <form method="post" action="{{ url_for('login') }}">
    <input name="username" placeholder="your name" required>
    <button>Log in</button>
  </form>
{% endif %}
"""

SESSIONS_PAGE = """<!doctype html>
<title>Active sessions</title>
<h1>Active sessions of {{ user }}</h1>
{% for message in get_flashed_messages() %}<p>{{ message }}</p>{% endfor %}
<table>
  <tr><th>Session</th><th>Client</th><th>Started</th><th>Last change</th><th>Ends</th></tr>
  {% for info in sessions %}
  <tr>
    <td>{{ info.id[:8] }}{% if info.current %} (this one){% endif %}</td>
    <td>{{ info.description or "-" }}</td>
    <td>{{ info.created_at.isoformat(timespec="seconds") }}</td>
    <td>{{ info.last_seen.isoformat(timespec="seconds") }}</td>
    <td>{{ info.expires_at.isoformat(timespec="seconds") }}</td>
  </tr>
  {% endfor %}
</table>
<form method="post" action="{{ url_for('log_out_others') }}">
  <button>Log out other devices</button>
</form>
<p><a href="{{ url_for('index') }}">Back</a></p>
"""


def create_app(redis_url: str) -> Flask:
    """Build the demo app on the Redis at ``redis_url``."""
    app = Flask(__name__)
    app.config.update(
        SCS_REDIS_URL=redis_url,
        # A session ends after 30 minutes without a request that uses it,
        # and 12 hours after it started (or was renewed) whatever happens.
        SCS_IDLE_TIMEOUT=timedelta(minutes=30),
        SCS_LIFETIME=timedelta(hours=12),
        # Flask's own cookie settings are honoured.
        SESSION_COOKIE_SAMESITE="Lax",
    )
    # No SECRET_KEY: the cookie holds only a random token and flash() keeps
    # its messages in the server-side session, so nothing needs signing.
    sessions = RedisSessions(app)

    @app.get("/")
    def index() -> str:
        session["visits"] = session.get("visits", 0) + 1
        return render_template_string(
            PAGE,
            visits=session["visits"],
            user=session.get("_user_id"),
            is_new=session.new,
            deadline=session.deadline,
        )

    @app.post("/login")
    def login() -> Response:
        username = request.form.get("username", "").strip()
        if not username:
            flash("Please enter a name.", "error")
            return redirect(url_for("index"))
        # Session fixation: an attacker may have planted a token of their own
        # in this browser before login. renew() moves the session to a fresh
        # token at the end of this request and deletes the old record, so a
        # token known before login is worthless after it.
        session.renew()
        # "_user_id" is where Flask-Login keeps the user, and what SCS_USER_KEY
        # indexes by default: it is what makes "Active sessions" possible.
        session["_user_id"] = username
        # Describing the client is the app's choice; nothing is collected otherwise.
        session.description = request.user_agent.string[:80] or None
        flash(f"Welcome, {username}!", "success")
        return redirect(url_for("index"))

    @app.post("/logout")
    def logout() -> Response:
        # destroy() deletes the record in Redis now and removes the cookie, so
        # the old token is dead even if someone copied it. No flash() here: a
        # value written after destroy() would start a brand-new session (and
        # set a new cookie) just to carry the message.
        session.destroy()
        return redirect(url_for("index"))

    @app.get("/sessions")
    def active_sessions() -> str | Response:
        user = session.get("_user_id")
        if user is None:
            return redirect(url_for("index"))
        return render_template_string(
            SESSIONS_PAGE, user=user, sessions=sessions.user_sessions(user)
        )

    @app.post("/sessions/log-out-others")
    def log_out_others() -> Response:
        ended = sessions.destroy_user_sessions(session["_user_id"], keep_current=True)
        flash(f"Logged out {ended} other session(s).", "success")
        return redirect(url_for("active_sessions"))

    return app


def serve(app: Flask) -> None:
    """Serve ``app`` on 127.0.0.1 until Ctrl-C."""
    port = int(os.environ.get("DEMO_PORT", "5000"))
    # No reloader: it would run this script again in a child process, which
    # would start a second throwaway Redis.
    app.run(host="127.0.0.1", port=port, use_reloader=False)


def main() -> None:
    with redis_url_or_throwaway() as redis_url:
        serve(create_app(redis_url))


if __name__ == "__main__":
    main()
