"""Semantic screen: a small torch head over MiniLM sentence embeddings.

Weights live next to the pack as ``classifier.safetensors`` with a JSON sidecar that
records the category order, the decision threshold, the encoder and a hash of the
training set, so a stale or mismatched file is caught at load time.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import torch

from domains.text import normalise

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBED_DIM = 384


class ClassifierError(RuntimeError):
    """Classifier weights are missing, malformed or do not fit the pack."""


class Head(torch.nn.Module):
    """Linear softmax head, or one hidden layer when ``hidden`` > 0."""

    def __init__(
        self, n_classes: int, hidden: int = 0, dim: int = EMBED_DIM, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.hidden = hidden
        if hidden > 0:
            self.net: torch.nn.Module = torch.nn.Sequential(
                torch.nn.Dropout(dropout),
                torch.nn.Linear(dim, hidden),
                torch.nn.ReLU(),
                torch.nn.Dropout(dropout),
                torch.nn.Linear(hidden, n_classes),
            )
        else:
            self.net = torch.nn.Sequential(
                torch.nn.Dropout(dropout), torch.nn.Linear(dim, n_classes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def domain_dir(domain: str) -> Path:
    return Path(str(resources.files("domains") / domain))


def weights_path(domain: str) -> Path:
    return domain_dir(domain) / "classifier.safetensors"


def sidecar_path(domain: str) -> Path:
    return domain_dir(domain) / "classifier.json"


def training_path(domain: str) -> Path:
    return domain_dir(domain) / "screen_train.jsonl"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def embed(texts: list[str]) -> torch.Tensor:
    """Embeddings of the normalised texts (the classifier never sees raw obfuscation)."""
    from persona_agents.encoder import shared_encoder

    return shared_encoder().encode([normalise(t) for t in texts])


@dataclass
class SafetyClassifier:
    domain: str
    categories: list[str]
    safe_category: str
    threshold: float
    head: Head

    @property
    def safe_index(self) -> int:
        return self.categories.index(self.safe_category)

    @torch.inference_mode()
    def proba_from_embeddings(self, emb: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(emb), dim=-1)

    def predict_proba(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros(0, len(self.categories))
        return self.proba_from_embeddings(embed(texts))

    def top_risk(self, proba: torch.Tensor) -> tuple[str, float]:
        """Most likely non-safe category and the total non-safe probability mass."""
        risk = proba.clone()
        risk[self.safe_index] = -1.0
        return self.categories[int(risk.argmax())], float(1.0 - proba[self.safe_index])


def save_classifier(domain: str, head: Head, meta: dict[str, object]) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(weights_path(domain)))
    sidecar_path(domain).write_text(
        json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def _read_sidecar(domain: str) -> dict[str, object]:
    path = sidecar_path(domain)
    if not path.is_file():
        raise ClassifierError(
            f"classifier sidecar missing: {path}; rebuild with `python -m domains.train_classifiers`"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ClassifierError(f"classifier sidecar {path} is not valid JSON: {exc}") from exc
    for key in (
        "categories",
        "safe_category",
        "threshold",
        "encoder",
        "dim",
        "hidden",
        "training_sha256",
    ):
        if key not in meta:
            raise ClassifierError(f"classifier sidecar {path} lacks {key!r}")
    return meta


def load_classifier_from(
    domain: str, expected_categories: list[str] | None = None
) -> SafetyClassifier:
    from safetensors.torch import load_file

    wpath = weights_path(domain)
    if not wpath.is_file():
        raise ClassifierError(
            f"classifier weights missing: {wpath}; rebuild with `python -m domains.train_classifiers`"
        )
    meta = _read_sidecar(domain)
    categories = [str(c) for c in meta["categories"]]  # type: ignore[union-attr]
    if expected_categories is not None and categories != list(expected_categories):
        raise ClassifierError(
            f"{wpath}: trained for categories {categories}, pack expects {list(expected_categories)}; retrain"
        )
    if meta["encoder"] != ENCODER_NAME or int(meta["dim"]) != EMBED_DIM:  # type: ignore[arg-type]
        raise ClassifierError(
            f"{wpath}: built for encoder {meta['encoder']} dim {meta['dim']}, not {ENCODER_NAME}"
        )
    head = Head(len(categories), hidden=int(meta["hidden"]))  # type: ignore[arg-type]
    try:
        state = load_file(str(wpath))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ClassifierError(f"cannot read classifier weights {wpath}: {exc}") from exc
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        raise ClassifierError(
            f"{wpath}: tensor shapes {found} do not match the expected head {expected}"
        )
    head.load_state_dict(state)
    head.eval()
    train = training_path(domain)
    if train.is_file() and file_sha256(train) != meta["training_sha256"]:
        warnings.warn(
            f"{wpath} was trained on a different {train.name}; rerun python -m domains.train_classifiers",
            stacklevel=2,
        )
    return SafetyClassifier(
        domain, categories, str(meta["safe_category"]), float(meta["threshold"]), head
    )  # type: ignore[arg-type]


@cache
def load_classifier(domain: str) -> SafetyClassifier:
    from domains.schema import load_pack

    return load_classifier_from(domain, load_pack(domain).classifier.categories)
