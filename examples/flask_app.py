"""A small Flask app that keeps its sessions in Redis with flask-scs-redis.

Run it with ``make demo``, or ``.venv/bin/python examples/flask_app.py``.
Without ``SCS_REDIS_URL`` in the environment it starts a throwaway
redis-server on a free port and stops it on exit; set ``SCS_REDIS_URL`` to use
a Redis of your own instead. ``DEMO_PORT`` changes the HTTP port (5000).

Logging in is Flask-Login's, with "Remember me"; any name will do, as this is
a demo. The main page shows a per-session visit counter, flash messages and
when the session ends; the Active sessions page lists the devices the user is
logged in on and logs them out. Neither ever shows a session token: the token
is the cookie, and whoever holds it holds the session.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Flask, abort, flash, redirect, render_template, request, session, url_for
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from jinja2 import DictLoader
from werkzeug.wrappers import Response

from flask_scs_redis import RedisSessions, SessionInfo, signals

from devices import describe_device
from throwaway_redis import redis_url_or_throwaway

#: Where the demo writes its audit log of sessions (to the terminal).
AUDIT = logging.getLogger("demo.audit")

TEMPLATES = {
    "style.css": """
  * { box-sizing: border-box; }
  body { margin: 0; background: #f4f5f7; color: #1f2328; line-height: 1.5;
         font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  main { max-width: 46rem; margin: 3rem auto; padding: 0 1rem; }
  h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
  a { color: #0b5cad; }
  .muted { color: #656d76; }
  .small { font-size: .875rem; }
  .card { background: #fff; border: 1px solid #d8dee4; border-radius: 10px;
          padding: 1.25rem 1.5rem; margin: 1rem 0; }
  .card h2 { font-size: 1rem; margin: 0 0 .75rem; }
  .flash { border-radius: 8px; padding: .6rem 1rem; margin: 1rem 0; border: 1px solid; }
  .flash.success { background: #dafbe1; border-color: #aceebb; }
  .flash.error { background: #ffebe9; border-color: #ffcecb; }
  .flash.info, .flash.message { background: #ddf4ff; border-color: #b6e3ff; }
  form { margin: 0; }
  form.inline { display: inline; }
  label { display: block; margin: .5rem 0; }
  input[type=text] { font: inherit; padding: .45rem .6rem; width: 100%;
                     border: 1px solid #d0d7de; border-radius: 6px; }
  button, .button { font: inherit; font-size: .9rem; padding: .4rem .9rem; cursor: pointer;
                    white-space: nowrap;
                    border-radius: 6px; border: 1px solid #d0d7de; background: #f6f8fa;
                    color: #1f2328; text-decoration: none; display: inline-block; }
  button:hover, .button:hover { background: #eef1f4; }
  button.primary { background: #1f883d; border-color: #1a7f37; color: #fff; }
  button.primary:hover { background: #1a7f37; }
  button.danger { color: #cf222e; }
  button.danger:hover { background: #cf222e; border-color: #cf222e; color: #fff; }
  .actions { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; margin-top: 1rem; }
  ul.devices { list-style: none; padding: 0; margin: 0; }
  li.device { display: flex; justify-content: space-between; align-items: center; gap: 1rem;
              padding: 1rem 0; border-top: 1px solid #eaeef2; }
  li.device:first-child { border-top: 0; padding-top: 0; }
  li.device:last-child { padding-bottom: 0; }
  li.device form { flex-shrink: 0; }
  .device-name { font-weight: 600; }
  .when { white-space: nowrap; }
  .badge { font-size: .75rem; font-weight: 600; color: #1a7f37; background: #dafbe1;
           border-radius: 999px; padding: .1rem .55rem; margin-left: .4rem;
           vertical-align: middle; }
  [title] { text-decoration: underline dotted #afb8c1; text-underline-offset: 3px; }
""",
    "times.html": """{% macro at(moment) -%}
  {# A time in words, and exactly on hover. #}
  <span title="{{ moment|utc }}">{{ moment|relative(now) }}</span>
{%- endmacro %}""",
    "base.html": """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{% endblock %}</title>
<style>{% include "style.css" %}</style>
<main>
{% block heading %}{% endblock %}
{% for category, message in get_flashed_messages(with_categories=true) %}
  <p class="flash {{ category }}">{{ message }}</p>
{% endfor %}
{% block content %}{% endblock %}
</main>
</html>
""",
    "index.html": """{% extends "base.html" %}
{% from "times.html" import at with context %}
{% block title %}flask-scs-redis demo{% endblock %}
{% block heading %}
  <h1>flask-scs-redis demo</h1>
  <p class="muted">Server-side Flask sessions in Redis, with Flask-Login.</p>
{% endblock %}
{% block content %}
<section class="card">
  {% if current_user.is_authenticated %}
    <h2>Account</h2>
    <p>Logged in as <b>{{ current_user.get_id() }}</b>.</p>
    <p class="muted small">This device: {{ session.description or "Unknown browser" }}
      {%- if session.permanent %} &middot; remembered{% endif %}</p>
    <div class="actions">
      <a class="button" href="{{ url_for('active_sessions') }}">Active sessions</a>
      <form method="post" action="{{ url_for('logout') }}"><button>Log out</button></form>
    </div>
  {% else %}
    <h2>Log in</h2>
    <form method="post" action="{{ url_for('login') }}">
      <label>Name <input type="text" name="username" placeholder="any name will do"
                         autocomplete="username" required></label>
      <label><input type="checkbox" name="remember"> Remember me
        <span class="muted small">(stay logged in for {{ remember_days }} days)</span></label>
      <div class="actions"><button class="primary">Log in</button></div>
    </form>
  {% endif %}
</section>
<section class="card">
  <h2>This session</h2>
  <p>Visits in this session: {{ visits }}</p>
  <p class="muted small">
    It ends {{ at(expires) }}
    {%- if deadline > expires %} if you do nothing, and
      {{ at(deadline) }} at the latest
    {%- endif %}.
  </p>
</section>
{% endblock %}
""",
    "sessions.html": """{% extends "base.html" %}
{% from "times.html" import at with context %}
{% block title %}Active sessions{% endblock %}
{% block heading %}
  <p class="small"><a href="{{ url_for('index') }}">&larr; Back</a></p>
  <h1>Active sessions</h1>
  <p class="muted">The devices where <b>{{ current_user.get_id() }}</b> is logged in.
    If you don't recognise one, log it out.</p>
{% endblock %}
{% block content %}
<section class="card">
  <ul class="devices">
  {% for info in devices %}
    <li class="device{% if info.current %} current{% endif %}">
      <div>
        <div class="device-name">{{ info.description or "Unknown browser" }}
          {%- if info.current %}<span class="badge">This device</span>{% endif %}</div>
        <div class="muted small">
          <span class="when">started
            {{ at(info.created_at) }}</span>
          &middot;
          <span class="when">last active
          {%- if info.current %} {{ at(now) }}
          {%- else %} {{ at(info.last_seen) }}
          {%- endif %}</span>
          &middot;
          <span class="when">ends
            {{ at(info.expires_at) }}</span>
        </div>
      </div>
      {% if not info.current %}
        <form method="post" action="{{ url_for('log_out_device', session_id=info.id) }}">
          <button class="danger">Log out</button>
        </form>
      {% endif %}
    </li>
  {% endfor %}
  </ul>
</section>
{% if devices|length > 1 %}
  <form method="post" action="{{ url_for('log_out_others') }}">
    <button class="danger">Log out other devices</button>
  </form>
{% else %}
  <p class="muted">You are not logged in on any other device.</p>
{% endif %}
{% endblock %}
""",
}

UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def relative_time(when: datetime, now: datetime) -> str:
    """Say when ``when`` is, seen from ``now``: "5 minutes ago", "in 2 days", "just now".

    In the largest unit that fits, rounded to the nearest: a session ending in
    29 minutes 59 seconds ends "in 30 minutes", and one of 59 minutes 40
    seconds "in 1 hour". Under 5 seconds away is "just now", or "in a moment".
    """
    seconds = (when - now).total_seconds()
    if abs(seconds) < 5:
        return "in a moment" if seconds > 0 else "just now"
    index = next(i for i, (_, size) in enumerate(UNITS) if abs(seconds) >= size)
    unit, size = UNITS[index]
    count = int(abs(seconds) / size + 0.5)
    if index > 0 and count * size >= UNITS[index - 1][1]:  # 60 minutes is 1 hour
        unit, count = UNITS[index - 1][0], 1
    amount = f"{count} {unit}{'' if count == 1 else 's'}"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def exact_utc(when: datetime) -> str:
    """The exact time, for a ``title``: "2025-05-14 09:30:12 UTC"."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class User(UserMixin):
    """A user known only by the name they typed: this is a demo, with no passwords."""

    def __init__(self, name: str) -> None:
        self.id = name


def create_app(redis_url: str) -> Flask:
    """Build the demo app on the Redis at ``redis_url``."""
    app = Flask(__name__)
    app.config.update(
        SCS_REDIS_URL=redis_url,
        # A session ends after 30 minutes without a request that uses it,
        # and 12 hours after it started (or was renewed) whatever happens;
        # unless remembered, as "Remember me" gives a session its own lifetime.
        SCS_IDLE_TIMEOUT=timedelta(minutes=30),
        SCS_LIFETIME=timedelta(hours=12),
        # How long "Remember me" keeps a user logged in on a device.
        REMEMBER_COOKIE_DURATION=timedelta(days=30),
        # A remembered session lives for weeks: it gets a new token every
        # 15 minutes, and a request still in flight with the old one has 10 s.
        SCS_ROTATE_EVERY=timedelta(minutes=15),
        # Flask's own cookie settings are honoured.
        SESSION_COOKIE_SAMESITE="Lax",
    )
    # No SECRET_KEY: the cookie holds only a random token, flash() keeps its
    # messages in the server-side session, and Flask-Login's remember cookie,
    # the one thing it would sign, gives way to the session itself (see login).
    app.jinja_loader = DictLoader(TEMPLATES)
    app.add_template_filter(relative_time, "relative")
    app.add_template_filter(exact_utc, "utc")
    sessions = RedisSessions(app)
    log_session_events(app)

    login_manager = LoginManager()
    login_manager.init_app(app)
    login_manager.login_view = "index"
    login_manager.login_message = "Please log in first."
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def load_user(user_id: str) -> User:
        return User(user_id)

    @app.get("/")
    def index() -> str:
        session["visits"] = session.get("visits", 0) + 1
        return render_template(
            "index.html",
            visits=session["visits"],
            now=datetime.now(timezone.utc),
            expires=session.expires,
            deadline=session.deadline,
            remember_days=app.config["REMEMBER_COOKIE_DURATION"].days,
        )

    @app.post("/login")
    def login() -> Response:
        username = request.form.get("username", "").strip()
        if not username:
            flash("Please enter a name.", "error")
            return redirect(url_for("index"))
        # Flask-Login keeps the user in session["_user_id"], which is what
        # SCS_USER_KEY indexes by default: it makes "Active sessions" possible.
        # As the user changes, the session moves to a fresh token at the end of
        # this request (SCS_RENEW_ON_LOGIN), so a token planted in this browser
        # before login (session fixation) is worthless after it. With "Remember
        # me" the session itself lasts REMEMBER_COOKIE_DURATION, with no idle
        # timeout, in a cookie that outlives the browser; Flask-Login sets no
        # cookie of its own, so "Log out other devices" ends it like any other.
        login_user(User(username), remember="remember" in request.form)
        # Describing the client is the app's choice; nothing is collected otherwise.
        session.description = describe_device(request.headers.get("User-Agent"))
        flash(f"Welcome, {username}!", "success")
        return redirect(url_for("index"))

    @app.post("/logout")
    def logout() -> Response:
        # logout_user() ends the session: its record in Redis is deleted now
        # and the cookie removed, so the old token is dead even if someone
        # copied it. The message below travels in a new session.
        logout_user()
        flash("You are logged out.", "info")
        return redirect(url_for("index"))

    def devices() -> list[SessionInfo]:
        """The user's sessions: this device first, then the most recently active."""
        found = sessions.user_sessions(current_user.get_id())
        return sorted(found, key=lambda info: (not info.current, -info.last_seen.timestamp()))

    @app.get("/sessions")
    @login_required
    def active_sessions() -> str:
        return render_template("sessions.html", devices=devices(), now=datetime.now(timezone.utc))

    @app.post("/sessions/<session_id>/log-out")
    @login_required
    def log_out_device(session_id: str) -> Response:
        # Only another session of this user: a session id from elsewhere, or
        # this device's own (the main page logs it out), is no business of this form.
        device = next((i for i in devices() if i.id == session_id and not i.current), None)
        if device is None:
            abort(404)
        sessions.destroy(session_id)
        flash(f"Logged out {device.description or 'the unknown browser'}.", "success")
        return redirect(url_for("active_sessions"))

    @app.post("/sessions/log-out-others")
    @login_required
    def log_out_others() -> Response:
        ended = sessions.destroy_user_sessions(current_user.get_id(), keep_current=True)
        if ended:
            flash(f"Logged out {ended} other device{'' if ended == 1 else 's'}.", "success")
        else:
            flash("No other device was logged in.", "info")
        return redirect(url_for("active_sessions"))

    return app


def log_session_events(app: Flask) -> None:
    """Write each session's creation, renewal and end to the "demo.audit" log.

    The id is the one the Active sessions page shows, never the token.
    """

    def receiver(event: str) -> Callable[..., None]:
        def log(sender: Flask, session_id: str, user: str | None, reason: str, **_: Any) -> None:
            AUDIT.info("session %s: id %s… user %s (%s)", event, session_id[:12], user, reason)

        return log

    receivers = app.extensions["demo.audit"] = []  # they live as long as the app
    for event, signal in [
        ("created", signals.session_created),
        ("renewed", signals.session_renewed),
        ("destroyed", signals.session_destroyed),
    ]:
        receivers.append(receiver(event))
        signal.connect(receivers[-1], sender=app)


def serve(app: Flask) -> None:
    """Serve ``app`` on 127.0.0.1 until Ctrl-C."""
    port = int(os.environ.get("DEMO_PORT", "5000"))
    # No reloader: it would run this script again in a child process, which
    # would start a second throwaway Redis.
    app.run(host="127.0.0.1", port=port, use_reloader=False)


def main() -> None:
    AUDIT.setLevel(logging.INFO)
    AUDIT.addHandler(logging.StreamHandler())
    with redis_url_or_throwaway() as redis_url:
        serve(create_app(redis_url))


if __name__ == "__main__":
    main()
