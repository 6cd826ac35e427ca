"""Build the Dutch spaCy pipeline Rasa's SpacyNLP loads: blank `nl` + lookup lemmatizer.

No Dutch spaCy model can be downloaded here; spacy-lookups-data ships the lemma tables, so the
pipeline is derived data built at install time (not committed).
"""
import sys
from pathlib import Path

import spacy


def main(target: str) -> None:
    nlp = spacy.blank("nl")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(target)
    lemmas = [token.lemma_ for token in nlp("mijn student stagneert")]
    print(f"built {target}: 'mijn student stagneert' -> {lemmas}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/nl_lemma")
