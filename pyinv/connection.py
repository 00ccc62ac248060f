"""How pyinv opens connections: libpq's conventions plus three settings of its own.

- Prepared statements: on by default (psycopg prepares a statement run 5 times on a connection);
  off for transaction-mode poolers (PgBouncer before 1.21, Supavisor), which may run each
  transaction on another server connection where the prepared statement does not exist. Argument
  `prepared_statements`, else the environment variable PYINV_PREPARED_STATEMENTS (on/off).
- Connect timeout, in whole seconds (libpq's rule: at least 2; 0 waits forever): the argument, else
  the DSN's own connect_timeout, else PYINV_CONNECT_TIMEOUT, else libpq's PGCONNECT_TIMEOUT, else 10.
- application_name: "pyinv", unless the DSN or PGAPPNAME names one (libpq's
  fallback_application_name).
"""

from __future__ import annotations

import math
import os
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .errors import ConfigurationError

ENV_PREPARED_STATEMENTS = "PYINV_PREPARED_STATEMENTS"
ENV_CONNECT_TIMEOUT = "PYINV_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT = 10
APPLICATION_NAME = "pyinv"

_ON = frozenset({"on", "true", "yes", "1"})
_OFF = frozenset({"off", "false", "no", "0"})


def prepared_statements_enabled(prepared_statements: bool | None = None) -> bool:
    """The argument when given, else PYINV_PREPARED_STATEMENTS (on/off; unset: on)."""
    if prepared_statements is not None:
        return prepared_statements
    value = os.environ.get(ENV_PREPARED_STATEMENTS, "").strip().lower()
    if not value or value in _ON:
        return True
    if value in _OFF:
        return False
    raise ConfigurationError(f"{ENV_PREPARED_STATEMENTS} must be on or off, not {value!r}")


def _seconds(value: object, source: str) -> int:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigurationError(f"{source} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"{source} must be 0 (wait forever) or a positive number of seconds, not {value!r}")
    return math.ceil(seconds)


def connect_timeout(dsn: str, connect_timeout: float | None = None) -> int | None:
    """The connect_timeout to pass, or None to leave it to the DSN or libpq's PGCONNECT_TIMEOUT."""
    if connect_timeout is not None:
        return _seconds(connect_timeout, "connect_timeout")
    try:
        if conninfo_to_dict(dsn).get("connect_timeout") is not None:
            return None
    except psycopg.Error:
        return None  # a malformed DSN: connecting reports it
    configured = os.environ.get(ENV_CONNECT_TIMEOUT)
    if configured:
        return _seconds(configured, ENV_CONNECT_TIMEOUT)
    if os.environ.get("PGCONNECT_TIMEOUT"):
        return None
    return DEFAULT_CONNECT_TIMEOUT


def connect_kwargs(dsn: str, *, prepared_statements: bool | None = None, connect_timeout_: float | None = None,
                   autocommit: bool = True) -> dict[str, Any]:
    """Keyword arguments for psycopg.connect(dsn, **kwargs) (or a psycopg_pool pool's `kwargs`) that
    apply pyinv's settings: autocommit, prepared statements, connect timeout, application_name."""
    kwargs: dict[str, Any] = {"autocommit": autocommit, "fallback_application_name": APPLICATION_NAME}
    if not prepared_statements_enabled(prepared_statements):
        kwargs["prepare_threshold"] = None
    timeout = connect_timeout(dsn, connect_timeout_)
    if timeout is not None:
        kwargs["connect_timeout"] = timeout
    return kwargs
