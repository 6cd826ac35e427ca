"""Sanity checks for the NLU training data (no Rasa needed, only PyYAML).

    python scripts/check_nlu_data.py            # exit 1 on any problem

1. every data/nlu/**/*.yml and tests/eval/nlu_holdout.yml parses and has `version` + `nlu`;
2. no example text occurs twice, within or across intents and files (compared without entity
   annotation markup, ignoring case and whitespace; texts that differ only in ?!.,;: are a
   problem across intents and a note within one intent);
3. no held-out example (tests/eval/nlu_holdout.yml, tests/eval/questions*.yml) occurs in the
   training data;
4. role / study_phase / partnership entities end up as one of the known values, either directly
   or via a synonym block (or an explicit {"value": ...});
5. every synonym variant occurs annotated in at least one training example (Rasa only maps
   synonyms on text the model extracted);
6. every line of an `examples: |` block is an example: a `# comment` there is text to YAML, and
   Rasa skips it with a warning (put comments above `- intent:`).

`make validate` runs it (with scripts/validate.py and `mentorwijzer check-knowledge`).
"""
from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
NLU_DIR = ROOT / "data" / "nlu"
HOLDOUT = ROOT / "tests" / "eval" / "nlu_holdout.yml"
QUESTIONS = sorted((ROOT / "tests" / "eval").glob("questions*.yml"))  # held-out knowledge questions ({text: ...})
ALLOWED = {
    "role": {"mentor", "student", "slb", "schoolopleider", "coordinerend_schoolopleider", "schoolleider",
             "instituutsopleider", "coordinerend_instituutsopleider", "programmaleider", "bestuurder",
             "stuurgroep", "stagebureau", "tandem"},
    "study_phase": {"jaar1", "jaar2", "jaar3", "jaar4", "lio"},
    "partnership": {"noord-holland", "amsterdam", "isop"},
}
# [text](entity) | [text]{"entity": ..., "value": ...} | [text](entity:value) (Rasa 2 style)
ANNOTATION = re.compile(r"\[([^\]]+)\](?:\(([^)]+)\)|(\{[^}]*\}))")


def examples_of(block: dict) -> list[str]:
    text = block.get("examples") or ""
    return [line[2:].strip() for line in text.splitlines() if line.strip().startswith("- ")]


def stray_lines(block: dict) -> list[str]:
    """Lines of an examples block that are not examples (Rasa skips them)."""
    text = block.get("examples") or ""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("- ")]


def plain(example: str) -> str:
    return ANNOTATION.sub(lambda m: m.group(1), example)


def normalise(text: str, punctuation: bool = True) -> str:
    """Lowercase, whitespace collapsed; with punctuation=False also without ?!.,;:"""
    text = text.lower() if punctuation else re.sub(r"[?!.,;:]", " ", text.lower())
    return " ".join(text.split())


def entities(example: str) -> list[tuple[str, str, str | None]]:
    """(surface text, entity, explicit value or None) for each annotation."""
    found = []
    for match in ANNOTATION.finditer(example):
        surface, short, long = match.groups()
        if short:
            name, _, value = short.partition(":")
            found.append((surface, name, value or None))
        else:
            spec = json.loads(long)
            found.append((surface, spec["entity"], spec.get("value")))
    return found


def load(path: Path, problems: list[str]) -> list[dict]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        problems.append(f"{path}: YAML error: {exc}")
        return []
    if not isinstance(data, dict) or "nlu" not in data or "version" not in data:
        problems.append(f"{path}: needs top-level `version` and `nlu`")
        return []
    return data["nlu"] or []


def main() -> int:
    problems: list[str] = []
    seen: dict[str, list[str]] = defaultdict(list)
    loose: dict[str, set[tuple[str, str]]] = defaultdict(set)  # without punctuation -> (text, intent)
    synonyms: dict[str, str] = {}       # variant (lowercase) -> value
    annotated: list[tuple[str, str, str | None, str]] = []  # surface, entity, value, where
    counts: dict[str, int] = defaultdict(int)

    files = sorted(NLU_DIR.rglob("*.yml"))
    for path in files:
        rel = path.relative_to(ROOT)
        for block in load(path, problems):
            if "synonym" in block:
                for variant in examples_of(block):
                    key = variant.lower()
                    if key in synonyms and synonyms[key] != str(block["synonym"]):
                        problems.append(f"{rel}: synonym {variant!r} maps to both {synonyms[key]!r} and {block['synonym']!r}")
                    synonyms[key] = str(block["synonym"])
                continue
            if "intent" not in block:
                continue  # lookup / regex blocks
            intent = block["intent"]
            for line in stray_lines(block):
                problems.append(f"{rel}:{intent}: not an example, Rasa skips it (comments go above the block): {line!r}")
            for example in examples_of(block):
                counts[intent] += 1
                seen[normalise(plain(example))].append(f"{rel}:{intent}")
                loose[normalise(plain(example), punctuation=False)].add((normalise(plain(example)), intent))
                for surface, name, value in entities(example):
                    annotated.append((surface, name, value, f"{rel}:{intent}: {example}"))

    for text, where in seen.items():
        if len(where) > 1:
            problems.append(f"duplicate example {text!r} in {', '.join(where)}")

    notes = []
    for variants in loose.values():
        if len({text for text, _ in variants}) > 1:
            message = f"differ only in punctuation: {sorted(variants)}"
            (problems if len({intent for _, intent in variants}) > 1 else notes).append(message)

    if HOLDOUT.exists():
        for block in load(HOLDOUT, problems):
            for example in examples_of(block):
                if normalise(plain(example), punctuation=False) in loose:
                    problems.append(f"held-out example also in training data: {example!r}")

    for questions in QUESTIONS:
        for case in yaml.safe_load(questions.read_text(encoding="utf-8")) or []:
            if normalise(str(case.get("text", "")), punctuation=False) in loose:
                problems.append(f"held-out question ({questions.name}) also in training data: {case.get('text')!r}")

    used_variants = set()
    for surface, name, value, where in annotated:
        final = value if value is not None else synonyms.get(surface.lower(), surface.lower())
        if value is None:
            used_variants.add(surface.lower())
        else:
            synonyms.setdefault(surface.lower(), value)
            used_variants.add(surface.lower())
        if name in ALLOWED and final not in ALLOWED[name]:
            problems.append(f"{where}: {name} {surface!r} -> {final!r} is not one of {sorted(ALLOWED[name])}")
    for variant, value in sorted(synonyms.items()):
        if variant not in used_variants:
            problems.append(f"synonym variant {variant!r} (-> {value}) is never annotated in a training example")
        if not any(value in allowed for allowed in ALLOWED.values()):
            problems.append(f"synonym value {value!r} is not a known entity value")

    print("examples per intent:", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    for note in notes:
        print("NOTE:", note)
    for problem in problems:
        print("PROBLEM:", problem)
    print(f"{len(files)} files, {sum(counts.values())} examples, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
