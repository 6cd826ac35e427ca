"""Pure rendering of Rasa REST messages for Telegram: splitting, keyboards, callback keys, files."""
from __future__ import annotations

import base64
import json

from telegram import InputFile

from bot import scan
from bot.channels import telegram as tg


def test_split_text_short_text_is_one_part():
    assert tg.split_text("Hoi!") == ["Hoi!"]
    assert tg.split_text("") == []


def test_split_text_prefers_paragraph_boundaries():
    paragraphs = ["a" * 3000, "b" * 3000, "c" * 100]
    parts = tg.split_text("\n\n".join(paragraphs))
    assert parts == ["a" * 3000, "b" * 3000 + "\n\n" + "c" * 100]


def test_split_text_falls_back_to_lines_then_words_then_hard_cut():
    lines = "\n".join(["regel " * 100] * 20)  # no paragraphs
    assert all(part.endswith("regel") for part in tg.split_text(lines))
    words = "woord " * 2000
    parts = tg.split_text(words)
    assert len(parts) == 3 and all(len(p) <= 4096 and p.startswith("woord") and p.endswith("woord") for p in parts)
    one_word = "x" * 10000
    assert [len(p) for p in tg.split_text(one_word)] == [4096, 4096, 1808]


def test_split_text_counts_utf16_units_like_telegram():
    text = "😀" * 3000  # 6000 UTF-16 code units
    parts = tg.split_text(text)
    assert [tg.utf16_len(p) for p in parts] == [4096, 1904]
    assert "".join(parts) == text


def test_split_text_keeps_all_words():
    text = "\n\n".join(f"Alinea {i}\n" + "tekst met woorden " * 150 for i in range(10))
    parts = tg.split_text(text, limit=1000)
    assert all(tg.utf16_len(p) <= 1000 for p in parts)
    assert " ".join(parts).split() == text.split()


def test_callback_store_keeps_short_payloads_inline():
    store = tg.CallbackStore()
    assert store.data_for("5") == "5"
    assert store.payload_for("5") == "5"


def test_callback_store_maps_long_payloads_to_short_keys():
    store = tg.CallbackStore()
    payload = '/inform_partnership{"partnership": "' + "noord-holland-" * 6 + '"}'
    key = store.data_for(payload)
    assert key.startswith(tg.CALLBACK_KEY_PREFIX) and len(key.encode()) <= 64
    assert store.data_for(payload) == key
    assert store.payload_for(key) == payload
    assert tg.CallbackStore().payload_for(key) is None  # another process / after a restart


def test_callback_store_counts_bytes_not_characters():
    store = tg.CallbackStore()
    payload = "é" * 40  # 80 bytes
    assert store.data_for(payload) != payload


def test_callback_store_is_bounded():
    store = tg.CallbackStore(max_entries=2)
    keys = [store.data_for(f"{i}" * 70) for i in range(3)]
    assert store.payload_for(keys[0]) is None and store.payload_for(keys[2]) == "2" * 70


def test_keyboard_layout():
    store = tg.CallbackStore()
    short = tg.keyboard([{"title": str(i), "payload": str(i)} for i in range(1, 6)], store)
    assert [[b.text for b in row] for row in short.inline_keyboard] == [["1", "2", "3", "4", "5"]]
    long = tg.keyboard([{"title": "Mentorscan invullen", "payload": "/start_scan"},
                        {"title": "Privacy", "payload": "/ask_privacy"}], store)
    assert [[b.callback_data for b in row] for row in long.inline_keyboard] == [["/start_scan"], ["/ask_privacy"]]
    assert tg.keyboard([], store) is None
    answer = tg.keyboard([{"title": "Meer hierover", "payload": "/ask_more"},
                          {"title": "👍 Nuttig", "payload": '/vote_up{"kb_entry":"taak.mentor"}'},
                          {"title": "👎 Niet nuttig", "payload": '/vote_down{"kb_entry":"taak.mentor"}'}], store)
    assert [[key.text for key in row] for row in answer.inline_keyboard] == [["Meer hierover"],
                                                                            ["👍 Nuttig", "👎 Niet nuttig"]]


def test_render_text_with_buttons():
    out = tg.render({"recipient_id": "tg-1", "text": "Kies:", "buttons": [{"title": "Ja", "payload": "/affirm"}]},
                    tg.CallbackStore())
    assert [o.method for o in out] == ["send_message"]
    assert out[0].kwargs["text"] == "Kies:" and out[0].kwargs["reply_markup"].inline_keyboard[0][0].text == "Ja"


def test_render_buttons_without_text_still_sends_text():
    out = tg.render({"buttons": [{"title": "Ja", "payload": "/affirm"}]}, tg.CallbackStore())
    assert out[0].kwargs["text"] == tg.BUTTONS_ONLY_TEXT


def test_render_long_text_puts_keyboard_on_last_part():
    out = tg.render({"text": "a" * 5000, "buttons": [{"title": "Ja", "payload": "/affirm"}]}, tg.CallbackStore())
    assert ["reply_markup" in o.kwargs for o in out] == [False, True]


def test_render_data_uri_image_as_photo_bytes():
    png = b"\x89PNG\r\n\x1a\nfake"
    out = tg.render({"image": "data:image/png;base64," + base64.b64encode(png).decode()}, tg.CallbackStore())
    assert out[0].method == "send_photo"
    photo = out[0].kwargs["photo"]
    assert isinstance(photo, InputFile) and photo.input_file_content == png


def test_render_image_url_is_passed_on():
    out = tg.render({"image": "https://example.org/a.png"}, tg.CallbackStore())
    assert out == [tg.Outgoing("send_photo", {"photo": "https://example.org/a.png"})]


def test_render_export_as_document():
    content = json.dumps({"a": 1})
    out = tg.render({"custom": {"type": "export", "filename": "../../etc/gegevens.json", "content": content}},
                    tg.CallbackStore())
    document = out[0].kwargs["document"]
    assert out[0].method == "send_document"
    assert document.filename == "gegevens.json" and document.input_file_content == content.encode()


def test_render_other_custom_payload_is_ignored():
    assert tg.render({"custom": {"type": "something"}}, tg.CallbackStore()) == []


def test_decode_data_uri():
    assert tg.decode_data_uri("data:text/plain,hallo%20daar") == b"hallo daar"
    assert tg.decode_data_uri("https://example.org/x.png") is None


def test_sender_id_and_commands():
    assert tg.sender_id(42) == "tg-42"
    assert tg.rasa_message_for_command("start", ["scan"]) == "/start_scan"
    assert tg.rasa_message_for_command("start", ["iets"]) == "hoi"
    assert tg.rasa_message_for_command("start", []) == "hoi"
    assert tg.rasa_message_for_command("onbekend", []) == "/help"


def test_file_base_url():
    assert tg.file_base_url("https://api.telegram.org/bot") == "https://api.telegram.org/file/bot"
    assert tg.file_base_url("http://127.0.0.1:8081/bot") == "http://127.0.0.1:8081/file/bot"


def test_asks_question_recognises_scan_buttons_only():
    _, prompt = scan.start("s1", "rest")
    question = {"text": prompt.text, "buttons": [{"title": t, "payload": p} for t, p in prompt.payload_buttons]}
    assert tg.asks_question(question)
    assert not tg.asks_question({"text": "Hoi", "buttons": [{"title": "Mentorscan", "payload": "/start_scan"}]})
    assert not tg.asks_question({"text": "Vraag 1 van 37", "buttons": [{"title": "1", "payload": "1"}]})
    assert not tg.asks_question({"text": "Zonder knoppen"})


def test_keyboard_scan_buttons_travel_in_callback_data():
    _, prompt = scan.start("s1", "rest")
    store = tg.CallbackStore()
    markup = tg.keyboard([{"title": t, "payload": p} for t, p in prompt.payload_buttons], store)
    data = [button.callback_data for row in markup.inline_keyboard for button in row]
    assert data == [p for _, p in prompt.payload_buttons]  # no per-process key: survives a bridge restart
