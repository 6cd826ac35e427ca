"""Logs stay free of personal data when something fails, also in the libraries we run inside.

Our own code logs only intents, item ids, durations, error types and keyed pseudonyms. Libraries do
not: Rasa logs a failed custom action with the action server's reply (upstream rasa_sdk puts the whole
tracker in it), a failed save with the SQL parameters (the events, with message text), and Sanic logs
tracebacks whose exception messages can quote request data. :func:`install` sets a log-record factory
(process-wide, whatever handlers Rasa configures later) that, for records of those libraries, replaces
the traceback by the chain of exception *types* and drops exception messages and query strings.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Optional

LIBRARY_LOGGERS = ("rasa", "rasa_sdk", "sanic", "sqlalchemy", "aiohttp", "apscheduler", "root")
QUERY_STRING = re.compile(r"\?[^\s'\"]*")
_installed = False


def exception_types(error: Optional[BaseException]) -> str:
    """``RasaException <- ClientResponseError``: the chain of causes, types only."""
    names = []
    seen = set()
    while error is not None and id(error) not in seen and len(names) < 5:
        seen.add(id(error))
        names.append(type(error).__name__)
        error = error.__cause__ or error.__context__
    return " <- ".join(names)


def _from_library(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in LIBRARY_LOGGERS)


def scrub(record: logging.LogRecord) -> logging.LogRecord:
    """Strip what a library record may carry from a request: tracebacks, exception texts, queries."""
    if not _from_library(record.name):
        return record
    exc_info: Any = record.exc_info
    if exc_info and isinstance(exc_info, tuple) and len(exc_info) == 3:
        error: Optional[BaseException] = exc_info[1]
        try:
            message = record.getMessage()
        except Exception:  # a malformed library record: keep only its template
            message = str(record.msg)
        if error is not None:
            message = message.replace(str(error), type(error).__name__) if str(error) else message
        record.msg = f"{QUERY_STRING.sub('?…', message)} [{exception_types(error)}]"
        record.args = None
        record.exc_info = None
        record.exc_text = None
    elif record.name.startswith("sanic") and isinstance(record.msg, str):
        record.msg = QUERY_STRING.sub("?…", record.msg)
    return record


def install() -> None:
    """Idempotent; call at the start of every process that runs library code (Rasa, actions)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True
