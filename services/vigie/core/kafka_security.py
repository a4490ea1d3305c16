"""How every Vigie Kafka client connects: bootstrap servers, SASL (SCRAM) and TLS, from :class:`KafkaSettings`.

:func:`client_options` gives the keyword arguments shared by every aiokafka client
(producers, consumers, the admin client, the bare client of the broker probe);
:func:`faust_credentials` the same for the correlator's faust app. The TLS context is
aiokafka's :func:`~aiokafka.helpers.create_ssl_context` (host names checked, the
settings' CA or the system's). The SASL password is read when a client is made (from
its file, if one is given) and handed to the client only: it is never logged, and
:func:`describe_auth_error` words a refused login without it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (AuthenticationFailedError, IllegalSaslStateError, KafkaError, SaslAuthenticationFailed,
                             UnsupportedSaslMechanismError)
from aiokafka.helpers import create_ssl_context

from vigie.core.errors import ConfigError
from vigie.core.secrets import redact, register_secret
from vigie.core.settings import KafkaSettings

__all__ = ["client_options", "describe_auth_error", "environment", "faust_credentials", "login_problem", "ssl_context"]


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context of ``settings`` (None unless SSL or SASL_SSL).

    Raises ConfigError naming the file when the CA, certificate or key cannot be loaded.
    """
    if not settings.uses_tls:
        return None
    try:
        return create_ssl_context(cafile=settings.ssl_cafile, certfile=settings.ssl_certfile,
                                  keyfile=settings.ssl_keyfile)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(f"{name}={path}" for name, path in (("ssl_cafile", settings.ssl_cafile),
                          ("ssl_certfile", settings.ssl_certfile), ("ssl_keyfile", settings.ssl_keyfile)) if path)
        raise ConfigError(f"Kafka TLS: cannot load {files or 'the system CA'}: {exc}") from None


def _password(settings: KafkaSettings) -> str | None:
    """The SASL password, registered for redaction (no log line or error of this process shows it)."""
    try:
        password = settings.sasl_secret()
    except ValueError as exc:  # the file went away since the settings were checked
        raise ConfigError(f"Kafka SASL: {exc}") from None
    register_secret(password)
    return password


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client of ``settings``' cluster.

    ``bootstrap_servers`` and ``security_protocol`` always; ``ssl_context`` with SSL or
    SASL_SSL; ``sasl_mechanism``, ``sasl_plain_username`` and ``sasl_plain_password``
    with SASL. The dictionary holds the password: pass it to the client, never print it.
    Raises ConfigError when a TLS file or the password file cannot be read.
    """
    options: dict[str, Any] = {"bootstrap_servers": settings.bootstrap,
                               "security_protocol": settings.security_protocol}
    if settings.uses_tls:
        options["ssl_context"] = ssl_context(settings)
    if settings.uses_sasl:
        options.update(sasl_mechanism=settings.sasl_mechanism, sasl_plain_username=settings.sasl_username,
                       sasl_plain_password=_password(settings))
    return options


def faust_credentials(settings: KafkaSettings) -> Any:
    """``broker_credentials`` of a faust app for ``settings``: None for PLAINTEXT, else a
    ``faust.SSLCredentials`` or ``faust.SASLCredentials`` (with the TLS context for SASL_SSL).

    Raises ConfigError as :func:`client_options` does.
    """
    import faust  # only the correlator loads faust

    if settings.uses_sasl:
        return faust.SASLCredentials(username=settings.sasl_username, password=_password(settings),
                                     ssl_context=ssl_context(settings), mechanism=settings.sasl_mechanism)
    if settings.uses_tls:
        return faust.SSLCredentials(ssl_context(settings))
    return None


#: aiokafka's answers for a refused login; retrying with the same settings cannot help.
_REFUSED = (SaslAuthenticationFailed, AuthenticationFailedError, UnsupportedSaslMechanismError, IllegalSaslStateError,
            ssl.SSLError)


async def login_problem(settings: KafkaSettings, timeout_s: float = 5.0) -> str | None:
    """Why the first bootstrap broker refuses ``settings``' login or TLS handshake, or None.

    aiokafka's clients report a refused SCRAM login only as "Unable to bootstrap"; this opens one
    connection the same way and returns :func:`describe_auth_error` of the broker's answer when it is
    a refusal (bad user or password, mechanism not enabled, certificate not trusted). None as well for
    PLAINTEXT settings and for a broker that does not answer (a matter of retrying, not of settings).
    """
    if not (settings.uses_sasl or settings.uses_tls):
        return None
    host, _, port = settings.bootstrap.split(",")[0].strip().rpartition(":")
    options = client_options(settings)
    options.pop("bootstrap_servers")
    try:
        conn = await asyncio.wait_for(create_conn(host.strip("[]"), int(port), request_timeout_ms=int(timeout_s * 1000),
                                                  **options), timeout_s)
    except _REFUSED as exc:
        return describe_auth_error(settings, exc)
    except (KafkaError, OSError, asyncio.TimeoutError, ValueError):
        return None
    conn.close()
    return None


def describe_auth_error(settings: KafkaSettings, exc: BaseException) -> str:
    """One line for a refused login or failed TLS handshake, naming the user, mechanism and protocol,
    never the password."""
    who = (f"user {settings.sasl_username!r} ({settings.sasl_mechanism} over {settings.security_protocol})"
           if settings.uses_sasl else settings.security_protocol)
    text = str(exc).strip() or type(exc).__name__
    text = text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
    secret = _password(settings) if settings.uses_sasl else None
    if secret:
        text = text.replace(secret, "***")
    what = "TLS handshake failed for" if isinstance(exc, ssl.SSLError) else "refused the login of"
    return redact(f"Kafka at {settings.bootstrap}: {what} {who}: {text}; "
                  "check the VIGIE_KAFKA_SASL_* and VIGIE_KAFKA_SSL_* settings")


def environment(settings: KafkaSettings) -> dict[str, str]:
    """The ``VIGIE_KAFKA_*`` environment variables that give a child process ``settings``' security:
    the protocol always (so a PLAINTEXT child of a parent whose environment says otherwise stays
    PLAINTEXT), and the SASL user and password or password file, the TLS files when they apply.

    The password goes as ``VIGIE_KAFKA_SASL_PASSWORD`` only when the settings hold it rather than a file.
    """
    env = {"VIGIE_KAFKA_SECURITY_PROTOCOL": settings.security_protocol}
    if settings.uses_sasl:
        env["VIGIE_KAFKA_SASL_MECHANISM"] = settings.sasl_mechanism
        env["VIGIE_KAFKA_SASL_USERNAME"] = settings.sasl_username or ""
        if settings.sasl_password_file:
            env["VIGIE_KAFKA_SASL_PASSWORD_FILE"] = settings.sasl_password_file
        elif settings.sasl_password is not None:
            env["VIGIE_KAFKA_SASL_PASSWORD"] = settings.sasl_password.get_secret_value()
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if getattr(settings, name):
            env[f"VIGIE_KAFKA_{name.upper()}"] = getattr(settings, name)
    return env
