"""`mentorwijzer`: operator commands (export, report, forget, purge, contacts, channels, secrets)."""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Optional

from sqlalchemy import select

from bot import storage
from bot.settings import get_settings


def _export_rows(questionnaire: Optional[str]) -> list[dict]:
    with storage.session_scope() as session:
        query = (
            select(storage.ScanRun.mentor_id, storage.ScanRun.id, storage.ScanRun.questionnaire_id,
                   storage.ScanRun.questionnaire_version, storage.ScanRun.completed_at,
                   storage.Answer.item_id, storage.Answer.value, storage.Answer.answered_at)
            .join(storage.Answer, storage.Answer.run_id == storage.ScanRun.id)
            .order_by(storage.ScanRun.id, storage.Answer.answered_at)
        )
        if questionnaire:
            query = query.where(storage.ScanRun.questionnaire_id == questionnaire)
        return [
            {"mentor_id": mentor_id, "run_id": run_id, "questionnaire": qid, "version": version,
             "item_id": item_id, "value": value, "answered_at": answered_at.isoformat(timespec="seconds"),
             "completed": completed_at is not None}
            for mentor_id, run_id, qid, version, completed_at, item_id, value, answered_at in session.execute(query)
        ]


def cmd_export(args) -> int:
    rows = _export_rows(args.questionnaire)
    out = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout
    try:
        if args.format == "json":
            json.dump(rows, out, ensure_ascii=False, indent=2)
            out.write("\n")
        else:
            writer = csv.DictWriter(out, fieldnames=["mentor_id", "run_id", "questionnaire", "version", "item_id",
                                                     "value", "answered_at", "completed"])
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if args.out:
            out.close()
    print(f"exported {len(rows)} answers", file=sys.stderr)
    return 0


def cmd_forget(args) -> int:
    from bot import privacy

    try:
        counts = privacy.forget(args.id)
    except privacy.DeletionFailed as failure:
        done = "conversations were deleted, profile and answers NOT" if failure.conversations_deleted \
            else "nothing was deleted"
        print(f"deletion failed in the {failure} ({done}); see the log, fix it and run forget again", file=sys.stderr)
        return 1
    if counts is None:
        print(f"no mentor or sender with id {args.id!r}", file=sys.stderr)
        return 1
    print("deleted: " + ", ".join(f"{key}={value}" for key, value in counts.items()))
    return 0


def cmd_purge(args) -> int:
    days = args.days or get_settings().retention_days
    from bot import conversation_history

    with storage.session_scope() as session:
        counts = storage.purge_older_than(session, days)
    try:
        counts.update(conversation_history.purge_older_than(days))
    except conversation_history.HistoryError as error:
        print(f"purged data older than {days} days: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
        print(f"conversation history NOT purged: {error}", file=sys.stderr)
        return 1
    print(f"purged data older than {days} days: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


def cmd_report(args) -> int:
    from bot import reports

    since = datetime.fromisoformat(args.since) if args.since else None
    try:
        report = reports.build(args.school, args.partnership, since, with_goals=args.with_goals)
    except reports.TooFewScans as exc:
        print(f"not reported: {exc} (k-anonymity)", file=sys.stderr)
        return 2
    for path in reports.write(report, Path(args.out)):
        print(path)
    return 0


def cmd_training_signup(args) -> int:
    from bot import signup

    path = signup.write_form(args.school, Path(args.out))
    print(path)
    return 0


def cmd_contacts_import(args) -> int:
    from bot import contacts

    try:
        count = contacts.import_csv(Path(args.file))
    except contacts.ContactsError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"imported {count} contacts")
    return 0


def cmd_db_upgrade(args) -> int:
    from bot import db_migrate

    print(f"database schema at revision {db_migrate.upgrade()}")
    return 0


def cmd_check_knowledge(args) -> int:
    from bot.knowledge import KnowledgeError, load_knowledge
    from bot.questionnaire import QuestionnaireError, available_questionnaires, load_questionnaire

    try:
        kb = load_knowledge()
        questionnaires = [load_questionnaire(qid) for qid in available_questionnaires()]
    except (KnowledgeError, QuestionnaireError) as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    review = sum(1 for entry in kb.entries if entry.review)
    print(f"knowledge ok: {len(kb.entries)} entries ({review} marked for review); "
          + ", ".join(f"{q.id} v{q.version} ({len(q.items)} items)" for q in questionnaires))
    return 0


def cmd_telegram(args) -> int:
    from bot.channels import telegram

    telegram.run(webhook_url=args.webhook_url)
    return 0


def cmd_teams_manifest(args) -> int:
    from bot import teams_manifest

    print(teams_manifest.write_package(Path(args.out)))
    return 0


def cmd_serve_env(args) -> int:
    from bot import serving

    variables = serving.environment(Path(args.credentials_out))
    notices = serving.notices(get_settings())
    if notices:
        print("mentorwijzer: REST only on " + get_settings().host + "; " + "; ".join(notices), file=sys.stderr)
    sys.stdout.write(serving.shell_exports(variables))
    return 0


def cmd_api_token(args) -> int:
    from bot import keys

    print(keys.create_api_token())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mentorwijzer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="write all stored answers (one row per answer)")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--questionnaire")
    p.add_argument("--out", help="file (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("forget", help="delete everything about one mentor (mentor id or sender id)")
    p.add_argument("id")
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("purge", help="delete data older than MENTORWIJZER_RETENTION_DAYS (run daily)")
    p.add_argument("--days", type=int)
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("report", help="group report for schoolopleiders (k-anonymous)")
    p.add_argument("--school")
    p.add_argument("--partnership")
    p.add_argument("--since", help="YYYY-MM-DD")
    p.add_argument("--with-goals", action="store_true", help="include learning goals verbatim (unattributed)")
    p.add_argument("--out", required=True, help="directory for report.md, report.csv, report.png")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("training-signup", help="pre-filled 'Aanmeldingsformulier mentortraining'")
    p.add_argument("--school", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_training_signup)

    contacts = sub.add_parser("contacts", help="the directory of people per school").add_subparsers(dest="action", required=True)
    p = contacts.add_parser("import", help="import contacts.csv (school,role,name,email[,partnership])")
    p.add_argument("file")
    p.set_defaults(func=cmd_contacts_import)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="action", required=True)
    p = db.add_parser("upgrade", help="create or upgrade the tables")
    p.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("check-knowledge", help="validate knowledge/ and the questionnaires")
    p.set_defaults(func=cmd_check_knowledge)

    p = sub.add_parser("telegram", help="run the Telegram bot (long polling, or --webhook-url)")
    p.add_argument("--webhook-url")
    p.set_defaults(func=cmd_telegram)

    p = sub.add_parser("serve-env", help="(for scripts/serve.sh, chat.sh) export lines + credentials file")
    p.add_argument("--credentials-out", default=str(get_settings().var_dir / "run" / "credentials.yml"))
    p.set_defaults(func=cmd_serve_env)

    p = sub.add_parser("api-token", help="create (once) and print the token that switches on Rasa's HTTP API")
    p.set_defaults(func=cmd_api_token)

    p = sub.add_parser("teams-manifest", help="write the Teams app package (zip)")
    p.add_argument("--out", default="mentorwijzer-teams.zip")
    p.set_defaults(func=cmd_teams_manifest)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=get_settings().log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
