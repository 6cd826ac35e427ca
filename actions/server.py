"""The action server: rasa_sdk's app, obeying only Rasa.

Run it as ``python -m actions.server --port 5055`` (``make serve``, ``make chat``, deploy/). What
differs from ``rasa run actions``:

* every request except ``GET /health`` must carry the action secret in the
  ``X-Mentorwijzer-Action-Secret`` header (bot/keys.py; Rasa sends it from the ``headers`` of
  ``action_endpoint`` in endpoints.yml), compared in constant time; otherwise **401** and no action
  runs. Whoever could call the actions directly could name any ``sender_id`` in a forged tracker;
* it binds ``MENTORWIJZER_HOST`` (default 127.0.0.1), not rasa_sdk's default 0.0.0.0, and allows no
  cross-origin requests;
* a failing action is logged with its name and error type only, and Rasa gets a 500 without a body
  to log (upstream logs the request and sends the whole tracker back, which Rasa then logs);
* the knowledge base and its ranker are loaded before it listens (:func:`prepare`), so ``/health``
  answers only when the first question can be answered at once (issue 17: fitting the ranker inside
  the first turn took 30 s).
"""
from __future__ import annotations

import argparse
import logging
import time
from typing import Optional

from rasa_sdk import utils
from rasa_sdk.endpoint import create_app
from sanic import Sanic, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import keys, logsafety
from bot.knowledge import load_knowledge
from bot.settings import get_settings

logger = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/health"})


def _action_name(request: Request) -> str:
    try:
        body = request.json
    except Exception:  # an unparsable body has no action name
        return "?"
    name = body.get("next_action") if isinstance(body, dict) else None
    return str(name)[:64] if name else "?"


def create_server(package: str = "actions") -> Sanic:
    app = create_app(package, cors_origins="")
    expected = keys.get(keys.ACTION_SECRET)

    @app.on_request
    async def require_rasa(request: Request) -> Optional[HTTPResponse]:
        if request.path in OPEN_PATHS:
            return None
        if not keys.matches(request.headers.get(keys.ACTION_SECRET_HEADER), expected):
            logger.warning("action server: %s %s refused (no valid action secret)", request.method, request.path)
            return response.json({"error": "unauthorized"}, status=401)
        return None

    async def on_error(request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, SanicException):
            return response.json({"error": type(exception).__name__}, status=exception.status_code)
        logger.error("action %s failed: %s", _action_name(request), logsafety.exception_types(exception))
        return response.json({"error": "action failed"}, status=500)

    app.error_handler.add(Exception, on_error)
    return app


def prepare() -> None:
    """Load what the first turn would otherwise load: the knowledge base and its stored ranker (or
    fit and store it when ``make install`` did not), plus one search to warm the code paths."""
    started = time.perf_counter()
    kb = load_knowledge()
    kb.search("wat doet een schoolopleider")
    logger.info("knowledge base ready: %d entries in %.1f s", len(kb.entries), time.perf_counter() - started)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m actions.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=None, help="interface (default MENTORWIJZER_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--actions", default="actions", help="package with the actions")
    args = parser.parse_args(argv)
    logsafety.install()
    utils.configure_colored_logging(get_settings().log_level)
    utils.update_sanic_log_level()
    app = create_server(args.actions)
    prepare()
    host = args.host or get_settings().host
    logger.info("action server listening on %s:%d", host, args.port)
    app.run(host, args.port, workers=1, access_log=False)


if __name__ == "__main__":
    main()
