"""Two speed-ups for Rasa 3.6 that change no behaviour.

1. Validating the action server's reply.

Rasa checks every action server response against a fixed JSON schema with ``jsonschema.validate``,
which checks the *schema* itself against its meta-schema and builds a new validator on every call.
Profiling a scan answer showed that to be over a third of the Rasa process's CPU per turn
(docs/performance.md, issue 17). Here the schema is checked once and the validator kept; the
response is validated exactly as before (same schema, same error, same message).

2. Finding an event's class by its type name. ``Event.resolve_by_type`` walks every subclass of
``Event`` for each event of a tracker it loads, on every turn (7 % of the CPU per scan answer). The
classes never change after import, so each name's class is looked up once and kept; unknown names
still go to Rasa (same default, same error).

Installed by the REST channel module (bot/channels/rest.py), which every Rasa process of ours loads;
``MENTORWIJZER_RASA_SPEEDUPS=0`` leaves Rasa untouched (for comparisons in ``make bench``).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import jsonschema
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import Event
from rasa.shared.constants import DOCS_BASE_URL

from bot.settings import get_settings

_ORIGINAL = RemoteAction._validate_action_result
_ORIGINAL_RESOLVE = Event.resolve_by_type
_EVENT_CLASSES: dict[str, type] = {}


@lru_cache(maxsize=1)
def _action_result_validator() -> Any:
    schema = RemoteAction.action_response_format_spec()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _validate_action_result(self: RemoteAction, result: dict) -> bool:
    error = jsonschema.exceptions.best_match(_action_result_validator().iter_errors(result))
    if error is not None:
        error.message += (
            f". Failed to validate Action server response from API, "
            f"make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit "
            f"{DOCS_BASE_URL}/custom-actions"
        )
        raise error
    return True


def _resolve_by_type(type_name: str, default: Any = None) -> Any:
    found = _EVENT_CLASSES.get(type_name)
    if found is None:
        found = _ORIGINAL_RESOLVE(type_name, default)
        if found is not None and found is not default:
            _EVENT_CLASSES[type_name] = found
    return found


def install() -> bool:
    """Replace the validation (idempotent); False when switched off by the environment."""
    if not get_settings().rasa_speedups:
        RemoteAction._validate_action_result = _ORIGINAL
        Event.resolve_by_type = staticmethod(_ORIGINAL_RESOLVE)
        return False
    RemoteAction._validate_action_result = _validate_action_result
    Event.resolve_by_type = staticmethod(_resolve_by_type)
    return True
