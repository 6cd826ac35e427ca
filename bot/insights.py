"""Insight for the partnership (issue 16): which answers are asked and how they are rated, which
topics go unanswered or end up with a person, and how far the mentors of each school are with the
mentorscan. For the people who keep the knowledge base up to date and plan the mentor training.

k-anonymity (k = ``reports.MIN_GROUP`` = 3), as in ``bot/reports.py``:

* A count of 1 or 2 is hidden: ``None`` in the data, ``HIDDEN`` ("<3") in markdown, CSV and chat.
  A count of 0 is shown as 0: it says that nobody did something, which points at no one.
* Counts that come from mentors' own records are also hidden when fewer than k distinct mentors are
  behind them, whatever the count: 👍/👎 are numbers of mentors (their newest vote per answer), and
  forwarded questions and "add to the knowledge base" requests are numbers of questions that are
  shown only when they came from at least k mentors. Scan completion counts mentors (their newest
  mentorscan run).
* How often an answer was given and how many questions went unanswered come from the anonymous
  ``AnswerLog`` (bot/usage.py): it has no mentor, so these count replies, not people, and are hidden
  below k replies. It has no school either: with a school filter these counts cover the school's
  partnership (the one asked for, else all), which the report says.
* Hidden counts sort as 0 (then by id), so the order of rows does not reveal them.
* No mentor id, name, question text or feedback comment is read into an ``Insights``; entry
  questions in it are the knowledge base's own.

Residual, of the same kind as a listed "<3" (that one or two unnamed mentors did something, never
who): a shown 0 next to a known group (all 4 mentors of a school who started the scan "afgerond: 0")
says something about each of them, as 4 of 4 would.
"""
from __future__ import annotations

import csv
import logging
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Iterable, Optional

from sqlalchemy import func, select

from bot import storage
from bot.knowledge import load_knowledge
from bot.qa import Message
from bot.reports import HIDDEN, MIN_GROUP, shown
from bot.usage import topic_of

log = logging.getLogger(__name__)

QUESTIONNAIRE_ID = "mentorscan"
FORWARDED = ("open", "answered")  # a forwarded question that reached a person
# Dutch names of the entry groups (bot.usage.topic_of); a new group is shown by its own name.
TOPIC_LABELS = {
    "algemeen": "algemeen", "begrip": "begrippen", "contact": "bij wie moet ik zijn", "eis": "eisen",
    "fase": "studiefasen", "rol": "rollen", "taak": "taken", "training": "training", "uren": "uren",
}
UNKNOWN_TOPIC = "onbekend onderwerp"
UNKNOWN_SCHOOL = "school niet bekend"
CHART_ENTRIES = 8  # bars in the chart
CHAT_ENTRIES = 5
CHAT_TOPICS = 3
CHAT_SCHOOLS = 10
MAX_ACTIVITY_BYTES = 20_000  # one chat activity (text + inline chart); Teams refuses large ones


@dataclass
class EntryInsight:
    entry_id: str
    topic: Optional[str]
    question: str  # the knowledge base's question ("" when the entry is no longer in it)
    review: Optional[bool]  # True: not (fully) from a source document; None: no longer in the knowledge base
    answered: Optional[int]  # replies with this answer; None: 1 or 2 (hidden)
    up: Optional[int]  # mentors whose newest vote is 👍; None: 1 or 2
    down: Optional[int]  # mentors whose newest vote is 👎; None: 1 or 2
    draft_requests: Optional[int]  # forwarded questions on this entry proposed for the knowledge base

    @property
    def active(self) -> bool:
        return any(count != 0 for count in (self.answered, self.up, self.down, self.draft_requests))


@dataclass
class TopicInsight:
    topic: Optional[str]  # None: no closest entry known
    unanswered: Optional[int]  # replies "weet ik niet" closest to this topic
    forwarded: Optional[int]  # questions sent to a person (open or answered)

    @property
    def label(self) -> str:
        return topic_label(self.topic)


@dataclass
class SchoolScans:
    school: Optional[str]  # None: the mentors did not say where they work
    in_progress: Optional[int]  # newest run started, neither paused nor finished
    paused: Optional[int]
    finished: Optional[int]

    @property
    def label(self) -> str:
        return self.school or UNKNOWN_SCHOOL


@dataclass
class Insights:
    label: str  # the group: a school, a partnership or all schools
    usage_label: str  # the group the AnswerLog counts cover (no school there)
    since: Optional[datetime]
    built_at: datetime
    entries: list[EntryInsight] = field(default_factory=list)
    topics: list[TopicInsight] = field(default_factory=list)
    scans: list[SchoolScans] = field(default_factory=list)

    def most_asked(self, limit: int) -> list[EntryInsight]:
        """Entries given at least MIN_GROUP times, most first."""
        return [e for e in self.entries if e.answered][:limit]


def topic_label(topic: Optional[str]) -> str:
    return TOPIC_LABELS.get(topic, topic) if topic else UNKNOWN_TOPIC


def _k(count: int, mentors: Optional[int] = None) -> Optional[int]:
    """The count as shown: 0, or the count when it is at least MIN_GROUP and (when known) comes
    from at least MIN_GROUP mentors; else None (hidden)."""
    if count == 0:
        return 0
    if count < MIN_GROUP or (mentors is not None and mentors < MIN_GROUP):
        return None
    return count


def _sort_key(count: Optional[int]) -> int:
    return -(count or 0)


def _group_label(school: Optional[str], partnership: Optional[str]) -> str:
    if school and partnership:
        return f"{school} (partnerschap {partnership})"
    return school or (partnership and f"partnerschap {partnership}") or "alle scholen"


# --- gathering -------------------------------------------------------------------------


def _answer_log(session, partnership: Optional[str], since: Optional[datetime]):
    """(answers per entry, unknown replies per topic) from the anonymous log."""
    log_table = storage.AnswerLog
    conditions = []
    if partnership:
        conditions.append(log_table.partnership == partnership)
    if since:
        conditions.append(log_table.day >= since.replace(hour=0, minute=0, second=0, microsecond=0))
    answered = dict(session.execute(
        select(log_table.entry_id, func.count(log_table.id))
        .where(log_table.outcome == "answer", log_table.entry_id.is_not(None), *conditions)
        .group_by(log_table.entry_id)
    ).all())
    unknown: dict[Optional[str], int] = defaultdict(int)
    for topic, count in session.execute(
        select(log_table.topic, func.count(log_table.id))
        .where(log_table.outcome == "unknown", *conditions)
        .group_by(log_table.topic)
    ):
        unknown[topic_of(topic)] += count
    return answered, unknown


def _votes(session, partnership: Optional[str], school: Optional[str], since: Optional[datetime]):
    """Per entry the number of mentors whose newest vote is up and down (answers of people excluded)."""
    query = (select(storage.Feedback.entry_id, storage.Feedback.mentor_id, storage.Feedback.vote)
             .order_by(storage.Feedback.created_at, storage.Feedback.id))
    if partnership:
        query = query.where(storage.Feedback.partnership == partnership)
    if school:
        query = query.join(storage.Mentor, storage.Mentor.id == storage.Feedback.mentor_id).where(
            storage.Mentor.school == school)
    if since:
        query = query.where(storage.Feedback.created_at >= since)
    newest: dict[tuple[str, str], str] = {}
    for entry_id, mentor_id, vote in session.execute(query):
        if topic_of(entry_id) is not None:  # not "vraag:<id>" (a person's answer)
            newest[(entry_id, mentor_id)] = vote
    up: dict[str, int] = defaultdict(int)
    down: dict[str, int] = defaultdict(int)
    for (entry_id, _mentor), vote in newest.items():
        if vote == "up":
            up[entry_id] += 1
        elif vote == "down":
            down[entry_id] += 1
    return up, down


def _questions(session, partnership: Optional[str], school: Optional[str], since: Optional[datetime]):
    """(draft requests per entry, forwarded questions per topic), each as (questions, mentors)."""
    q = storage.Question
    query = select(q.mentor_id, q.status, q.topic, q.created_at, q.draft_requested_at)
    if partnership:
        query = query.where(q.partnership == partnership)
    if school:
        query = query.where(q.school == school)
    drafts: dict[str, list] = defaultdict(lambda: [0, set()])
    forwarded: dict[Optional[str], list] = defaultdict(lambda: [0, set()])
    for mentor_id, status, topic, created_at, draft_requested_at in session.execute(query):
        if draft_requested_at is not None and topic and (since is None or draft_requested_at >= since):
            drafts[topic][0] += 1
            drafts[topic][1].add(mentor_id)
        if status in FORWARDED and (since is None or created_at >= since):
            forwarded[topic_of(topic)][0] += 1
            forwarded[topic_of(topic)][1].add(mentor_id)
    return drafts, forwarded


def _scans(session, partnership: Optional[str], school: Optional[str], since: Optional[datetime]) -> list[SchoolScans]:
    """Per school the mentors whose newest mentorscan run is in progress, paused or finished."""
    run = storage.ScanRun
    query = (select(run.mentor_id, storage.Mentor.school, run.completed_at, run.paused)
             .join(storage.Mentor, storage.Mentor.id == run.mentor_id)
             .where(run.questionnaire_id == QUESTIONNAIRE_ID)
             .order_by(run.started_at, run.id))
    if partnership:
        query = query.where(storage.Mentor.partnership == partnership)
    if school:
        query = query.where(storage.Mentor.school == school)
    if since:
        query = query.where(run.updated_at >= since)
    newest: dict[str, tuple[Optional[str], str]] = {}
    for mentor_id, mentor_school, completed_at, paused in session.execute(query):
        state = "finished" if completed_at is not None else "paused" if paused else "in_progress"
        newest[mentor_id] = (mentor_school, state)
    per_school: dict[Optional[str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for mentor_school, state in newest.values():
        per_school[mentor_school or None][state] += 1
    schools = sorted(per_school, key=lambda s: (s is None, (s or "").lower()))
    return [SchoolScans(s, _k(per_school[s]["in_progress"]), _k(per_school[s]["paused"]),
                        _k(per_school[s]["finished"])) for s in schools]


def build(partnership: Optional[str] = None, school: Optional[str] = None,
          since: Optional[datetime] = None) -> Insights:
    """The insights of one group (a school, a partnership, or everything), k-anonymous."""
    kb = load_knowledge()
    with storage.session_scope() as session:
        answered, unknown = _answer_log(session, partnership, since)
        up, down = _votes(session, partnership, school, since)
        drafts, forwarded = _questions(session, partnership, school, since)
        scans = _scans(session, partnership, school, since)

    ids = [e.id for e in kb.entries if not partnership or e.is_general or partnership in e.partnerships]
    seen = set(ids)
    for entry_id in [*answered, *up, *down, *drafts]:  # removed entries still have a history
        if entry_id not in seen and "." in entry_id and topic_of(entry_id) is not None:
            ids.append(entry_id)
            seen.add(entry_id)
    entries = []
    for entry_id in ids:
        entry = kb.by_id.get(entry_id)
        requests, requesters = drafts.get(entry_id, (0, set()))
        entries.append(EntryInsight(
            entry_id, topic_of(entry_id), entry.question if entry else "", entry.review if entry else None,
            _k(answered.get(entry_id, 0)), _k(up.get(entry_id, 0)), _k(down.get(entry_id, 0)),
            _k(requests, len(requesters)),
        ))
    entries.sort(key=lambda e: (_sort_key(e.answered), e.entry_id))

    topic_ids: list[Optional[str]] = sorted({topic_of(e.id) for e in kb.entries} | set(unknown) | set(forwarded),
                                            key=lambda t: (t is None, t or ""))
    topics = []
    for topic in topic_ids:
        count, mentors = forwarded.get(topic, (0, set()))
        topics.append(TopicInsight(topic, _k(unknown.get(topic, 0)), _k(count, len(mentors))))
    topics.sort(key=lambda t: (_sort_key(t.unanswered), _sort_key(t.forwarded), t.topic is None, t.topic or ""))

    return Insights(_group_label(school, partnership), _group_label(None, partnership), since,
                    storage.utcnow(), entries, topics, scans)


# --- output ----------------------------------------------------------------------------


def _date(moment: datetime) -> str:
    return moment.strftime("%d-%m-%Y")


def _cell(text: str) -> str:
    """Text in a markdown table cell: no line breaks, no column separators."""
    return " ".join(text.split()).replace("|", "\\|")


def _yes_no(review: Optional[bool]) -> str:
    return "?" if review is None else "ja" if review else "nee"


def _period(insights: Insights) -> str:
    start = f"van {_date(insights.since)}" if insights.since else "vanaf het begin"
    return f"{start} tot en met {_date(insights.built_at)}"


def to_markdown(insights: Insights) -> str:
    active = [e for e in insights.entries if e.active]
    lines = [
        f"# Inzicht voor het partnerschap: {insights.label}", "",
        f"Periode: {_period(insights)}.", "",
        f"Aantallen van 1 of 2 staan er als '{HIDDEN}', zodat niemand herkenbaar is; 0 betekent: niemand. "
        "Namen, mentoren, hun vragen en hun toelichtingen staan niet in dit overzicht.", "",
        "## Antwoorden uit de kennisbank", "",
        "- *keer gegeven*: hoe vaak Mentorwijzer dit antwoord gaf (zonder te weten aan wie; "
        "één mentor kan vaker vragen).",
        "- *👍* en *👎*: hoeveel mentoren het antwoord zo beoordeelden (per mentor telt de nieuwste keuze).",
        "- *nakijken*: 'ja' als het antwoord niet (helemaal) uit de brondocumenten komt; het partnerschap "
        "controleert het (`review: true` in `knowledge/`).",
        "- *voorstel kennisbank*: doorgestuurde vragen over dit antwoord die een schoolopleider wilde "
        "laten toevoegen aan de kennisbank.", "",
    ]
    if insights.usage_label != insights.label:
        lines += [f"Mentorwijzer houdt niet per school bij welke antwoorden het geeft: 'keer gegeven' en "
                  f"'vragen zonder antwoord' gelden voor {insights.usage_label}.", ""]
    if active:
        lines += ["| antwoord | vraag | keer gegeven | 👍 | 👎 | nakijken | voorstel kennisbank |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {e.entry_id} | {_cell(e.question) or '(niet meer in de kennisbank)'} | {shown(e.answered)} "
                  f"| {shown(e.up)} | {shown(e.down)} | {_yes_no(e.review)} | {shown(e.draft_requests)} |"
                  for e in active]
    else:
        lines.append("Nog geen antwoorden gegeven of beoordeeld in deze periode.")
    idle = len(insights.entries) - len(active)
    review = sum(1 for e in insights.entries if e.review)
    lines += ["", f"Nog niet gevraagd of beoordeeld: {idle} antwoorden. {review} antwoorden wachten op controle "
                  "door het partnerschap. Alle antwoorden staan in entries.csv.", "",
              "## Onderwerpen", "",
              "- *vragen zonder antwoord*: hoe vaak Mentorwijzer 'dat weet ik niet' zei, bij het onderwerp "
              "dat het dichtst bij de vraag lag.",
              "- *doorgestuurd*: vragen die mentoren naar een schoolopleider of contactpersoon stuurden.", "",
              "| onderwerp | vragen zonder antwoord | doorgestuurd |", "|---|---|---|"]
    lines += [f"| {_cell(t.label)} | {shown(t.unanswered)} | {shown(t.forwarded)} |" for t in insights.topics]
    lines += ["", "## Mentorscan per school", "",
              "Aantal mentoren; per mentor telt de nieuwste scan.", ""]
    if insights.scans:
        lines += ["| school | bezig | gepauzeerd | afgerond |", "|---|---|---|---|"]
        lines += [f"| {_cell(s.label)} | {shown(s.in_progress)} | {shown(s.paused)} | {shown(s.finished)} |"
                  for s in insights.scans]
    else:
        lines.append("Nog geen mentor is aan de mentorscan begonnen in deze periode.")
    return "\n".join(lines) + "\n"


def _csv_text(value: object) -> object:
    """A cell a spreadsheet will not run as a formula (school names are typed by mentors)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _write_csv(path: Path, header: list[str], rows: Iterable[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_csv_text(value) for value in row])
    return path


def _bool(value: Optional[bool]) -> str:
    return "" if value is None else "true" if value else "false"


def render_chart(insights: Insights) -> bytes:
    """The most-given answers as bars, with their 👍/👎 (as ↑/↓: the chart font has no emoji);
    a short note instead when no answer was given at least MIN_GROUP times. A small palette PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    from bot.charts import palette_png

    top = insights.most_asked(CHART_ENTRIES)
    if top:
        fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(top) + 1.3), dpi=100)
        labels = [e.entry_id for e in top][::-1]
        values = [e.answered for e in top][::-1]
        bars = ax.barh(labels, values, color="#2b7bb9")
        for bar, e in zip(bars, top[::-1]):
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                    f" {e.answered}×  ↑{shown(e.up)} ↓{shown(e.down)}", va="center", fontsize=10)
        ax.set_xlim(0, max(values) * 1.45)
        ax.tick_params(labelsize=10)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("keer gegeven;  ↑ duim omhoog,  ↓ duim omlaag (mentoren)", fontsize=10)
        ax.set_title(f"Meest gegeven antwoorden: {_short(insights.label, 40)}", fontsize=12)
        ax.spines[["top", "right"]].set_visible(False)
    else:
        fig, ax = plt.subplots(figsize=(6.4, 1.6), dpi=100)
        ax.axis("off")
        ax.text(0.5, 0.5, f"Nog geen antwoord {MIN_GROUP} keer of vaker gegeven:\nte weinig voor een grafiek.",
                ha="center", va="center", fontsize=12)
    fig.tight_layout()
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
    plt.close(fig)
    return palette_png(pixels)


def write(insights: Insights, out_dir: Path) -> list[Path]:
    """report.md, entries.csv, topics.csv, scans.csv and chart.png in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "report.md"
    md.write_text(to_markdown(insights), encoding="utf-8")
    entries = _write_csv(out_dir / "entries.csv",
                         ["entry_id", "topic", "question", "review", "answered", "up", "down", "draft_requests"],
                         ([e.entry_id, e.topic or "", e.question, _bool(e.review), shown(e.answered), shown(e.up),
                           shown(e.down), shown(e.draft_requests)] for e in insights.entries))
    topics = _write_csv(out_dir / "topics.csv", ["topic", "label", "unanswered", "forwarded"],
                        ([t.topic or "", t.label, shown(t.unanswered), shown(t.forwarded)] for t in insights.topics))
    scans = _write_csv(out_dir / "scans.csv", ["school", "in_progress", "paused", "finished"],
                       ([s.school or "", shown(s.in_progress), shown(s.paused), shown(s.finished)]
                        for s in insights.scans))
    png = out_dir / "chart.png"
    png.write_bytes(render_chart(insights))
    return [md, entries, topics, scans, png]


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def chat_messages(insights: Insights) -> list[Message]:
    """A short summary for a schoolopleider in chat, with the chart when it fits in one activity."""
    header = f"Inzicht {insights.label}, {_period(insights)}."
    top = insights.most_asked(CHAT_ENTRIES)
    if top:
        asked = [f"{header}\nMeest gevraagd:"]
        asked += [f"• {_short(e.question) or e.entry_id}: {e.answered}× (👍 {shown(e.up)}, 👎 {shown(e.down)})"
                  for e in top]
    else:
        asked = [f"{header}\nNog geen antwoord is {MIN_GROUP} keer of vaker gegeven."]
    if insights.usage_label != insights.label:
        asked.append(f"(Deze aantallen gelden voor {insights.usage_label}.)")
    messages = [Message("\n".join(asked))]

    unanswered = [t for t in insights.topics if t.unanswered][:CHAT_TOPICS]
    if unanswered:
        messages.append(Message("Vaakst zonder antwoord, per onderwerp:\n"
                                + "\n".join(f"• {t.label}: {t.unanswered}×" for t in unanswered)))
    else:
        messages.append(Message(f"Geen onderwerp bleef {MIN_GROUP} keer of vaker zonder antwoord."))

    if insights.scans:
        lines = ["Mentorscan per school (mentoren):"]
        lines += [f"• {s.label}: {shown(s.finished)} afgerond, {shown(s.paused)} gepauzeerd, {shown(s.in_progress)} bezig"
                  for s in insights.scans[:CHAT_SCHOOLS]]
        if len(insights.scans) > CHAT_SCHOOLS:
            lines.append(f"En nog {len(insights.scans) - CHAT_SCHOOLS} scholen: zie het volledige rapport.")
        messages.append(Message("\n".join(lines)))
    else:
        messages.append(Message("Nog geen mentor is aan de mentorscan begonnen."))
    messages.append(Message(f"Bij '{HIDDEN}' waren het 1 of 2, zodat niemand herkenbaar is."))

    if top:
        from bot.charts import data_uri

        image = Message("Als grafiek:", image=data_uri(render_chart(insights)))
        size = sum(len(m.text.encode()) for m in messages) + len(image.image) + len(image.text)
        if size < MAX_ACTIVITY_BYTES:
            messages.append(image)
        else:
            log.warning("insights chart left out of chat: %d bytes", size)
    return messages


# --- command line ----------------------------------------------------------------------


def _parse_since(value) -> Optional[datetime]:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value))


def cmd_insights(args) -> int:
    """`mentorwijzer insights --out DIR [--partnership P] [--school S] [--since YYYY-MM-DD]`."""
    try:
        since = _parse_since(getattr(args, "since", None))
    except ValueError:
        print("Ongeldige datum bij --since: gebruik JJJJ-MM-DD, bijvoorbeeld 2025-01-31.", file=sys.stderr)
        return 2
    insights = build(partnership=getattr(args, "partnership", None) or None,
                     school=getattr(args, "school", None) or None, since=since)
    for path in write(insights, Path(args.out)):
        print(path)
    return 0
