"""The learned layers: a small torch head over MiniLM sentence embeddings, one per job.

Two kinds per domain: ``screen`` reads user turns (``classifier.safetensors``, trained on
``screen_train*.jsonl``) and ``output`` reads the model's drafts (``output_classifier.safetensors``,
trained on ``drafts_train*.jsonl``). Each weights file has a JSON sidecar that records the
category order, the decision threshold, the encoder (and its variant, see
``domains.safety_encoder``) and a hash of the training files, so a stale or mismatched file is
caught at load time.

The encoder is passed in: :func:`load_classifier` takes any :class:`SentenceEncoder`; without
one it uses ``domains.safety_encoder.default_safety_encoder`` for the variant the head was
trained on.
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import torch

from domains.lexical import LexicalScorer
from domains.safety_encoder import (
    EncoderVariant,
    SentenceEncoder,
    check_variant,
    default_safety_encoder,
    intra_op_threads,
)
from domains.text import normalise

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBED_DIM = 384

ClassifierKind = Literal["screen", "output"]
_LEXICAL = "lexical."  # prefix of the lexical scorer's tensors in the weights file
# kind -> (weights and sidecar stem, training files glob)
_FILES: dict[str, tuple[str, str]] = {
    "screen": ("classifier", "screen_train*.jsonl"),
    "output": ("output_classifier", "drafts_train*.jsonl"),
}


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


def weights_path(domain: str, kind: ClassifierKind = "screen") -> Path:
    return domain_dir(domain) / f"{_FILES[kind][0]}.safetensors"


def sidecar_path(domain: str, kind: ClassifierKind = "screen") -> Path:
    return domain_dir(domain) / f"{_FILES[kind][0]}.json"


def training_paths(domain: str, kind: ClassifierKind = "screen") -> list[Path]:
    return sorted(domain_dir(domain).glob(_FILES[kind][1]))


def files_sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class _EmbeddingMemo:
    """The last few thousand embeddings of one encoder, by normalised text.

    A user turn is embedded when it is screened and again as history on the next two turns;
    remembering it saves two of the four encoder passes a turn's screen would make (measured:
    screen 25 ms -> 15 ms on 2 CPU cores). 4,096 vectors of 384 floats: 6 MB.
    """

    def __init__(self, encoder: SentenceEncoder, size: int = 4096) -> None:
        self.encoder = encoder
        self.size = size
        self._vectors: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, normalised: list[str]) -> torch.Tensor:
        with self._lock:
            missing = list(dict.fromkeys(t for t in normalised if t not in self._vectors))
        fresh = self.encoder.encode(missing) if missing else None
        with self._lock:
            for i, text in enumerate(missing):
                self._vectors[text] = fresh[i]  # type: ignore[index]
            found = dict(zip(missing, fresh)) if fresh is not None else {}
            rows = []
            for text in normalised:
                vector = found.get(text)
                if vector is None:
                    vector = self._vectors[text]
                self._vectors.move_to_end(text)
                rows.append(vector)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return torch.stack(rows) if rows else torch.zeros(0, EMBED_DIM)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()


# One memo per encoder instance, so the screen and output heads on one encoder share vectors.
_memos: weakref.WeakKeyDictionary[SentenceEncoder, _EmbeddingMemo] = weakref.WeakKeyDictionary()
_memos_lock = threading.Lock()


def embedding_memo(encoder: SentenceEncoder) -> _EmbeddingMemo:
    with _memos_lock:
        memo = _memos.get(encoder)
        if memo is None:
            memo = _memos[encoder] = _EmbeddingMemo(encoder)
        return memo


def clear_embedding_memo() -> None:
    """Forget remembered embeddings (benchmarks that must pay for every encoder pass)."""
    with _memos_lock:
        memos = list(_memos.values())
    for memo in memos:
        memo.clear()


def embed(texts: list[str], encoder: SentenceEncoder | None = None) -> torch.Tensor:
    """Embeddings of the normalised texts (the classifier never sees raw obfuscation).

    ``encoder`` defaults to ``default_safety_encoder()`` (the default variant).
    """
    memo = embedding_memo(encoder if encoder is not None else default_safety_encoder())
    return memo.embed([normalise(t) for t in texts])


@dataclass
class SafetyClassifier:
    """Encoder head (category distribution) averaged with a lexical risk scorer.

    ``encoder`` turns normalised texts into the vectors ``head`` reads; it should be the variant
    the head was trained on (``encoder_variant``).
    """

    domain: str
    kind: ClassifierKind
    categories: list[str]
    safe_category: str
    threshold: float
    head: Head
    encoder: SentenceEncoder
    lexical: LexicalScorer | None = None
    lexical_weight: float = 0.0
    encoder_variant: EncoderVariant = "float32"

    @property
    def safe_index(self) -> int:
        return self.categories.index(self.safe_category)

    @torch.inference_mode()
    def _head_proba(self, normalised: list[str]) -> torch.Tensor:
        vectors = embedding_memo(self.encoder).embed(normalised)
        if vectors.ndim != 2 or vectors.shape[-1] != EMBED_DIM:
            raise ClassifierError(
                f"the encoder {type(self.encoder).__name__} gave vectors of shape {tuple(vectors.shape)}; "
                f"the {self.domain} {self.kind} head reads (n, {EMBED_DIM})"
            )
        # The head is a few small matmuls: on the encoder's thread budget it takes microseconds,
        # while waking the full OpenMP pool took 6 ms per layer on the loaded 2-core host.
        with intra_op_threads(getattr(self.encoder, "threads", None)):
            return torch.softmax(self.head(vectors), dim=-1)

    def top_risk(self, proba: torch.Tensor) -> tuple[str, float]:
        """Most likely non-safe category and the total non-safe probability mass."""
        risk = proba.clone()
        risk[self.safe_index] = -1.0
        return self.categories[int(risk.argmax())], float(1.0 - proba[self.safe_index])

    def assess(self, texts: list[str]) -> list[tuple[str, float]]:
        """(most likely risk category, risk score in [0, 1]) per text; compare with ``threshold``."""
        if not texts:
            return []
        normalised = [normalise(t) for t in texts]  # once: both scorers read the same form
        head = [self.top_risk(p) for p in self._head_proba(normalised)]
        if self.lexical is None or self.lexical_weight == 0.0:
            return head
        lexical = self.lexical.risk(normalised)
        w = self.lexical_weight
        return [(cat, (1 - w) * risk + w * float(lex)) for (cat, risk), lex in zip(head, lexical)]


def save_classifier(
    domain: str,
    head: Head,
    meta: dict[str, object],
    kind: ClassifierKind = "screen",
    lexical: LexicalScorer | None = None,
) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    if lexical is not None:
        state |= {f"{_LEXICAL}{k}": torch.from_numpy(v) for k, v in lexical.tensors().items()}
    save_file(state, str(weights_path(domain, kind)))
    sidecar_path(domain, kind).write_text(
        json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def _read_sidecar(domain: str, kind: ClassifierKind) -> dict[str, object]:
    path = sidecar_path(domain, kind)
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
    domain: str,
    expected_categories: list[str] | None = None,
    kind: ClassifierKind = "screen",
    encoder: SentenceEncoder | None = None,
) -> SafetyClassifier:
    """Read a head from its files; ``encoder`` defaults to the variant named in the sidecar."""
    from safetensors.torch import load_file

    wpath = weights_path(domain, kind)
    if not wpath.is_file():
        raise ClassifierError(
            f"classifier weights missing: {wpath}; rebuild with `python -m domains.train_classifiers`"
        )
    meta = _read_sidecar(domain, kind)
    categories = [str(c) for c in meta["categories"]]  # type: ignore[union-attr]
    if expected_categories is not None and categories != list(expected_categories):
        raise ClassifierError(
            f"{wpath}: trained for categories {categories}, pack expects {list(expected_categories)}; retrain"
        )
    if meta["encoder"] != ENCODER_NAME or int(meta["dim"]) != EMBED_DIM:  # type: ignore[arg-type]
        raise ClassifierError(
            f"{wpath}: built for encoder {meta['encoder']} dim {meta['dim']}, not {ENCODER_NAME}"
        )
    try:
        variant = check_variant(str(meta.get("encoder_variant", "float32")))
    except ValueError as exc:
        raise ClassifierError(f"{sidecar_path(domain, kind)}: {exc}") from exc
    head = Head(len(categories), hidden=int(meta["hidden"]))  # type: ignore[arg-type]
    try:
        state = load_file(str(wpath))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ClassifierError(f"cannot read classifier weights {wpath}: {exc}") from exc
    lexical_state = {k.removeprefix(_LEXICAL): v.numpy() for k, v in state.items() if k.startswith(_LEXICAL)}
    state = {k: v for k, v in state.items() if not k.startswith(_LEXICAL)}
    lexical_weight = float(meta.get("lexical_weight", 0.0))  # type: ignore[arg-type]
    lexical = None
    if lexical_weight > 0:
        try:
            lexical = LexicalScorer.from_tensors(lexical_state)
        except (KeyError, ValueError) as exc:
            raise ClassifierError(f"{wpath}: lexical scorer unreadable: {exc!r}") from exc
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        raise ClassifierError(
            f"{wpath}: tensor shapes {found} do not match the expected head {expected}"
        )
    head.load_state_dict(state)
    head.eval()
    train = training_paths(domain, kind)
    if train and files_sha256(train) != meta["training_sha256"]:
        warnings.warn(
            f"{wpath} was trained on different {_FILES[kind][1]} files; "
            "rerun python -m domains.train_classifiers",
            stacklevel=2,
        )
    return SafetyClassifier(
        domain, kind, categories, str(meta["safe_category"]), float(meta["threshold"]), head,  # type: ignore[arg-type]
        encoder if encoder is not None else default_safety_encoder(variant),
        lexical, lexical_weight, variant,
    )


@cache
def load_classifier(
    domain: str, kind: ClassifierKind = "screen", encoder: SentenceEncoder | None = None
) -> SafetyClassifier:
    """The pack's head of this kind, once per (domain, kind, encoder); threshold from the pack if set.

    ``encoder`` is any :class:`SentenceEncoder` (a graph may pass its own); by default the
    process-wide safety encoder of the variant the head was trained on.
    """
    from domains.schema import load_pack

    pack = load_pack(domain)
    settings = pack.classifier if kind == "screen" else pack.output_classifier
    classifier = load_classifier_from(domain, settings.categories, kind, encoder)
    if settings.threshold is not None:
        classifier.threshold = settings.threshold
    return classifier
