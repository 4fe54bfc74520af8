"""One training loop for every LoRA update: the inner loop and ReST-EM's writer fine-tuning.

Both train an adapter in place on tokenised examples. An ``Example`` is token ids plus how many
leading tokens are left out of the loss (label -100):

* the **inner loop** (``train_adapter``) scores every token of a sequence, as SEAL's knowledge
  incorporation does: ``prompt_len = 0``;
* **writer fine-tuning** (``finetune_on_completions``, ReST-EM's M-step) scores only the completion
  after its prompt, so the writer learns *what to write*, not to predict the passage. The prompt is
  tokenised exactly as ``SharedModel.generate`` sees it (formatted, no special tokens added) and the
  completion is followed by EOS, which is where generation stopped.

Sequences are length-bucketed: sorted by length, cut into batches, each batch padded only to its own
longest sequence (SEAL's server pads every sequence to a fixed length and trains with batch 1). A
fresh AdamW optimiser is made for each call (SEAL re-initialises it per self-edit); the training
order and any dropout are fixed by ``seed``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from multiseal.types import TrainSettings


@dataclass(frozen=True)
class TrainStats:
    sequences: int
    tokens: int  # scored (non-pad, non-prompt) tokens processed, all epochs
    padded_tokens: int  # tokens including padding, all epochs
    seconds: float
    loss_first: float
    loss_last: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Example:
    """One tokenised example: ``ids``, the first ``prompt_len`` of them left out of the loss."""

    ids: list[int]
    prompt_len: int = 0

    @property
    def labels(self) -> list[int]:
        return [-100] * self.prompt_len + self.ids[self.prompt_len :]


def tokenize_sequences(tokenizer, sequences: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each sequence, ending with EOS, truncated to ``max_length``."""
    ids = tokenizer(list(sequences), add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return [(x + [eos])[:max_length] for x in ids if x]


def tokenize_pairs(tokenizer, pairs: Sequence[tuple[str, str]], max_length: int) -> list[Example]:
    """Examples from formatted prompts and raw completions.

    The completion is cut (never the prompt) when the pair exceeds ``max_length``; a pair whose prompt
    alone leaves no room for a completion token is dropped, as is an empty completion.
    """
    out = []
    eos = tokenizer.eos_token_id
    for prompt, completion in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"] if completion.strip() else []
        if not c or len(p) >= max_length:
            continue
        out.append(Example((p + c + [eos])[:max_length], len(p)))
    return out


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on prompt and padding)."""
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.ids)
        ids[row, :n] = torch.tensor(e.ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(e.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def length_buckets(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of indices with similar lengths; batch order shuffled by ``rng`` each call.

    Sorting by length (ties broken randomly) before cutting keeps the padding inside each batch small.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


Forward = Callable[[dict[str, torch.Tensor]], torch.Tensor]
# A loss term added to a job's loss at every optimiser step (a mitigation's regulariser,
# :mod:`multiseal.learning.regularise`): called with a function that runs a batch through the job's
# adapter and returns float logits.
Penalty = Callable[[Forward], torch.Tensor]


def shifted_labels(labels: torch.Tensor) -> torch.Tensor:
    """Position t predicts label t + 1, as transformers' causal-LM loss (labels shifted, not logits)."""
    return torch.nn.functional.pad(labels, (0, 1), value=-100)[:, 1:]


@dataclass(frozen=True)
class Job:
    """One adapter's share of a training call: its examples, its own hyper-parameters and an optional
    ``penalty`` added to its loss at each step (the recorded losses are the task loss alone)."""

    adapter: str
    data: Sequence[Example]
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float = 0.0
    seed: int = 0
    penalty: Penalty | None = None

    def schedule(self) -> list[list[int]]:
        """Every optimiser step's batch (indices into ``data``), all epochs, in order."""
        rng = random.Random(self.seed)
        lengths = [len(e.ids) for e in self.data]
        return [b for _ in range(self.epochs) for b in length_buckets(lengths, self.batch_size, rng)]


def train_examples(
    model,
    adapter: str,
    data: Sequence[Example],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float = 0.0,
    seed: int = 0,
    progress: str | None = None,
) -> TrainStats:
    """One adapter: ``epochs`` passes of length-bucketed batches, AdamW, loss on the labelled tokens."""
    return train_jobs(model, [Job(adapter, data, epochs, lr, batch_size, weight_decay, seed)], progress=progress)[0]


def train_jobs(
    model, jobs: Sequence[Job], *, together: bool = False, max_rows: int = 64, progress: str | None = None
) -> list[TrainStats]:
    """The loop. Each job trains its own adapter in place; returns one ``TrainStats`` per job.

    ``together=False`` trains the jobs one after another, each through the model's active adapter.
    ``together=True`` trains them in shared batches: at step k every job that still has a k-th batch
    contributes it, each row goes through its own adapter (peft's mixed-adapter forward), each job's loss
    is the mean over its own labelled tokens, and the sum is back-propagated once. A job's gradient
    depends only on its own rows, and each job keeps its own AdamW (learning rate, weight decay,
    state), stepped only when the job took part, so the result equals training them one after another
    up to floating-point rounding; the base model's matrix products run on the whole batch. Jobs with
    fewer steps drop out of the later ones. A step whose rows exceed ``max_rows`` runs as several
    forward/backward passes over whole jobs' batches (gradients accumulate, each job's loss is still its
    own mean), which bounds the memory of the logits. Shared batches run in eval mode (peft allows mixed adapters
    only there), so LoRA dropout must be 0 (the configuration checks this).

    ``model`` is a :class:`multiseal.learning.model.SharedModel`; only the jobs' adapters change.
    Token counts in the stats are scored tokens; ``padded_tokens`` counts every position; with
    ``together`` each job's ``seconds`` is the whole call's.
    """
    jobs = [j for j in jobs]
    if together and len({j.adapter for j in jobs}) < len(jobs):
        raise ValueError("train_jobs(together=True): one job per adapter")
    groups = [jobs] if together and len(jobs) > 1 else [[j] for j in jobs]
    stats: dict[int, TrainStats] = {}
    for group in groups:
        t0 = time.perf_counter()
        result = (
            _train_group(model, group, max_rows, progress)
            if len(group) > 1
            else [_train_one(model, group[0], progress)]
        )
        seconds = time.perf_counter() - t0
        for job, (tokens, padded, losses) in zip(group, result):
            stats[id(job)] = TrainStats(
                len(job.data),
                tokens,
                padded,
                seconds,
                losses[0] if losses else float("nan"),
                losses[-1] if losses else float("nan"),
            )
    return [stats[id(j)] for j in jobs]


def _train_one(model, job: Job, progress: str | None) -> tuple[int, int, list[float]]:
    """One adapter, active in train mode: the model computes the loss (SEAL's inner loop)."""
    if not job.data or job.epochs <= 0:
        return 0, 0, []
    pad = model.tokenizer.pad_token_id
    schedule = job.schedule()
    tokens = padded = 0
    losses: list[float] = []
    with (
        model.training(job.adapter) as params,
        torch.random.fork_rng(devices=[]),
        tqdm(total=len(schedule), desc=progress, leave=False, unit="step", disable=not progress) as bar,
    ):
        torch.manual_seed(job.seed)
        opt = torch.optim.AdamW(params, lr=job.lr, weight_decay=job.weight_decay)
        for batch in schedule:
            enc = {k: v.to(model.device) for k, v in collate([job.data[i] for i in batch], pad).items()}
            loss = model.peft(**enc).loss
            (loss + job.penalty(_active_forward(model)) if job.penalty else loss).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            tokens += int((enc["labels"] != -100).sum())
            padded += enc["input_ids"].numel()
            bar.update(1)
    return tokens, padded, losses


def _active_forward(model) -> Forward:
    """A batch through the active adapter (one job trained alone)."""
    return lambda enc: model.peft(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.float()


def _named_forward(model, adapter: str) -> Forward:
    """A batch through ``adapter`` by name (shared batches, eval mode)."""
    return lambda enc: model.peft(
        input_ids=enc["input_ids"],
        attention_mask=enc["attention_mask"],
        adapter_names=[adapter] * enc["input_ids"].shape[0],
    ).logits.float()


def _forward(model, enc: dict[str, torch.Tensor], adapters: list[str], row_adapters: list[str], stacked: bool):
    """Float logits of a shared batch whose rows go through ``row_adapters``: one batched LoRA product
    per layer when every adapter has the same number of rows (``SharedModel.stacked``), else peft's
    mixed-adapter forward."""
    if stacked:
        with model.stacked(adapters) as base:
            return model.peft(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], adapter_names=base * len(row_adapters)
            ).logits.float()
    return model.peft(
        input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], adapter_names=row_adapters
    ).logits.float()


def _chunks(active: Sequence[int], rows: Sequence[int], max_rows: int) -> list[list[int]]:
    """``active`` jobs cut into consecutive groups of at most ``max_rows`` rows (a job is never split)."""
    out: list[list[int]] = [[]]
    n = 0
    for i in active:
        if out[-1] and n + rows[i] > max_rows:
            out.append([])
            n = 0
        out[-1].append(i)
        n += rows[i]
    return out


def _train_group(model, jobs: Sequence[Job], max_rows: int, progress: str | None) -> list[tuple[int, int, list[float]]]:
    """Several adapters in shared batches (see :func:`train_jobs`)."""
    pad = model.tokenizer.pad_token_id
    schedules = [j.schedule() if j.data else [] for j in jobs]
    steps = max((len(s) for s in schedules), default=0)
    tokens, padded = [0] * len(jobs), [0] * len(jobs)
    losses: list[list[float]] = [[] for _ in jobs]
    with (
        model.training_many([j.adapter for j in jobs]) as params,
        torch.random.fork_rng(devices=[]),
        tqdm(total=steps, desc=progress, leave=False, unit="step", disable=not progress) as bar,
    ):
        torch.manual_seed(jobs[0].seed)
        opts = [torch.optim.AdamW(params[j.adapter], lr=j.lr, weight_decay=j.weight_decay) for j in jobs]
        stackable = model.stackable([j.adapter for j in jobs])
        for k in range(steps):
            active = [i for i, s in enumerate(schedules) if k < len(s)]
            for chunk in _chunks(active, [len(s[k]) if k < len(s) else 0 for s in schedules], max_rows):
                rows = [(i, jobs[i].data[x]) for i in chunk for x in schedules[i][k]]
                enc = {key: v.to(model.device) for key, v in collate([e for _, e in rows], pad).items()}
                owner = torch.tensor([i for i, _ in rows], device=model.device)
                logits = _forward(
                    model,
                    enc,
                    [jobs[i].adapter for i in chunk],
                    [jobs[i].adapter for i, _ in rows],
                    stackable and len({len(schedules[i][k]) for i in chunk}) == 1,
                )
                labels = shifted_labels(enc["labels"])
                nll = torch.nn.functional.cross_entropy(
                    logits.view(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="none"
                ).view(labels.shape)
                scored = labels != -100
                total = logits.new_zeros(())
                for i in chunk:
                    mine = owner == i
                    loss = nll[mine].sum() / max(int(scored[mine].sum()), 1)
                    total = total + loss
                    if jobs[i].penalty is not None:
                        total = total + jobs[i].penalty(_named_forward(model, jobs[i].adapter))
                    losses[i].append(float(loss.detach()))
                    tokens[i] += int((enc["labels"][mine] != -100).sum())
                    padded[i] += int(mine.sum()) * enc["input_ids"].shape[1]
                total.backward()
            for i in active:
                opts[i].step()
                opts[i].zero_grad(set_to_none=True)
            bar.update(1)
    return [(tokens[i], padded[i], losses[i]) for i in range(len(jobs))]


def inner_loop_job(
    model,
    adapter: str,
    sequences: Sequence[str],
    settings: TrainSettings,
    seed: int = 0,
    penalty: Penalty | None = None,
) -> Job:
    """The inner loop's job for ``adapter``: every token of each sequence scored."""
    data = [Example(ids) for ids in tokenize_sequences(model.tokenizer, sequences, settings.max_length)]
    return Job(adapter, data, settings.epochs, settings.lr, settings.batch_size, settings.weight_decay, seed, penalty)


def train_adapter(
    model, adapter: str, sequences: Sequence[str], settings: TrainSettings, seed: int = 0, progress: str | None = None
) -> TrainStats:
    """The inner loop: fine-tune ``adapter`` in place on ``sequences``, every token scored."""
    return train_jobs(model, [inner_loop_job(model, adapter, sequences, settings, seed)], progress=progress)[0]


def finetune_on_completions(
    model,
    adapter: str,
    pairs: Sequence[tuple[str, str]],
    settings: TrainSettings,
    seed: int = 0,
    progress: str | None = None,
) -> TrainStats:
    """ReST-EM's M-step: train ``adapter`` to write each completion after its (formatted) prompt."""
    data = tokenize_pairs(model.tokenizer, pairs, settings.max_length)
    return train_examples(
        model,
        adapter,
        data,
        epochs=settings.epochs,
        lr=settings.lr,
        batch_size=settings.batch_size,
        seed=seed,
        progress=progress,
    )


@torch.no_grad()
def completion_loss(model, adapter: str | None, pairs: Sequence[tuple[str, str]], max_length: int = 512) -> float:
    """Mean per-token negative log-likelihood of the completions given their prompts (None = base)."""
    data = tokenize_pairs(model.tokenizer, pairs, max_length)
    enc = {k: v.to(model.device) for k, v in collate(data, model.tokenizer.pad_token_id).items()}
    if model.peft is None:
        return float(model.model(**enc).loss)
    if adapter is None:
        with model.peft.disable_adapter():
            return float(model.peft(**enc).loss)
    model.peft.set_adapter(adapter)
    model.peft.eval()
    return float(model.peft(**enc).loss)
