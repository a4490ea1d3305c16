"""Accounts, roles, station assignments and console sessions, in the database (:mod:`vigie.core.db`).

Roles: ``operator`` sees and acts on the incidents of the stations assigned to them;
``supervisor`` is an operator who may also act on escalated incidents; ``auditor`` reads the
register and never sees an image; ``admin`` manages accounts and sees no image unless also given
a viewing role. Modules: :mod:`.models` (tables), :mod:`.passwords` (argon2id, policy),
:mod:`.store` (accounts, logins, lockout), :mod:`.sessions` (console sessions),
:mod:`.outbox` (audit entries written with each change, published afterwards).
"""

from vigie.accounts.models import ROLES, VIEWING_ROLES
from vigie.accounts.outbox import flush_outbox
from vigie.accounts.passwords import WeakPassword
from vigie.accounts.sessions import ConsoleUser, SessionInfo, SessionStore
from vigie.accounts.store import Account, AccountError, AccountStore, LockoutPolicy, LoginResult, UnknownUser

__all__ = ["ROLES", "VIEWING_ROLES", "Account", "AccountError", "AccountStore", "ConsoleUser", "LockoutPolicy",
           "LoginResult", "SessionInfo", "SessionStore", "UnknownUser", "WeakPassword", "flush_outbox"]
