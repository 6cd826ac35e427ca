"""Rasa intent classifier: tf-idf weighting + multinomial logistic regression over the pipeline's
sparse sentence features (lemma 1-2-grams, character 1-4-grams, the link-code regex).

Why not DIET: with a few thousand short, typed messages and no pretrained Dutch vectors, a
regularised linear model over tf-idf weighted n-grams classifies better (3-fold cross-validation
macro F1 0.867 vs DIET's 0.837 on the same 2,169 examples, see docs/performance.md) and trains in
seconds instead of minutes. Rasa's own LogisticRegressionClassifier, on raw counts with a fixed C,
scored 0.831 there: the tf-idf weighting and C make the difference. Entities come from Rasa's
CRFEntityExtractor (config.yml).

The model is stored as plain numpy arrays (no pickle), so loading a model file runs no code.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
from scipy.sparse import csr_matrix, vstack
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

log = logging.getLogger(__name__)
WEIGHTS_FILE = "linear_intent_classifier.npz"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(GraphComponent, IntentClassifier):
    """Predicts the intent and a confidence ranking; ``C`` is the inverse regularisation strength."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [Featurizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"C": 10.0, "max_iter": 2000, "ranking_length": 10}

    def __init__(self, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 weights: Optional[dict[str, np.ndarray]] = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.weights = weights

    @property
    def weights(self) -> Optional[dict[str, np.ndarray]]:
        return self._weights

    @weights.setter
    def weights(self, weights: Optional[dict[str, np.ndarray]]) -> None:
        self._weights = weights
        # Column-major weights, made once: a sparse matrix times the transposed (classes x features)
        # matrix copied all weights on every message (10 % of the Rasa CPU per turn, issue 17).
        self._coef_t = np.ascontiguousarray(weights["coef"].T) if weights else None

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "LinearIntentClassifier":
        return cls(config, model_storage, resource)

    # --- features ---------------------------------------------------------------------------

    @staticmethod
    def _counts(messages: list[Message], width: Optional[int] = None) -> csr_matrix:
        rows = []
        for message in messages:
            sparse = message.get_sparse_features(TEXT)[1]
            if sparse is None:  # no text features at all (cannot happen with CountVectors)
                rows.append(csr_matrix((1, width or 0)))
            else:
                rows.append(csr_matrix(sparse.features))
        return vstack(rows).tocsr()

    @staticmethod
    def _tfidf(counts: csr_matrix, idf: np.ndarray) -> csr_matrix:
        weighted = counts.astype(np.float64)
        weighted.data = 1.0 + np.log(np.maximum(weighted.data, 1.0))  # sublinear term frequency
        return normalize(weighted.multiply(idf).tocsr())

    # --- training ---------------------------------------------------------------------------

    def train(self, training_data: TrainingData) -> Resource:
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        if len({e.get(INTENT) for e in examples}) < 2:
            log.debug("LinearIntentClassifier: fewer than two intents, nothing to train")
            return self._resource
        counts = self._counts(examples)
        n = counts.shape[0]
        document_frequency = np.asarray((counts > 0).sum(axis=0)).ravel()
        idf = np.log((1.0 + n) / (1.0 + document_frequency)) + 1.0
        model = LogisticRegression(C=self.config["C"], max_iter=self.config["max_iter"],
                                   class_weight="balanced", random_state=42)
        model.fit(self._tfidf(counts, idf), [e.get(INTENT) for e in examples])
        self.weights = {"coef": model.coef_, "intercept": model.intercept_, "idf": idf,
                        "classes": np.array(model.classes_, dtype=str)}
        with self._model_storage.write_to(self._resource) as directory:
            np.savez(directory / WEIGHTS_FILE, **self.weights)
        return self._resource

    @classmethod
    def load(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "LinearIntentClassifier":
        try:
            with model_storage.read_from(resource) as directory:
                with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as stored:
                    weights = {key: stored[key] for key in stored.files}
        except (ValueError, FileNotFoundError):
            log.debug("LinearIntentClassifier: no trained weights in the model, it will not classify")
            weights = None
        return cls(config, model_storage, resource, weights)

    # --- prediction -------------------------------------------------------------------------

    def predict(self, messages: list[Message]) -> np.ndarray:
        """Probabilities per message (rows) and intent (columns, ``weights['classes']``)."""
        idf = self.weights["idf"]
        features = self._tfidf(self._counts(messages, width=idf.shape[0]), idf)
        scores = features @ self._coef_t + self.weights["intercept"]
        if scores.shape[1] == 1:  # two intents: sklearn stores one binary decision function
            scores = np.hstack([-scores, scores])
        scores = np.asarray(scores - scores.max(axis=1, keepdims=True))
        probabilities = np.exp(scores)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def process(self, messages: list[Message]) -> list[Message]:
        if not self.weights or not messages:
            return messages
        classes = self.weights["classes"]
        for message, row in zip(messages, self.predict(messages)):
            order = np.argsort(-row)
            ranking = [{"name": str(classes[i]), "confidence": float(row[i])} for i in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking[: self.config["ranking_length"]], add_to_output=True)
        return messages
