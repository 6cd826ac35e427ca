"""The directory of real people per school (name, role, e-mail), maintained by the schoolopleider.

Imported from CSV all-or-nothing: every row is validated first, bad rows are reported with their
line numbers, and only a clean file is written (in one transaction). No contacts ship in the repo.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from sqlalchemy import select

from bot import storage
from bot.knowledge import ROLES, normalize

REQUIRED = ("school", "role", "name", "email")
EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[a-z]{2,}$", re.IGNORECASE)
ROLE_ALIASES = {normalize(r.replace("_", " ")): r for r in ROLES} | {
    "so": "schoolopleider", "slb er": "slb", "studieloopbaanbegeleider": "slb", "io": "instituutsopleider",
    "directeur": "schoolleider", "coordinerend so": "coordinerend_schoolopleider",
}


class ContactsError(ValueError):
    pass


def _role(value: str) -> str | None:
    return ROLE_ALIASES.get(normalize(value))


def import_csv(path: Path) -> int:
    """Validate and import; raises ContactsError listing every bad line, importing nothing then."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContactsError(f"{path}: cannot read: {exc}") from None
    reader = csv.DictReader(text.splitlines(), skipinitialspace=True)
    headers = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [column for column in REQUIRED if column not in headers]
    if missing:
        raise ContactsError(f"{path}: missing column(s): {', '.join(missing)} (need {', '.join(REQUIRED)}[, partnership])")
    rows, errors = [], []
    for line_number, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        problems = [f"empty {c}" for c in REQUIRED if not row.get(c)]
        role = _role(row.get("role", ""))
        if row.get("role") and role is None:
            problems.append(f"unknown role {row['role']!r}")
        if row.get("email") and not EMAIL.match(row["email"]):
            problems.append(f"invalid e-mail {row['email']!r}")
        if problems:
            errors.append(f"line {line_number}: " + "; ".join(problems))
            continue
        rows.append({"school": row["school"], "role": role, "name": row["name"],
                     "email": row["email"].lower(), "partnership": row.get("partnership") or None})
    if errors:
        raise ContactsError(f"{path}: nothing imported, {len(errors)} bad row(s):\n" + "\n".join(errors))
    with storage.session_scope() as session:
        for row in rows:
            existing = session.execute(select(storage.Contact).where(
                storage.Contact.school == row["school"], storage.Contact.role == row["role"],
                storage.Contact.email == row["email"])).scalar_one_or_none()
            if existing is None:
                session.add(storage.Contact(**row))
            else:
                existing.name, existing.partnership = row["name"], row["partnership"]
    return len(rows)
