"""Warm up each persona expert on its pole: peft LoRA, loss on the response tokens only.

One adapter at a time is attached to the base model, trained, saved in peft's format and
detached again, so memory stays at one base model plus one adapter. The base model may be
bfloat16 (the LoRA factors stay float32); gradient checkpointing and gradient accumulation
trade compute for memory on a big model (``ExpertTraining`` in config.py). Each epoch writes a
checkpoint; a finished expert leaves a ``DONE`` marker, so a rerun resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_cosine_schedule_with_warmup

from persona_agents.training.config import TrainConfig
from persona_agents.training.corpus import PoleResponse

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]


def build_example(tokenizer: PreTrainedTokenizerBase, system: str, user: str, reply: str, max_length: int) -> Example:
    """Chat-templated example whose labels cover only the assistant's reply (and its end token)."""
    prompt = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    prompt_ids = list(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False))
    full_ids = list(
        tokenizer.apply_chat_template(
            prompt + [{"role": "assistant", "content": reply}], tokenize=True, return_dict=False
        )
    )
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError("the chat template does not extend the prompt with the reply; cannot mask the prompt")
    # Keep the reply's end-of-turn token (so the expert learns to stop), drop template tails after it.
    end = tokenizer.eos_token_id
    reply_ids = full_ids[len(prompt_ids) :]
    if end in reply_ids:
        reply_ids = reply_ids[: reply_ids.index(end) + 1]
    ids = (prompt_ids + reply_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + reply_ids)[:max_length]
    return Example(ids, labels)


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        labels[row, : len(e.labels)] = torch.tensor(e.labels)
        mask[row, : len(e.input_ids)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def train_expert(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    responses: list[PoleResponse],
    config: TrainConfig,
    out_dir: Path,
    seed: int,
) -> list[float]:
    """Train one expert; returns the per-step training loss. Resumes from ``out_dir/checkpoint``."""
    done = out_dir / "DONE"
    history_file = out_dir / "loss.json"
    if done.is_file():
        return json.loads(history_file.read_text())
    settings = config.experts
    epochs = settings.epochs_for(name)
    examples = [build_example(tokenizer, config.system_prompt, r.situation, r.response, settings.max_length) for r in responses]
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.target_modules),
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)
    if settings.gradient_checkpointing:
        set_activation_checkpointing(model, True)
    # peft keeps the LoRA factors in float32 when the base model is bf16 (autocast_adapter_dtype).
    peft_model = get_peft_model(model, lora)
    optimizer = torch.optim.AdamW(
        [p for p in peft_model.parameters() if p.requires_grad], lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    accumulate = settings.gradient_accumulation_steps
    steps_per_epoch = math.ceil(math.ceil(len(examples) / settings.batch_size) / accumulate)
    scheduler = get_cosine_schedule_with_warmup(optimizer, settings.warmup_steps, steps_per_epoch * epochs)
    history: list[float] = []
    start_epoch = 0
    checkpoint = out_dir / "checkpoint"
    if (checkpoint / "state.pt").is_file():
        state = torch.load(checkpoint / "state.pt", weights_only=False)
        set_peft_model_state_dict(peft_model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, start_epoch = state["history"], state["epoch"]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    peft_model.train()
    try:
        with tqdm(total=steps_per_epoch * epochs, initial=steps_per_epoch * start_epoch, desc=f"expert {name}", unit="step") as bar:
            for epoch in range(start_epoch, epochs):
                order = list(range(len(examples)))
                random.Random(seed * 1000 + epoch).shuffle(order)
                micro_batches = [order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
                for first in range(0, len(micro_batches), accumulate):
                    group = micro_batches[first : first + accumulate]
                    step_loss = 0.0
                    for rows in group:
                        batch = collate([examples[i] for i in rows], pad)
                        batch = {k: v.to(peft_model.device) for k, v in batch.items()}
                        loss = peft_model(**batch, use_cache=False).loss / len(group)
                        loss.backward()
                        step_loss += loss.item()
                    torch.nn.utils.clip_grad_norm_(peft_model.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    history.append(step_loss)
                    bar.set_postfix(loss=f"{history[-1]:.3f}")
                    bar.update()
                checkpoint.mkdir(parents=True, exist_ok=True)
                tmp = checkpoint / "state.pt.tmp"
                torch.save(
                    {
                        "adapter": get_peft_model_state_dict(peft_model),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "history": history,
                        "epoch": epoch + 1,
                    },
                    tmp,
                )
                tmp.replace(checkpoint / "state.pt")
        adapter_dir = out_dir / "adapter"
        shutil.rmtree(adapter_dir, ignore_errors=True)
        peft_model.save_pretrained(str(adapter_dir))
        history_file.write_text(json.dumps(history))
        done.write_text("ok\n")
        shutil.rmtree(checkpoint, ignore_errors=True)
    finally:
        peft_model.unload()  # detach the LoRA layers: the base model is plain again
        if settings.gradient_checkpointing:
            set_activation_checkpointing(model, False)
        model.eval()
    return history


def set_activation_checkpointing(model: PreTrainedModel, enabled: bool) -> None:
    """Gradient (activation) checkpointing on or off, under transformers' newer or older name."""
    if enabled:
        # Non-reentrant checkpointing needs no input that requires grad (the base is frozen).
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    elif hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()
