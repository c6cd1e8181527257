"""The demo's wording: devices named from their User-Agent, and times said as people say them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from harness import load_script

describe_device = load_script("examples/devices.py").describe_device
flask_app = load_script("examples/flask_app.py")

DEVICES = [
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/126.0.0.0 Safari/537.36",
        "Chrome on Linux",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
        "Firefox on Windows",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "Safari on macOS",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Safari on iPhone",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68",
        "Edge on Windows",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/126.0.0.0 Safari/537.36 OPR/112.0.0.0",
        "Opera on Windows",
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/126.0.0.0 Mobile Safari/537.36",
        "Chrome on Android",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
        "Chrome on iPhone",
    ),
    (
        "Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0",
        "Firefox on Android",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko)"
        " SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
        "Samsung Internet on Android",
    ),
    (
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
        "Firefox on Linux",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36"
        " (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        "Chrome on macOS",
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/126.0.0.0 Safari/537.36",
        "Chrome on ChromeOS",
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Safari on iPad",
    ),
    ("curl/8.5.0", "curl"),
    ("python-requests/2.32.3", "python-requests"),
    ("Python-urllib/3.12", "Python-urllib"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Unknown browser"),
    ("Mozilla/5.0 (X11; Linux x86_64) SomethingNew/1.0", "Unknown browser on Linux"),
    ("", "Unknown browser"),
    ("   ", "Unknown browser"),
    ("x" * 1000, "Unknown browser"),
    ("A" * 100 + "/1.0", "Unknown browser"),
    ("<script>alert(1)</script>/1", "Unknown browser"),
]


@pytest.mark.parametrize(("user_agent", "expected"), DEVICES)
def test_a_device_is_named_as_browser_on_system(user_agent: str, expected: str) -> None:
    assert describe_device(user_agent) == expected


def test_no_user_agent_at_all_is_an_unknown_browser() -> None:
    assert describe_device(None) == "Unknown browser"


def test_a_description_is_short_whatever_the_client_sends() -> None:
    # What is stored is built from fixed names, or a client's name of 30
    # characters at most: never a User-Agent cut short.
    longest = max((describe_device(user_agent) for user_agent, _ in DEVICES), key=len)
    assert len(longest) <= 40
    assert len(describe_device("a" * 29 + "b/1.0 " + "c" * 500)) == 30


NOW = datetime(2025, 5, 14, 9, 30, tzinfo=timezone.utc)

TIMES = [
    (timedelta(0), "just now"),
    (timedelta(seconds=-4), "just now"),
    (timedelta(seconds=4), "in a moment"),
    (timedelta(seconds=-5), "5 seconds ago"),
    (timedelta(seconds=42), "in 42 seconds"),
    (timedelta(seconds=-60), "1 minute ago"),
    (timedelta(seconds=59.6), "in 1 minute"),
    (timedelta(minutes=-5), "5 minutes ago"),
    (timedelta(minutes=1, seconds=29), "in 1 minute"),
    (timedelta(minutes=1, seconds=30), "in 2 minutes"),
    (timedelta(minutes=29, seconds=59), "in 30 minutes"),
    (timedelta(minutes=45), "in 45 minutes"),
    (timedelta(minutes=59, seconds=40), "in 1 hour"),
    (timedelta(hours=-1), "1 hour ago"),
    (timedelta(hours=-2, minutes=-10), "2 hours ago"),
    (timedelta(hours=11, minutes=59, seconds=59), "in 12 hours"),
    (timedelta(hours=23, minutes=50), "in 1 day"),
    (timedelta(days=-1), "1 day ago"),
    (timedelta(days=3), "in 3 days"),
    (timedelta(days=29, hours=23), "in 30 days"),
]


@pytest.mark.parametrize(("offset", "expected"), TIMES)
def test_a_time_is_said_relative_to_now(offset: timedelta, expected: str) -> None:
    assert flask_app.relative_time(NOW + offset, NOW) == expected


def test_the_exact_time_is_in_utc_whatever_the_zone_given() -> None:
    paris = timezone(timedelta(hours=2))
    assert flask_app.exact_utc(datetime(2025, 5, 14, 11, 30, 12, tzinfo=paris)) == (
        "2025-05-14 09:30:12 UTC"
    )
