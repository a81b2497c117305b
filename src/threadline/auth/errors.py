"""Authentication and authorisation errors.

:class:`AuthError` lives in :mod:`threadline.exceptions` (the client raises it
too, without importing this package); it is re-exported here.

.. code-block:: text

    ThreadlineError
    └── AuthError            401 missing_token / invalid_token / token_expired,
        │                    403 forbidden
        └── UnknownKeyId     401 invalid_token: no key has the token's kid
"""

from __future__ import annotations

from ..exceptions import AuthError

__all__ = ["AuthError", "UnknownKeyId"]


class UnknownKeyId(AuthError):
    """No verification key has the token's ``kid``.

    A caller that can fetch keys (:class:`threadline.auth.jwks.JWKSClient`)
    refreshes them and verifies once more; everyone else answers 401.
    """

    def __init__(self, kid: str) -> None:
        super().__init__(f"unknown key id {kid!r}", "invalid_token")
        self.kid = kid
