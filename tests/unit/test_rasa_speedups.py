"""The cached validation of action server replies behaves exactly like Rasa's own."""
from __future__ import annotations

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

from bot import rasa_speedups

VALID = {"events": [{"event": "slot", "name": "x", "value": 1}], "responses": [{"text": "hoi"}]}
INVALID = {"events": [{"no_event_key": True}], "responses": []}


@pytest.fixture
def action():
    return RemoteAction("action_x", None)


def test_the_same_verdicts_and_error_messages_as_rasa(action):
    for result in (VALID, {"events": [], "responses": []}):
        assert rasa_speedups._ORIGINAL(action, result) is True
        assert rasa_speedups._validate_action_result(action, result) is True
    with pytest.raises(jsonschema.ValidationError) as original:
        rasa_speedups._ORIGINAL(action, INVALID)
    with pytest.raises(jsonschema.ValidationError) as cached:
        rasa_speedups._validate_action_result(action, INVALID)
    assert cached.value.message == original.value.message and "Failed to validate" in cached.value.message


def test_the_schema_is_checked_once(action, monkeypatch):
    rasa_speedups._action_result_validator.cache_clear()
    calls = []
    validator_class = jsonschema.validators.validator_for(RemoteAction.action_response_format_spec())
    monkeypatch.setattr(validator_class, "check_schema", classmethod(lambda cls, schema: calls.append(schema)))
    for _ in range(5):
        rasa_speedups._validate_action_result(action, VALID)
    assert len(calls) == 1


def test_installed_unless_switched_off(monkeypatch):
    from bot.settings import get_settings

    assert rasa_speedups.install() and RemoteAction._validate_action_result is rasa_speedups._validate_action_result
    monkeypatch.setenv("MENTORWIJZER_RASA_SPEEDUPS", "0")
    get_settings.cache_clear()
    assert not rasa_speedups.install() and RemoteAction._validate_action_result is rasa_speedups._ORIGINAL
    monkeypatch.delenv("MENTORWIJZER_RASA_SPEEDUPS")
    get_settings.cache_clear()
    rasa_speedups.install()


def test_event_classes_resolve_like_rasa():
    from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered

    for name, expected in (("user", UserUttered), ("slot", SlotSet), ("action", ActionExecuted)):
        assert rasa_speedups._resolve_by_type(name) is expected is rasa_speedups._ORIGINAL_RESOLVE(name)
        assert rasa_speedups._resolve_by_type(name) is expected  # the cached answer is the same
    assert rasa_speedups._resolve_by_type("no_such_event", default=SlotSet) is SlotSet
    assert rasa_speedups._resolve_by_type("topic") is None
    with pytest.raises(ValueError, match="Unknown event name"):
        rasa_speedups._resolve_by_type("no_such_event")
    rasa_speedups.install()
    restored = Event.from_parameters({"event": "slot", "name": "x", "value": 1})  # what a tracker load does
    assert isinstance(restored, SlotSet) and restored.value == 1
