"""Name a device the way an account page does: "Chrome on Linux", "Safari on iPhone".

A few lines of string tests, enough for a demo whose subject is sessions. An
app that needs more (versions, tablets, bots, the long tail of browsers)
would use a maintained parser such as ``ua-parser``, which tracks the
User-Agent strings browsers actually send.

The result is built only from the fixed names below (or, for a client that
is no browser, from its first product token, such as ``curl``), so it is
short, never a User-Agent cut mid-word, and says nothing the client did not.
"""

from __future__ import annotations

import re

UNKNOWN_BROWSER = "Unknown browser"

# First match wins. Edge, Opera and Samsung Internet say "Chrome" and
# "Safari" too, and Chrome says "Safari", so the rarer names come first.
BROWSERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Edge", ("Edg/", "EdgA/", "EdgiOS/", "Edge/")),
    ("Opera", ("OPR/", "OPT/", "OPiOS/", "Opera")),
    ("Samsung Internet", ("SamsungBrowser/",)),
    ("Firefox", ("Firefox/", "FxiOS/")),
    ("Chromium", ("Chromium/",)),
    ("Chrome", ("Chrome/", "CriOS/")),
    ("Internet Explorer", ("MSIE ", "Trident/")),
)

# iPhones and iPads also say "like Mac OS X", and Android says "Linux", so
# they come before macOS and Linux.
SYSTEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("iPhone", ("iPhone",)),
    ("iPad", ("iPad",)),
    ("Android", ("Android",)),
    ("ChromeOS", ("CrOS",)),
    ("Windows", ("Windows",)),
    ("macOS", ("Macintosh", "Mac OS X")),
    ("Linux", ("Linux",)),
)

# A client that is no browser names itself first: "curl/8.5.0", "python-requests/2.32".
PRODUCT = re.compile(r"([A-Za-z][A-Za-z0-9._-]{0,29})/\S")


def _first(user_agent: str, table: tuple[tuple[str, tuple[str, ...]], ...]) -> str | None:
    return next((name for name, marks in table if any(m in user_agent for m in marks)), None)


def describe_device(user_agent: str | None) -> str:
    """Return "Browser on System" for ``user_agent``, or as much of it as is known.

    >>> describe_device("curl/8.5.0")
    'curl'
    >>> describe_device("")
    'Unknown browser'
    """
    user_agent = (user_agent or "").strip()
    browser = _first(user_agent, BROWSERS)
    system = _first(user_agent, SYSTEMS)
    if browser is None and "Safari/" in user_agent:
        # Android's old stock browser says "Safari" and nothing else that helps.
        browser = "Android browser" if system == "Android" else "Safari"
    if browser is None and system is None:
        product = PRODUCT.match(user_agent)
        if product is not None and product.group(1) != "Mozilla":
            return product.group(1)
    name = browser or UNKNOWN_BROWSER
    return f"{name} on {system}" if system else name
