"""Errors a user can cause and fix: one sentence naming the input and the fix.

The CLI prints the message of an :class:`InputError` on stderr and exits non-zero, without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """A problem with something the user passed (a path, a file, a store location)."""
