"""`rasa data validate --fail-on-warnings`, minus one false positive.

Rasa warns that a response is "not used in any story or rule" even when a custom action sends
it with ``dispatcher.utter_message(response=...)``. This check counts those uses as uses and
fails on every other warning, exactly like ``--fail-on-warnings``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNUSED = re.compile(r"The utterance '([\w/]+)' is not used in any story or rule")
# Rasa merges retrieval intents found in the NLU data into the domain and then warns that the
# domain (which must list them) has them twice.
DUPLICATE = re.compile(r"duplicated intents have been found across multiple domain files: ([\w, ]+)")


# Intents that only ever come from buttons (payloads such as /vote_up{...}); they have no NLU
# examples on purpose, so they never compete with typed messages (data/nlu/mensen.yml).
BUTTON_ONLY_INTENTS = {"vote_up", "vote_down", "answer_question", "add_to_knowledge", "remind_me"}
NO_EXAMPLES = re.compile(r"The intent '(\w+)' is listed in the domain file, but is not found in the NLU training data")


def retrieval_intents() -> set[str]:
    found = set()
    for path in (ROOT / "data").rglob("*.yml"):
        found |= set(re.findall(r"intent:\s*(\w+)/", path.read_text(encoding="utf-8")))
    return found


def responses_used_by_actions() -> set[str]:
    used = set()
    for path in (ROOT / "actions").glob("*.py"):
        used |= set(re.findall(r"response=\"(utter_\w+)\"", path.read_text(encoding="utf-8")))
    return used


def main() -> int:
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    result = subprocess.run([str(ROOT / ".venv/bin/rasa"), "data", "validate", "--quiet"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    output = result.stdout + result.stderr
    used = responses_used_by_actions()
    problems = []
    for line in output.splitlines():
        if "UserWarning" not in line and "ERROR" not in line:
            continue
        match = UNUSED.search(line)
        if match and match.group(1) in used:
            continue
        no_examples = NO_EXAMPLES.search(line)
        if no_examples and no_examples.group(1) in BUTTON_ONLY_INTENTS:
            continue
        duplicate = DUPLICATE.search(line)
        if duplicate and {name.strip() for name in duplicate.group(1).split(",")} <= retrieval_intents():
            continue
        problems.append(line.strip())
    if result.returncode != 0 or problems:
        print(output if result.returncode != 0 else "\n".join(problems))
        print("rasa data validate: FAILED")
        return 1
    print(f"rasa data validate: ok (responses sent by actions: {', '.join(sorted(used))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
