"""The one base of every error meant for people.

A ``UserError``'s message says what is wrong and what to change; each front end catches it once
(the CLI prints ``buildcage: error: MESSAGE`` and exits 2, the TUI shows a notification) and
never shows a traceback for it. Anything else escaping is a bug in buildcage.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a host condition the user can fix; ``str(exc)`` is the message."""
