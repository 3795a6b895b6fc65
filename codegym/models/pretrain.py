"""Pre-train codegym's default policy: a small causal LM on the offline Python corpus.

Recipe of the shipped model (``codegym/models/default/``), on 2 CPU cores: a base run on the offline
corpus (≈ 2 minutes + ≈ 40 minutes), then a warm start of it on a mixture in which procgen training
programs are 70% of the functions drawn (issue 23; ≈ 18 minutes), then 250 more steps of that warm
start from its weights (≈ 3 minutes):

    codegym build-corpus --procgen 60000 --output /tmp/policy_work/corpus.jsonl
    codegym pretrain --corpus /tmp/policy_work/corpus.jsonl --output /tmp/policy_work/run --preset default
    codegym pretrain --corpus /tmp/policy_work/corpus.jsonl --output /tmp/policy_work/procgen --preset procgen --init /tmp/policy_work/run/final
    codegym pretrain --corpus /tmp/policy_work/corpus.jsonl --output /tmp/policy_work/procgen250 --preset procgen --init /tmp/policy_work/procgen/final --steps 250
    cp /tmp/policy_work/procgen250/final/model.safetensors codegym/models/default/

The ``default`` preset draws no procgen program and trains its tokenizer without them, so its run is
the same with or without ``--procgen``; the warm start keeps that tokenizer. The procgen programs come
from training levels far above those of ``procgen:train`` (`codegym.models.corpus.PROCGEN_FIRST_LEVEL`),
and no held-out procgen function can enter (the generator excludes them; the contamination check's
functional test finds 0 on every held-out split). The ``procgen`` preset's length (1,500 steps) was
chosen on ``procgen:validation`` alone: 2,000 steps gave validation pass@1 0.70, above the 0.60 that
leaves RL headroom; 1,000 gave 0.22 and 1,500 give 0.50 (``experiments/RESULTS.md``). The continuation's
length was chosen by the same rule, the longest tried that keeps validation below 0.57: 250 more steps
give 0.51 and double the held-out ``new_op`` pass@1; 400 give 0.62. ``--init default`` warm-starts
from the shipped weights instead (which already had both).

Each training function becomes ``<bos>`` + its source (signature, docstring, body) + ``<eof>``, the
format of a HumanEval prompt followed by its completion, so the model learns to write a body after a
docstring and then stop. Functions are packed into blocks of ``context`` tokens (no padding); a
fixed share of them are exercises (`codegym.models.synthetic` and the training split's ``basic`` templates). The batch at step k depends
only on the seed and k, so ``--resume`` continues exactly where a checkpoint left off.

On CUDA the step runs under bf16 autocast (fp16 with loss scaling where bf16 is missing); on CPU in float32.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, PreTrainedTokenizerBase

from codegym.models import tokenizer as tok
from codegym.models.config import PretrainConfig
from codegym.models.corpus import read_corpus

__all__ = ["EXERCISE_SOURCES", "encode_functions", "heldout_loss", "packed_batches", "pretrain"]

EXERCISE_SOURCES = ("synthetic", "templates")  # corpus sources drawn at ``synthetic_fraction``
PROCGEN_SOURCE = "procgen"  # drawn at ``procgen_fraction``; the rest is real code


def encode_functions(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each function: ``<bos>`` (added by the tokenizer) + text + ``<eof>``."""
    eof = tokenizer.convert_tokens_to_ids(tok.EOF)
    return [ids + [eof] for ids in tokenizer(list(texts))["input_ids"]]


def packed_batches(
    real: Sequence[list[int]], synthetic: Sequence[list[int]], config: PretrainConfig, procgen: Sequence[list[int]] = ()
) -> Iterator[torch.Tensor]:
    """Endless ``[batch_size, context]`` blocks of packed functions; deterministic in ``config.seed``.

    Functions are drawn without replacement from each pool (reshuffled when exhausted), a synthetic
    one with probability ``synthetic_fraction``, a procgen one with probability ``procgen_fraction``
    (with none, the draws are exactly those of a corpus without procgen programs).
    """
    rng = random.Random(config.seed)

    def cycle(pool: Sequence[list[int]]) -> Iterator[list[int]]:
        order = list(range(len(pool)))
        while True:
            rng.shuffle(order)
            yield from (pool[i] for i in order)

    pools = [cycle(real), cycle(synthetic) if synthetic else None, cycle(procgen) if procgen else None]
    share = config.synthetic_fraction if synthetic else 0.0
    procgen_share = config.procgen_fraction if procgen else 0.0
    need = config.batch_size * config.context
    buffer: list[int] = []
    while True:
        while len(buffer) < need:
            draw = rng.random()
            pool = pools[1] if draw < share else pools[2] if draw < share + procgen_share else pools[0]
            buffer.extend(next(pool))  # type: ignore[arg-type]
        block, buffer = buffer[:need], buffer[need:]
        yield torch.tensor(block, dtype=torch.long).view(config.batch_size, config.context)


@torch.no_grad()
def heldout_loss(model: torch.nn.Module, functions: Sequence[list[int]], pad_id: int, batch_size: int = 16) -> float:
    """Mean next-token cross-entropy (nats per token) over ``functions``, each scored on its own (truncated to the context)."""
    model.eval()
    device = next(model.parameters()).device
    context = model.config.max_position_embeddings if hasattr(model.config, "max_position_embeddings") else model.config.n_positions
    total, count = 0.0, 0
    for start in range(0, len(functions), batch_size):
        chunk = [f[:context] for f in functions[start : start + batch_size]]
        width = max(map(len, chunk))
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        for row, f in enumerate(chunk):
            ids[row, : len(f)] = torch.tensor(f)
            labels[row, : len(f)] = torch.tensor(f)
        mask = (labels != -100).long()
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        targets = labels[:, 1:].to(device)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((targets != -100).sum())
    model.train()
    return total / max(count, 1)


def _lr(step: int, config: PretrainConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return config.learning_rate * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


def _recipe(config: dict) -> dict:
    """The options a resumed run must share with its checkpoint: all but the length of training."""
    return {k: v for k, v in config.items() if k != "steps"}


def _tokenizer(output: Path, corpus: list[dict], config: PretrainConfig, path: str | None) -> PreTrainedTokenizerBase:
    """The given tokenizer, the one saved by an earlier run in ``output``, or a new one trained on the corpus."""
    if path is not None:
        return AutoTokenizer.from_pretrained(path)
    saved = output / "tokenizer"
    if (saved / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(saved)
    texts = [r["text"] for r in corpus if r["split"] == "train" and r["source"] != PROCGEN_SOURCE]
    random.Random(config.seed).shuffle(texts)
    tokenizer = tok.train_tokenizer(texts[: config.tokenizer_functions], vocab_size=config.vocab_size)
    tok.save(tokenizer, saved)
    return tokenizer


def _default_dir() -> Path:
    return Path(__file__).resolve().parent / "default"


def _precision(device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether to scale the loss) for ``device``."""
    if device.type != "cuda":
        return None, False
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, False
    return torch.float16, True


def pretrain(
    corpus_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: PretrainConfig,
    *,
    tokenizer_path: str | None = None,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    init: str | os.PathLike[str] | None = None,
) -> Path:
    """Train a model as ``config`` says; write checkpoints to ``output/checkpoint`` and the result to ``output/final``.

    Returns the ``final`` directory, a Hugging Face model + tokenizer directory that `load_policy` accepts.
    ``resume=True`` continues from ``output/checkpoint``: same config, except that ``steps`` may be raised
    to train longer (the learning-rate schedule then stretches to the new length). ``init``: a model
    directory (or ``"default"``, the shipped policy) whose weights and tokenizer the run starts from
    instead of random ones (a warm start; the optimizer and schedule start afresh).
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    autocast_dtype, scale_loss = _precision(dev)

    corpus = read_corpus(corpus_path)
    if not any(r["split"] == "train" for r in corpus):
        raise ValueError(f"{corpus_path}: no training functions; build one with `codegym build-corpus`")
    if init is not None:
        init = str(_default_dir()) if str(init) == "default" else str(init)
        tokenizer_path = tokenizer_path or init
    tokenizer = _tokenizer(output, corpus, config, tokenizer_path)
    config = config.replace(vocab_size=len(tokenizer))
    train = [r for r in corpus if r["split"] == "train"]
    real = encode_functions(tokenizer, [r["text"] for r in train if r["source"] not in (*EXERCISE_SOURCES, PROCGEN_SOURCE)])
    synthetic = encode_functions(tokenizer, [r["text"] for r in train if r["source"] in EXERCISE_SOURCES])
    procgen = encode_functions(tokenizer, [r["text"] for r in train if r["source"] == PROCGEN_SOURCE]) if config.procgen_fraction else []
    if config.procgen_fraction and not procgen:
        raise ValueError(f"{corpus_path}: procgen_fraction is {config.procgen_fraction} but the corpus has no procgen programs; "
                         "build it with `codegym build-corpus --procgen N`")
    heldout = encode_functions(tokenizer, [r["text"] for r in corpus if r["split"] == "heldout"][: config.eval_functions])
    if not real:
        real, synthetic = synthetic, []

    checkpoint = output / "checkpoint"
    ids = {"pad_id": tokenizer.pad_token_id, "bos_id": tokenizer.bos_token_id,
           "eos_ids": [tokenizer.convert_tokens_to_ids(tok.EOF), tokenizer.eos_token_id]}
    if resume:
        if not (checkpoint / "trainer_state.pt").exists():
            raise FileNotFoundError(f"no checkpoint to resume in {checkpoint}; run without --resume to start")
        model = AutoModelForCausalLM.from_pretrained(checkpoint).to(dev)
        state = torch.load(checkpoint / "trainer_state.pt", map_location=dev, weights_only=False)
        if _recipe(state["config"]) != _recipe(asdict(config)):
            raise ValueError(f"{checkpoint} was made with other options; resume with the same ones (only --steps may change)")
    elif init is not None:
        model = AutoModelForCausalLM.from_pretrained(init).to(dev)
        state = None
    else:
        model = AutoModelForCausalLM.from_config(config.hf_config(**ids)).to(dev)
        state = None
    model.generation_config = GenerationConfig(eos_token_id=ids["eos_ids"], pad_token_id=ids["pad_id"], bos_token_id=ids["bos_id"])

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate, betas=(0.9, 0.95))
    scaler = torch.amp.GradScaler(dev.type, enabled=scale_loss)
    start = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        start = state["step"]

    log_path = output / "training_log.jsonl"
    (output / "pretrain_config.json").write_text(json.dumps({**asdict(config), "init": init}, indent=2) + "\n")
    batches = packed_batches(real, synthetic, config, procgen)
    for _ in range(start):  # replay the data order up to the checkpoint: cheap index work, no model calls
        next(batches)

    def save(directory: Path, step: int) -> None:
        model.save_pretrained(directory, safe_serialization=True)
        tokenizer.save_pretrained(directory)
        torch.save({"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "step": step,
                    "torch_rng": torch.get_rng_state(), "config": asdict(config)}, directory / "trainer_state.pt")

    model.train()
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="pretrain", disable=not progress)
    started = time.time()
    loss_value = float("nan")
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, config)
        batch = next(batches).to(dev)
        with torch.autocast(dev.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = model(input_ids=batch, labels=batch).loss
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        bar.set_postfix(loss=f"{loss_value:.3f}")
        done = step + 1
        record: dict = {"step": done, "loss": loss_value, "lr": _lr(step, config), "elapsed_s": time.time() - started}
        if done % config.eval_every == 0 or done == config.steps:
            record["heldout_loss"] = heldout_loss(model, heldout, tokenizer.pad_token_id)
            bar.write(f"step {done}: train loss {loss_value:.3f}, held-out loss {record['heldout_loss']:.3f}")
        if done % config.eval_every == 0 or done % 10 == 0 or done == config.steps:
            with open(log_path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
        if done % config.checkpoint_every == 0 or done == config.steps:
            save(checkpoint, done)
    final = output / "final"
    model.save_pretrained(final, safe_serialization=True)
    tokenizer.save_pretrained(final)
    return final
