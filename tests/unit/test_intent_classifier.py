"""bot.intent_classifier: trains on Rasa's sparse sentence features, ranks intents, and a model
loaded from disk (numpy arrays, no pickle) predicts exactly what the trained one did."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.intent_classifier import LinearIntentClassifier

# Toy vocabulary: columns 0-1 mean greet, 2-3 goodbye, 4-5 thank.
VOCABULARY = ["hoi", "hallo", "doei", "dag", "bedankt", "dankjewel"]


def message(words: str, intent: str | None = None) -> Message:
    counts = np.zeros((1, len(VOCABULARY)))
    for word in words.split():
        counts[0, VOCABULARY.index(word)] += 1
    data = {TEXT: words, **({"intent": intent} if intent else {})}
    msg = Message(data=data)
    msg.add_features(Features(csr_matrix(counts), FEATURE_TYPE_SENTENCE, TEXT, "CountVectorsFeaturizer"))
    return msg


@pytest.fixture
def storage(tmp_path):
    return LocalModelStorage(tmp_path)


def train(storage) -> tuple[LinearIntentClassifier, Resource]:
    resource = Resource("intent_classifier")
    context = ExecutionContext(GraphSchema({}), "test")
    classifier = LinearIntentClassifier.create({}, storage, resource, context)
    examples = [message(words, intent) for intent, phrasings in {
        "greet": ["hoi", "hallo", "hoi hallo"],
        "goodbye": ["doei", "dag", "doei dag"],
        "thank": ["bedankt", "dankjewel", "bedankt dankjewel"],
    }.items() for words in phrasings]
    classifier.train(TrainingData(training_examples=examples))
    return classifier, resource


def test_intent_classifier_predicts_and_ranks_intents(storage):
    classifier, _ = train(storage)
    [greeting, farewell] = classifier.process([message("hallo hoi"), message("dag")])
    assert greeting.get("intent")["name"] == "greet"
    assert farewell.get("intent")["name"] == "goodbye"
    ranking = greeting.get("intent_ranking")
    assert [r["name"] for r in ranking][0] == "greet" and len(ranking) == 3
    assert ranking == sorted(ranking, key=lambda r: -r["confidence"])
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0)


def test_intent_classifier_loaded_from_disk_predicts_the_same(storage):
    classifier, resource = train(storage)
    context = ExecutionContext(GraphSchema({}), "test")
    loaded = LinearIntentClassifier.load({}, storage, resource, context)
    probes = [message("hoi"), message("doei bedankt"), message("dankjewel dag dag")]
    assert np.allclose(classifier.predict(probes), loaded.predict(probes))


def test_intent_classifier_without_training_leaves_messages_alone(storage):
    context = ExecutionContext(GraphSchema({}), "test")
    untrained = LinearIntentClassifier.load({}, storage, Resource("never_trained"), context)
    [msg] = untrained.process([message("hoi")])
    assert msg.get("intent") is None
