"""Passwords: argon2id hashing (argon2-cffi), the strength policy, one-time passwords.

The policy refuses, with a message that says why:

- fewer than :data:`MIN_LENGTH` (12) characters, or more than :data:`MAX_LENGTH`;
- a password that contains the user name (any case);
- a common password, also with digits or symbols added around it ("Password2024!");
- too little variety: fewer than three of lower case, upper case, digits and symbols
  (passphrases of :data:`PASSPHRASE_LENGTH` characters or more are exempt), or fewer than
  six different characters.
"""

from __future__ import annotations

import re
import secrets
import string
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 256
PASSPHRASE_LENGTH = 20
#: Frequent passwords and their usual stems (lower case); a password whose letters, digits and symbols
#: at both ends stripped give one of these is refused.
COMMON = frozenset("""
password passw0rd p@ssword p@ssw0rd motdepasse azerty azertyuiop qwerty qwertyuiop qwertz abc123 abcdef
letmein welcome welcome1 admin administrator root toor changeme secret iloveyou monkey dragon football
baseball soleil bonjour doudou loulou chouchou princesse nicolas marseille vigie camera operator supervisor
auditor station trustno1 master sunshine shadow superman batman starwars whatever freedom hello hello123
login default guest test testing 123456 1234567 12345678 123456789 1234567890 111111 000000 123123 654321
qwerty123 azerty123 password1 password123 admin123 letmein123 iloveyou1 1q2w3e4r 1qaz2wsx zaq12wsx
""".split())

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (t=3, m=64 MiB, p=4)


class WeakPassword(ValueError):
    """A password the policy refuses; the message says why and what is expected."""


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string) of ``password``. Takes about 50-100 ms of CPU by design."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; False for a wrong password or a malformed hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_hex(16))


def verify_dummy(password: str) -> None:
    """Spend the time of one verification against a random hash: an unknown name costs what a known one does."""
    verify_password(_dummy_hash(), password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than today's (rehash it at the next login)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def password_problem(name: str, password: str) -> str | None:
    """Why the policy refuses ``password`` for user ``name``, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"too short: at least {MIN_LENGTH} characters (a passphrase of a few words is easiest)"
    if len(password) > MAX_LENGTH:
        return f"too long: at most {MAX_LENGTH} characters"
    lowered = password.lower()
    if len(name) >= 3 and name.lower() in lowered:
        return "it contains the user name"
    stem = re.sub(r"^[\d\W_]+|[\d\W_]+$", "", lowered)
    if lowered in COMMON or stem in COMMON or re.sub(r"[\W_]", "", lowered) in COMMON:
        return "it is a common password, easy to guess"
    if len(set(password)) < 6:
        return "too repetitive: use at least 6 different characters"
    classes = sum(any(test(c) for c in password) for test in (str.islower, str.isupper, str.isdigit,
                                                               lambda c: not c.isalnum()))
    if classes < 3 and len(password) < PASSPHRASE_LENGTH:
        return (f"too little variety: mix three of lower case, upper case, digits and symbols, or use a "
                f"passphrase of at least {PASSPHRASE_LENGTH} characters")
    return None


def check_password(name: str, password: str) -> None:
    """Raise :class:`WeakPassword` (saying why) when the policy refuses ``password`` for ``name``."""
    problem = password_problem(name, password)
    if problem:
        raise WeakPassword(f"password refused: {problem}")


def generate_password() -> str:
    """A random one-time password: four groups of five letters and digits joined by '-' (about 110 bits)."""
    alphabet = "".join(c for c in string.ascii_letters + string.digits if c not in "Il1O0o")
    while True:
        text = "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))
        if password_problem("", text) is None:
            return text
