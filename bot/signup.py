"""The seed's 'Aanmeldingsformulier mentortraining' (Leidraad step 4), pre-filled for one school."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from bot import reports, storage

SIGNUP_ADDRESS = "opleideninschool@iselinge.nl"  # as stated in the Leidraad (seed 003)


def participating_mentors(school: str) -> int:
    """Mentors of the school with a completed mentorscan (a count: names are not needed)."""
    with storage.session_scope() as session:
        return session.execute(
            select(func.count(func.distinct(storage.ScanRun.mentor_id)))
            .join(storage.Mentor)
            .where(storage.Mentor.school == school, storage.ScanRun.completed_at.is_not(None))
        ).scalar_one()


def write_form(school: str, out: Path) -> Path:
    count = participating_mentors(school)
    try:
        report = reports.build(school=school)
        topics = [f"Hoofdstuk {c.id} {c.title}" for c in report.chapters] or ["(nog te bepalen)"]
    except reports.TooFewScans as exc:
        topics = [f"(nog te bepalen: pas {exc.found} afgeronde scans, een advies volgt vanaf {reports.MIN_GROUP})"]
    lines = [
        "# Aanmeldingsformulier mentortraining", "",
        f"School/scholen: {school}",
        "(School-)opleider: ",
        "Directeur/schoolleider: ",
        f"Deelnemende mentoren: {count} (met een afgeronde mentorscan)",
        "Onderwerpen/aandachtsgebieden mentortraining:",
        *[f"- {topic}" for topic in topics],
        "Datum training: ", "",
        f"Mail dit formulier s.v.p. naar {SIGNUP_ADDRESS}.",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
