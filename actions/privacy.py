"""Rasa adapters for a mentor's own data: see, export, delete, link channels, group reports."""
from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, Restarted
from rasa_sdk.executor import CollectingDispatcher

from actions.common import buttons, channel_of, entity, latest_text, send
from bot import delivery, insights, linking, privacy, reports, staff
from bot.settings import get_settings

LINK_MESSAGES = {
    "ok": "Gelukt: je accounts zijn gekoppeld. Je scan en je voortgang zijn nu in beide kanalen hetzelfde.",
    "same": "Dit kanaal was al gekoppeld aan je account.",
    "expired": "Die code is verlopen (een code is 10 minuten geldig). Vraag in je andere kanaal een nieuwe met 'koppel mijn account'.",
    "invalid": "Die code ken ik niet, of hij is al gebruikt. Controleer de code of vraag een nieuwe met 'koppel mijn account'.",
    "staff": "Gelukt: dit is nu je account als schoolopleider bij Mentorwijzer. Vragen die mentoren naar je doorsturen, "
    "krijg je hier. Typ 'open vragen' om te zien wat er openstaat.",
    "blocked": "Je hebt te vaak een verkeerde code ingetypt, daarom neem ik hier even geen codes aan. "
    "Probeer het over een uur opnieuw met een nieuwe code: die vraag je in je andere kanaal met 'koppel mijn account'.",
}


class ActionShowMyData(Action):
    def name(self) -> str:
        return "action_show_my_data"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        dispatcher.utter_message(text=privacy.describe(tracker.sender_id))
        data = privacy.export(tracker.sender_id)
        if data is not None:
            dispatcher.utter_message(
                text="Hier is alles als JSON-bestand (export van je gegevens):",
                json_message={"type": "export", "filename": "mentorwijzer-gegevens.json",
                              "content": privacy.export_json(tracker.sender_id)},
            )
        dispatcher.utter_message(
            text="Wil je alles laten verwijderen?",
            buttons=buttons([("Verwijder mijn gegevens", "/delete_my_data")]),
        )
        return []


class ActionDeleteMyData(Action):
    """Asks for confirmation first (buttons carry the answer), then deletes everything."""

    def name(self) -> str:
        return "action_delete_my_data"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        confirm = entity(tracker, "confirm")
        if confirm not in ("ja", "nee"):
            dispatcher.utter_message(
                text="Weet je het zeker? Ik verwijder dan je profiel, al je scanantwoorden en resultaten, "
                "koppelcodes en onze gesprekken, in alle gekoppelde kanalen. Dit kan niet ongedaan worden gemaakt.",
                buttons=buttons([
                    ("Ja, verwijder alles", '/delete_my_data{"confirm": "ja"}'),
                    ("Nee, niets verwijderen", '/delete_my_data{"confirm": "nee"}'),
                ]),
            )
            return []
        if confirm == "nee":
            dispatcher.utter_message(text="Oké, ik heb niets verwijderd.")
            return []
        try:
            counts = privacy.forget(tracker.sender_id)
        except privacy.DeletionFailed as failure:
            done = "Onze gesprekken zijn wel verwijderd, maar je profiel en je antwoorden nog niet" \
                if failure.conversations_deleted else "Er is niets verwijderd"
            dispatcher.utter_message(
                text=f"Het verwijderen is niet gelukt door een storing. {done}. De beheerder ziet de fout. "
                "Probeer het later nog eens met 'verwijder mijn gegevens', of vraag je schoolopleider om hulp."
            )
            return []
        if counts is None:
            dispatcher.utter_message(text="Ik had niets over je opgeslagen, dus er viel niets te verwijderen.")
        elif "runs" not in counts:
            dispatcher.utter_message(text="Ik had geen profiel of antwoorden van je. Onze gesprekken heb ik verwijderd.")
        else:
            dispatcher.utter_message(
                text=f"Verwijderd: je profiel, {counts['runs']} vragenlijst(en) met {counts['answers']} antwoorden, "
                f"{counts['link_codes']} koppelcode(s), {counts['feedback']} beoordeling(en), "
                f"{counts['questions']} doorgestuurde vraag/vragen en onze gesprekken in {counts['identities']} "
                "kanaal/kanalen. "
                "Als je me weer een bericht stuurt, begin je helemaal opnieuw."
            )
        return [Restarted()]


class ActionLinkAccount(Action):
    """One intent for linking: a message with a code redeems it, any other message issues a new code."""

    def name(self) -> str:
        return "action_link_account"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        # The text, not the link_code entity: the pattern finds every code NLU could extract, and more.
        code = linking.find_link_code(latest_text(tracker))
        if code:
            outcome = linking.use_link_code(tracker.sender_id, channel_of(tracker), code)
            if outcome == "staff":  # so that notifications reach this chat (Teams needs its reference)
                delivery.remember_sender(tracker.sender_id, tracker.latest_message.get("metadata"))
            dispatcher.utter_message(text=LINK_MESSAGES[outcome])
            return []
        code = linking.create_link_code(tracker.sender_id, channel_of(tracker))
        dispatcher.utter_message(
            text=f"Je koppelcode is {code}. Typ deze code binnen {linking.CODE_VALID_MINUTES} minuten in je andere kanaal "
            "(bijvoorbeeld Teams of Telegram). Daarna delen beide kanalen je scan en je voortgang."
        )
        return []


class ActionReport(Action):
    """'Rapport' / 'inzichten' for report admins (MENTORWIJZER_REPORT_ADMINS, or a staff member added with
    --report-admin): the k-anonymous group report of the mentorscan, then the usage insights
    (bot/insights.py). Everyone else is refused."""

    def name(self) -> str:
        return "action_report"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        member = staff.report_admin_of(tracker.sender_id)
        if member is None and tracker.sender_id not in get_settings().report_admins:
            dispatcher.utter_message(
                text="Groepsrapporten en inzichten zijn alleen voor schoolopleiders die daarvoor zijn aangemeld. "
                "Je eigen resultaten zie je met 'mijn resultaten'."
            )
            return []
        send(dispatcher, reports.chat_report(tracker.sender_id))
        send(dispatcher, insights.chat_messages(insights.build(partnership=member.partnership if member else None)))
        return []
