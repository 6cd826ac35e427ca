"""Group reports for schoolopleiders: what the mentors of a school or partnership need in the next
mentor meeting (seed 003, Leidraad step 3), from completed mentorscans only.

k-anonymity (k = ``MIN_GROUP``): every count in a report is a number of distinct *mentors*, and no
count below k is shown, so "hidden below k" really means "fewer than k people".

* A group with fewer than k completed scans (the newest per mentor, so k mentors) is not reported;
  a report asked for in chat leaves out the requester's own scans first (``exclude_mentor_id``), so
  they cannot subtract themselves.
* A section's distribution gives, per value, how many mentors gave that value on at least one item
  of the section. It counts mentors, not answers: one mentor answering 2 on all 7 items counts once
  for "2". A mentor usually gives several values, so the counts can add up to more than the group
  size. A count of 1 or 2 mentors is hidden: ``None`` in the data, ``HIDDEN`` ("<3") in markdown,
  chat and CSV; the value itself stays listed (that it occurred is not the secret, who gave it is).
* A section gets an average only when every value listed in it was given by at least k mentors
  (no hidden count). The average is taken over all answers, so next to a hidden value it would tell
  how often, and so by how few, that value was given. The chart and the chapter proposal use only
  the shown averages.
* Knowledge items answered "nee" by fewer than k mentors are not listed (and propose no chapter);
  one mentor answers an item once, so these counts are numbers of mentors too.
* No individual answer ever appears; learning goals only with ``with_goals`` (verbatim,
  unattributed, shuffled).

Residual, and of the same kind as a listed "<3" (that 1 or 2 unnamed mentors did something, never
who): the group size minus a shown count can be 1 or 2 (e.g. "4: 9" of 10 mentors says one mentor
never answered 4 in that section; 9 "nee" of 10 says one mentor answered "ja"), and in a section of
one item each mentor gives one value, so there the counts add up to the group size and a single
hidden count follows from the others.
"""
from __future__ import annotations

import csv
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import mean
from typing import Optional

from sqlalchemy import select

from bot import storage
from bot.questionnaire import Chapter, Item, Questionnaire, load_questionnaire
from bot.qa import Message

MIN_GROUP = 3
HIDDEN = f"<{MIN_GROUP}"  # how a hidden count is shown


@dataclass
class SectionSummary:
    section_id: str
    title: str
    average: Optional[float]  # None: not all answers numeric, or a count is hidden
    # value -> number of mentors who gave it on at least one item; None: fewer than MIN_GROUP (hidden)
    distribution: dict[str, Optional[int]]
    chapter: Optional[Chapter]

    @property
    def hidden(self) -> bool:
        return any(count is None for count in self.distribution.values())


@dataclass
class GroupReport:
    label: str
    scans: int
    sections: list[SectionSummary]
    no_items: list[tuple[Item, int]]  # (item, how many mentors answered nee), most first; only >= MIN_GROUP
    chapters: list[Chapter]
    goals: list[str] = field(default_factory=list)


class TooFewScans(Exception):
    def __init__(self, found: int):
        super().__init__(f"only {found} completed scan(s); at least {MIN_GROUP} are needed")
        self.found = found


def shown(count: Optional[int]) -> str:
    """A count of mentors as printed: the number, or HIDDEN."""
    return HIDDEN if count is None else str(count)


def _latest_completed_answers(school: Optional[str], partnership: Optional[str], since: Optional[datetime],
                              questionnaire: Questionnaire,
                              exclude_mentor_id: Optional[str] = None) -> list[dict[str, str]]:
    """Per mentor their newest completed run's answers (one scan per mentor)."""
    with storage.session_scope() as session:
        query = (
            select(storage.ScanRun)
            .join(storage.Mentor)
            .where(storage.ScanRun.questionnaire_id == questionnaire.id, storage.ScanRun.completed_at.is_not(None))
            .order_by(storage.ScanRun.completed_at)
        )
        if school:
            query = query.where(storage.Mentor.school == school)
        if partnership:
            query = query.where(storage.Mentor.partnership == partnership)
        if since:
            query = query.where(storage.ScanRun.completed_at >= since)
        if exclude_mentor_id:
            query = query.where(storage.ScanRun.mentor_id != exclude_mentor_id)
        newest: dict[str, int] = {}
        for run in session.execute(query).scalars():
            newest[run.mentor_id] = run.id
        return [storage.run_answers(session, run_id) for run_id in newest.values()]


def build(school: Optional[str] = None, partnership: Optional[str] = None, since: Optional[datetime] = None,
          with_goals: bool = False, questionnaire_id: str = "mentorscan",
          exclude_mentor_id: Optional[str] = None) -> GroupReport:
    """The report of one group; ``exclude_mentor_id`` (the requester) is left out before the k check."""
    questionnaire = load_questionnaire(questionnaire_id)
    scans = _latest_completed_answers(school, partnership, since, questionnaire, exclude_mentor_id)
    if len(scans) < MIN_GROUP:
        raise TooFewScans(len(scans))
    sections = []
    no_counts: Counter = Counter()
    goals = []
    for section in questionnaire.sections:
        values: list[str] = []  # every answer (mentors x items), for the average only
        mentors_per_value: Counter = Counter()  # value -> number of mentors who gave it
        for answers in scans:
            given: set[str] = set()
            for item in section.items:
                value = answers.get(item.id)
                if value is None:
                    continue
                scale = questionnaire.scale_of(item)
                if scale is None:
                    if value.strip().lower() not in ("geen", "nee", "-", ""):
                        goals.append(value.strip())
                    continue
                values.append(value)
                given.add(value)
                if scale.type == "yes_no" and value == "nee":
                    no_counts[item.id] += 1
            mentors_per_value.update(given)
        if not values:
            continue
        numeric = [int(v) for v in values if v.isdigit()]
        distribution = {value: count if count >= MIN_GROUP else None
                        for value, count in sorted(mentors_per_value.items())}
        hidden = None in distribution.values()
        sections.append(SectionSummary(
            section.id, (section.title or section.part).rstrip(": "),
            round(mean(numeric), 2) if numeric and len(numeric) == len(values) and not hidden else None,
            distribution, section.chapter,
        ))
    no_items = [(questionnaire.item(item_id), count) for item_id, count in no_counts.most_common()
                if count >= MIN_GROUP]
    chapters: list[Chapter] = []
    scored = sorted((s for s in sections if s.average is not None), key=lambda s: s.average)
    for summary in scored[:2]:
        if summary.chapter and summary.chapter not in chapters:
            chapters.append(summary.chapter)
    for item, _count in no_items:
        chapter = questionnaire.section_of(item.id).chapter
        if chapter and chapter not in chapters:
            chapters.append(chapter)
    label = school or (partnership and f"partnerschap {partnership}") or "alle scholen"
    random.shuffle(goals)
    return GroupReport(label, len(scans), sections, no_items, chapters, goals if with_goals else [])


def to_markdown(report: GroupReport) -> str:
    lines = [f"# Mentorscan: groepsoverzicht {report.label}", "",
             f"Gebaseerd op {report.scans} afgeronde scans (de nieuwste per mentor). "
             "Losse antwoorden van mentoren staan niet in dit overzicht.", "",
             "## Gemiddelde per onderdeel", "",
             "Bij elk antwoord staat hoeveel mentoren het gaven bij minstens één vraag van het onderdeel. "
             "Een mentor geeft meestal meer dan één antwoord, dus samen kunnen de aantallen hoger zijn dan het "
             "aantal mentoren.", "",
             f"Kwam een antwoord van minder dan {MIN_GROUP} mentoren, dan staat er '{HIDDEN}' en ontbreekt het "
             "gemiddelde van dat onderdeel, zodat niemand herkenbaar is.", "",
             "| onderdeel | gemiddelde | aantal mentoren per antwoord |", "|---|---|---|"]
    for s in report.sections:
        average = f"{s.average:.2f}".replace(".", ",") if s.average is not None else "–"
        distribution = ", ".join(f"{k}: {shown(v)}" for k, v in s.distribution.items())
        lines.append(f"| {s.section_id} {s.title} | {average} | {distribution} |")
    lines += ["", "## Kennisvragen die het vaakst met 'nee' zijn beantwoord", "",
              f"Alleen vragen die minstens {MIN_GROUP} mentoren met 'nee' beantwoordden.", ""]
    lines += [f"- {item.text} (nee van {count} mentoren)" for item, count in report.no_items] or ["- geen"]
    lines += ["", "## Voorstel voor de volgende mentorbijeenkomst", ""]
    lines += [f"- Hoofdstuk {c.id} {c.title} (OnderwijsOnline)" for c in report.chapters] or ["- geen duidelijke voorkeur"]
    if report.goals:
        lines += ["", "## Persoonlijke leerdoelen (letterlijk, zonder naam, in willekeurige volgorde)", ""]
        lines += [f"- {goal}" for goal in report.goals]
    return "\n".join(lines) + "\n"


def write(report: GroupReport, out_dir: Path) -> list[Path]:
    """report.md, report.csv and report.png in ``out_dir``."""
    from bot.charts import render_bars

    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "report.md"
    md.write_text(to_markdown(report), encoding="utf-8")
    csv_path = out_dir / "report.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        # mentors_per_value: per value the number of mentors who gave it (HIDDEN below MIN_GROUP)
        writer.writerow(["group", "scans", "section", "title", "average", "mentors_per_value", "chapter"])
        for s in report.sections:
            writer.writerow([report.label, report.scans, s.section_id, s.title,
                             "" if s.average is None else s.average,
                             ";".join(f"{k}={shown(v)}" for k, v in s.distribution.items()),
                             f"{s.chapter.id} {s.chapter.title}" if s.chapter else ""])
    png = out_dir / "report.png"
    scored = [s for s in report.sections if s.average is not None]
    png.write_bytes(render_bars(
        [f"{s.section_id} {s.chapter.title if s.chapter else ''}".strip() for s in scored],
        [s.average for s in scored], f"Mentorscan {report.label} (n={report.scans})",
        highlight={f"{s.section_id} {s.chapter.title if s.chapter else ''}".strip() for s in scored
                   if s.average == min(x.average for x in scored)},
    ))
    return [md, csv_path, png]


def chat_report(sender_id: str) -> list[Message]:
    """The same summary in chat for an admin, for the school in their profile, without the admin's
    own scans (any of their linked channels)."""
    with storage.session_scope() as session:
        identity = session.get(storage.Identity, sender_id)
        mentor_id = identity.mentor_id if identity else None
        school = identity.mentor.school if identity else None
        partnership = identity.mentor.partnership if identity else None
    if not school and not partnership:
        return [Message("Voor welke school wil je het rapport? Vertel eerst waar je werkt, bijvoorbeeld 'ik werk op de Regenboog'.")]
    try:
        report = build(school=school, partnership=None if school else partnership, exclude_mentor_id=mentor_id)
    except TooFewScans as exc:
        return [Message(f"Voor {school or partnership} zijn er pas {exc.found} afgeronde scans (je eigen scan telt niet mee). "
                        f"Een groepsoverzicht maak ik pas vanaf {MIN_GROUP} mentoren, zodat niemand herkenbaar is.")]
    lines = [f"Groepsoverzicht {report.label} ({report.scans} scans):"]
    for s in report.sections:
        if s.average is not None:
            lines.append(f"• {s.section_id}: " + f"{s.average:.1f}".replace(".", ","))
    hidden = [s.section_id for s in report.sections if s.hidden and all(v.isdigit() for v in s.distribution)]
    if hidden:
        lines.append(f"Zonder gemiddelde (een antwoord kwam daar van minder dan {MIN_GROUP} mentoren): {', '.join(hidden)}")
    if report.chapters:
        lines.append("Voorstel voor de bijeenkomst: " + "; ".join(f"hoofdstuk {c.id} {c.title}" for c in report.chapters))
    from bot.charts import data_uri, render_bars

    scored = [s for s in report.sections if s.average is not None]
    if not scored:
        return [Message("\n".join(lines))]
    png = render_bars([s.section_id for s in scored], [s.average for s in scored], f"Mentorscan {report.label}")
    return [Message("\n".join(lines)), Message("Als grafiek:", image=data_uri(png))]
