"""Library log records lose tracebacks, exception texts and query strings; ours are untouched."""
from __future__ import annotations

import logging
import sys

from bot import logsafety

GOAL = "mijn leerdoel is geheim-doel-17"


def record(name: str, message: str, error: BaseException | None = None) -> logging.LogRecord:
    exc_info = None
    if error is not None:
        try:
            raise error
        except BaseException:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, exc_info)


def test_logsafety_library_traceback_becomes_exception_types():
    try:
        try:
            raise ValueError(GOAL)
        except ValueError as cause:
            raise RuntimeError(f"action failed: {GOAL}") from cause
    except RuntimeError as error:
        scrubbed = logsafety.scrub(record("rasa.core.processor", "Encountered an exception", error))
    text = logging.Formatter().format(scrubbed)
    assert GOAL not in text
    assert "RuntimeError <- ValueError" in text and "Encountered an exception" in text


def test_logsafety_exception_text_inside_the_message_is_replaced():
    error = ValueError(GOAL)
    scrubbed = logsafety.scrub(record("sqlalchemy.engine", f"failed: {error}", error))
    assert GOAL not in logging.Formatter().format(scrubbed)


def test_logsafety_query_strings_are_cut_from_sanic_lines():
    scrubbed = logsafety.scrub(record("sanic.error", "GET /conversations/x/tracker?token=s3cret"))
    assert "s3cret" not in scrubbed.getMessage()


def test_logsafety_leaves_our_own_records_alone():
    ours = record("bot.scan", "answer stored item=1.1.a")
    assert logsafety.scrub(ours).getMessage() == "answer stored item=1.1.a"
