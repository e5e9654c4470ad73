"""Process-wide logging of Ferry's commands: one JSON object per line (for log shippers) or plain
text (for people), chosen by ``FERRY_LOG_FORMAT``.

Owns: `setup_logging` and `json_formatter`. Must not decide what is logged: modules log through
``logging.getLogger(__name__)`` and put the ids a line is about in ``extra`` (``transfer_id``,
``swap_id``, ``event_key``), which the JSON format carries as fields. SECURITY: never pass a key,
passphrase, preimage or URL credentials in ``extra`` or a message.

JSON line: ``{"ts": "<ISO-8601 UTC>", "level", "logger", "msg", ...extra fields, "exc_info"?}``.
"""

from __future__ import annotations

import logging
import os
import sys

from pythonjsonlogger.json import JsonFormatter

from adapters.errors import ConfigError

FORMAT_ENV = "FERRY_LOG_FORMAT"  # "json" or "text"
LEVEL_ENV = "FERRY_LOG_LEVEL"  # a logging level name, default INFO
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FORMATS = ("json", "text")
# Libraries that log every request or job run at INFO; raised to WARNING unless level is DEBUG.
QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler.executors.default", "apscheduler.scheduler")


def json_formatter() -> logging.Formatter:
    """The JSON formatter: ts, level, logger, msg, then every ``extra`` field of the record."""
    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="ts",
                         rename_fields={"levelname": "level", "name": "logger",
                                        "message": "msg"})


def setup_logging(default_format: str = "json") -> str:
    """Configure the root logger once for this process: a stderr handler in ``FERRY_LOG_FORMAT``
    (`default_format` when unset) at ``FERRY_LOG_LEVEL`` (default INFO). Replaces handlers a
    previous call installed.

    Returns:
        The format used (``json`` or ``text``).

    Raises:
        ConfigError: ``FERRY_LOG_FORMAT`` or ``FERRY_LOG_LEVEL`` is not a known value.
    """
    fmt = os.environ.get(FORMAT_ENV, default_format).strip().lower()
    if fmt not in FORMATS:
        raise ConfigError(f"{FORMAT_ENV} must be one of {', '.join(FORMATS)}, not {fmt!r}")
    level = os.environ.get(LEVEL_ENV, "INFO").strip().upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigError(f"{LEVEL_ENV} must be a logging level name, not {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if logging.getLevelName(level) > logging.DEBUG:  # one line per HTTP call / job run: debug only
        for chatty in QUIET_LOGGERS:
            logging.getLogger(chatty).setLevel(logging.WARNING)
    return fmt
