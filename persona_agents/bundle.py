"""A PersonaFuse bundle on disk: manifest, ten peft LoRA experts and the router head.

```
bundle/
  manifest.json          format version, base model, expert names, LoRA and router settings
  experts/<name>/        adapter_config.json + adapter_model.safetensors (peft's format)
  router.safetensors     the routing head
  router_encoder/        optional: a LoRA adapter for the situation encoder (peft's format)
```

Loading checks everything and fails with a message that names the file and the problem.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from persona_agents import __version__
from persona_agents.encoder import TextEncoder
from persona_agents.mixer import ExpertFormatError, LoraExpert, load_peft_expert
from persona_agents.router import EncoderAdapter, Router, RouterHead, RouterSettings, adapt_encoder
from persona_agents.traits import EXPERT_NAMES

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ROUTER_FILE = "router.safetensors"
ROUTER_ENCODER_DIR = "router_encoder"


class BundleError(ValueError):
    """A bundle that cannot be loaded; the message says what is wrong and where."""


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    r: int = Field(8, ge=1, le=512)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)


class BundleManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    name: str = "persona-fuse"
    base_model: str
    expert_names: list[str] = Field(default_factory=lambda: list(EXPERT_NAMES))
    lora: LoraSettings = Field(default_factory=LoraSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    experts_trained: bool = False
    notes: str = ""
    created_with: str = f"persona-agents {__version__}"
    training: dict[str, Any] = Field(default_factory=dict)

    @field_validator("expert_names")
    @classmethod
    def _ten_experts(cls, names: list[str]) -> list[str]:
        if names != list(EXPERT_NAMES):
            raise ValueError(f"expert_names must be exactly {list(EXPERT_NAMES)}, got {names}")
        return names

    @property
    def untrained_parts(self) -> list[str]:
        parts = [] if self.experts_trained else ["experts"]
        return parts + ([] if self.router.trained else ["router"])


class PersonaFuseBundle:
    def __init__(
        self,
        manifest: BundleManifest,
        experts: list[LoraExpert],
        router_head: RouterHead,
        path: Path | None = None,
        encoder_adapter: EncoderAdapter | None = None,
    ) -> None:
        names = [e.name for e in experts]
        if names != list(EXPERT_NAMES):
            raise BundleError(f"a bundle needs the experts {list(EXPERT_NAMES)} in that order, got {names}")
        if manifest.router.encoder_adapter != (encoder_adapter is not None):
            raise BundleError(
                "the manifest's router.encoder_adapter says "
                f"{manifest.router.encoder_adapter} but the bundle {'has' if encoder_adapter else 'has no'} encoder adapter"
            )
        self.manifest = manifest
        self.experts = experts
        self.router_head = router_head
        self.encoder_adapter = encoder_adapter
        self.path = path

    def make_router(self, encoder: TextEncoder) -> Router:
        """The bundle's router over ``encoder`` (adapted with the bundle's encoder LoRA, if any)."""
        return Router(adapt_encoder(encoder, self.encoder_adapter), self.router_head)

    # --- saving ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the bundle atomically (a temporary folder renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            for expert in self.experts:
                save_peft_expert(expert, self.manifest.lora, tmp / "experts" / expert.name)
            save_file(
                {k: v.detach().contiguous().cpu() for k, v in self.router_head.state_dict().items()},
                str(tmp / ROUTER_FILE),
            )
            if self.encoder_adapter is not None:
                self.encoder_adapter.write(tmp / ROUTER_ENCODER_DIR)
            (tmp / MANIFEST).write_text(self.manifest.model_dump_json(indent=2) + "\n")
            _apply_umask_permissions(tmp)
            if path.exists():
                backup = path.with_name(f".{path.name}.old")
                shutil.rmtree(backup, ignore_errors=True)
                os.replace(path, backup)
                os.replace(tmp, path)
                shutil.rmtree(backup, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = path
        return path

    # --- loading --------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> PersonaFuseBundle:
        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"no bundle at {path}: the folder does not exist")
        manifest = read_manifest(path)
        experts = []
        for name in manifest.expert_names:
            try:
                expert = load_peft_expert(name, path / "experts" / name)
            except ExpertFormatError as exc:
                raise BundleError(f"bundle {path}: {exc}") from exc
            if expert.rank != manifest.lora.r:
                raise BundleError(
                    f"bundle {path}: expert {name!r} has rank {expert.rank} but the manifest says {manifest.lora.r}"
                )
            experts.append(expert)
        head = load_router_head(path / ROUTER_FILE, manifest.router)
        encoder_adapter = None
        if manifest.router.encoder_adapter:
            try:
                encoder_adapter = EncoderAdapter.read(path / ROUTER_ENCODER_DIR)
            except ValueError as exc:
                raise BundleError(f"bundle {path}: the manifest names a router encoder adapter but {exc}") from exc
        return cls(manifest, experts, head, path, encoder_adapter)


def _apply_umask_permissions(root: Path) -> None:
    """mkdtemp makes a 0700 folder and safetensors writes 0600 files; give the bundle the
    permissions of a normally created tree, so other users can load a shared or installed one."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [root, *root.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def read_manifest(path: Path) -> BundleManifest:
    file = path / MANIFEST
    if not file.is_file():
        raise BundleError(f"bundle {path}: missing {MANIFEST}")
    try:
        raw = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle {path}: {MANIFEST} is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise BundleError(f"bundle {path}: {MANIFEST} must hold a JSON object")
    version = raw.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise BundleError(
            f"bundle {path}: format version {version} is newer than this persona-agents "
            f"supports ({FORMAT_VERSION}); upgrade persona-agents"
        )
    try:
        return BundleManifest.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"bundle {path}: invalid {MANIFEST}: {exc}") from exc


def load_router_head(file: Path, settings: RouterSettings) -> RouterHead:
    if not file.is_file():
        raise BundleError(f"missing router weights {file}")
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"corrupt router weights {file}: {exc}") from exc
    head = RouterHead(settings)
    expected = head.state_dict()
    if set(state) != set(expected):
        raise BundleError(f"router weights {file} have tensors {sorted(state)}, expected {sorted(expected)}")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise BundleError(
                f"router weights {file}: {key} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(expected[key].shape)} for the manifest's router settings"
            )
    head.load_state_dict(state)
    return head.eval()


def save_peft_expert(expert: LoraExpert, lora: LoraSettings, directory: Path, dtype: torch.dtype = torch.float16) -> None:
    """Write one expert in peft's adapter format (loadable by ``PeftModel.from_pretrained``)."""
    from peft import LoraConfig

    directory.mkdir(parents=True, exist_ok=True)
    LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    ).save_pretrained(str(directory))
    tensors = {}
    for module, (a, b) in expert.factors.items():
        tensors[f"base_model.model.{module}.lora_A.weight"] = a.detach().to(dtype).contiguous().cpu()
        tensors[f"base_model.model.{module}.lora_B.weight"] = b.detach().to(dtype).contiguous().cpu()
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})


def untrained_experts(model: nn.Module, lora: LoraSettings, seed: int = 0) -> list[LoraExpert]:
    """Ten zero-effect experts (peft's initialisation: random A, zero B) for ``model``."""
    generator = torch.Generator().manual_seed(seed)
    targets = [
        (path, module)
        for path, module in model.named_modules()
        if isinstance(module, nn.Linear) and path.rsplit(".", 1)[-1] in lora.target_modules
    ]
    if not targets:
        raise BundleError(f"the base model has no Linear layers named {lora.target_modules}")
    experts = []
    for name in EXPERT_NAMES:
        factors = {}
        for path, module in targets:
            a = torch.empty(lora.r, module.in_features)
            nn.init.kaiming_uniform_(a, a=5**0.5, generator=generator)
            factors[path] = (a, torch.zeros(module.out_features, lora.r))
        experts.append(LoraExpert(name=name, scaling=lora.alpha / lora.r, factors=factors))
    return experts
