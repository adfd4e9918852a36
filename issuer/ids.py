"""Identifiers that operators read and type: client, user, session and refresh-family ids."""

import secrets


def new_id(nbytes: int = 16) -> str:
    """``nbytes`` random bytes as URL-safe base64 without padding, never beginning with ``-``.

    A leading ``-`` (one id in 64) would make the id read as an option on a command line
    (``issuer clients show -Xy…``, ``--session -Xy…``). Drawing again rather than replacing the
    character keeps every allowed id equally likely; the entropy lost is under 0.03 bits.
    """
    while True:
        value = secrets.token_urlsafe(nbytes)
        if not value.startswith("-"):
            return value
