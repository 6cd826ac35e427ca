"""`mentorwijzer`: operator commands (export, report, forget, purge, contacts, staff, questions, reminders, insights, channels, secrets)."""
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
    if args.date:  # after this date the mentors are invited to the training evaluation (bot/reminders.py)
        from bot import reminders

        reminders.record_training(args.school, datetime.fromisoformat(args.date).date())
        print(f"training date {args.date} recorded for {args.school}")
    return 0


# --- people in the loop (issue 16) ------------------------------------------------------------


def cmd_staff_add(args) -> int:
    from bot import staff

    try:
        registered = staff.add(args.name, args.email, args.role, args.school, args.partnership, args.report_admin)
    except staff.StaffError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"staff member {registered.staff_id} registered.")
    print(f"link code: {registered.code} (valid {registered.valid_days} days, once)")
    print("Send it to the person: they type it in their Teams or Telegram chat with Mentorwijzer.")
    return 0


def cmd_staff_list(args) -> int:
    from bot import staff

    rows = staff.list_all()
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for row in rows:
        print(f"{row['id']:>4}  {row['role']:<20} {row['school'] or '-':<30} {row['name']} <{row['email']}>"
              f"{'  report-admin' if row['report_admin'] else ''}  {'linked' if row['linked'] else 'not linked'}")
    return 0


def cmd_staff_code(args) -> int:
    from bot import staff

    code = staff.new_code(args.id)
    if code is None:
        print(f"no staff member {args.id}", file=sys.stderr)
        return 1
    print(f"link code: {code} (valid {get_settings().staff_code_valid_days} days, once)")
    return 0


def cmd_staff_remove(args) -> int:
    from bot import staff

    if not staff.remove(args.id):
        print(f"no staff member {args.id}", file=sys.stderr)
        return 1
    print(f"staff member {args.id} removed")
    return 0


def cmd_questions_list(args) -> int:
    from bot import handoff

    rows = handoff.list_questions(args.status)
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for row in rows:
        text = " ".join(row["question"].split())
        print(f"{row['id']:>5}  {row['status']:<9} {row['school'] or '-':<25} to {row['routed_to'] or '-'}: {text[:80]}")
    return 0


def cmd_questions_answer(args) -> int:
    import asyncio

    from bot import delivery, handoff

    outcome, _ = handoff.answer(args.id, args.text)
    if outcome != "ok":
        print({"not_allowed": f"no question {args.id}", "not_open": f"question {args.id} is not open",
               "empty": "the answer is empty"}[outcome], file=sys.stderr)
        return 1
    counts = asyncio.run(delivery.flush())
    print(f"question {args.id} answered; " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


def cmd_knowledge_drafts(args) -> int:
    from bot import handoff

    text = handoff.knowledge_drafts()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(args.out)
    else:
        sys.stdout.write(text)
    return 0


def cmd_remind(args) -> int:
    """The periodic job (systemd timer / cron, every 15 minutes): reminders, escalations, then deliver."""
    import asyncio

    from bot import delivery, handoff, reminders

    counts = {f"reminders_{k}": v for k, v in reminders.run().items()}
    counts.update(handoff.escalate_overdue())
    counts.update(asyncio.run(delivery.flush()))
    print(", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


def cmd_deliver(args) -> int:
    import asyncio

    from bot import delivery

    counts = asyncio.run(delivery.flush())
    print(", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


def cmd_insights(args) -> int:
    from bot import insights

    return insights.cmd_insights(args)


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

    p.add_argument("--date", help="YYYY-MM-DD of the training: afterwards the mentors are invited to evaluate it")

    staff = sub.add_parser("staff", help="schoolopleiders who answer forwarded questions").add_subparsers(
        dest="action", required=True)
    p = staff.add_parser("add", help="register a staff member and print their one-time link code")
    p.add_argument("--name", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--role", default="schoolopleider", choices=["schoolopleider", "partnership-contact"])
    p.add_argument("--school", help="required for a schoolopleider")
    p.add_argument("--partnership", help="partnership id (knowledge/partnerships.yml)")
    p.add_argument("--report-admin", action="store_true", help="may ask for 'inzichten' in chat")
    p.set_defaults(func=cmd_staff_add)
    p = staff.add_parser("list", help="registered staff members")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_staff_list)
    p = staff.add_parser("code", help="a new link code for a staff member")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_staff_code)
    p = staff.add_parser("remove", help="remove a staff member")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_staff_remove)

    questions = sub.add_parser("questions", help="questions mentors forwarded to a person").add_subparsers(
        dest="action", required=True)
    p = questions.add_parser("list", help="forwarded questions (with their texts: for operators only)")
    p.add_argument("--status", choices=["open", "answered"])
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_questions_list)
    p = questions.add_parser("answer", help="answer a question for the person it was sent to; delivered to the mentor")
    p.add_argument("id", type=int)
    p.add_argument("text")
    p.set_defaults(func=cmd_questions_answer)

    knowledge = sub.add_parser("knowledge", help="the knowledge base").add_subparsers(dest="action", required=True)
    p = knowledge.add_parser("drafts", help="answers marked 'toevoegen aan kennisbank', as entries to review (YAML)")
    p.add_argument("--out", help="file (default: standard output)")
    p.set_defaults(func=cmd_knowledge_drafts)

    p = sub.add_parser("remind", help="send due reminders and invitations, escalate overdue questions, deliver "
                       "(run every 15 minutes)")
    p.set_defaults(func=cmd_remind)
    p = sub.add_parser("deliver", help="send pending proactive messages (Telegram, Teams, e-mail)")
    p.set_defaults(func=cmd_deliver)
    p = sub.add_parser("insights", help="usage insight for the partnership (k-anonymous): report.md, CSV, chart")
    p.add_argument("--out", required=True, help="directory")
    p.add_argument("--partnership")
    p.add_argument("--school")
    p.add_argument("--since", help="YYYY-MM-DD")
    p.set_defaults(func=cmd_insights)

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
