"""The shared base model with one named LoRA adapter per agent (peft), and batched generation.

Adapters are peft LoRA modules injected into the same base layers, so adding an agent adds only its
adapter's parameters. Where the weights come from is :mod:`multiseal.learning.weights`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from multiseal.learning.multilora import routed
from multiseal.learning.weights import load_base, resolve_device
from multiseal.types import LORA_KERNELS, LoraSettings

BASE = "__base__"  # peft's name for "no adapter" in a mixed-adapter batch


def chat_prompt(tokenizer, chat: bool, user_text: str) -> str:
    """The generation prompt: the chat template for instruct models (``chat``), the plain text otherwise."""
    if not chat:
        return user_text
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
    )


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass
class SharedModel:
    """One base model in memory and the named LoRA adapters living on it.

    Adapters are peft LoRA modules injected into the same base layers, so adding an agent adds only
    its adapter's parameters, never a copy of the base weights.
    """

    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    chat: bool
    name: str = ""
    adapters: dict[str, LoraSettings] = field(default_factory=dict)
    peft: object | None = None
    lora_kernel: str = "grouped"  # how a batch mixing adapters runs (multiseal.types.LORA_KERNELS)

    def __post_init__(self) -> None:
        if self.lora_kernel not in LORA_KERNELS:
            raise ValueError(f"lora_kernel must be one of {LORA_KERNELS}, not {self.lora_kernel!r}")

    # -- adapters ---------------------------------------------------------
    def add_adapter(self, name: str, settings: LoraSettings, init_from: str | None = None, seed: int = 0) -> None:
        """Create adapter ``name`` (fresh, seeded; or a copy of ``init_from``'s current weights)."""
        if name in self.adapters or name == BASE or (self.peft is not None and name in self.peft.peft_config):
            raise ValueError(f"adapter '{name}' already exists")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in "lora_":
            raise ValueError(f"adapter name '{name}' must be an identifier and not part of 'lora_'")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.peft is None:
                from peft import get_peft_model

                self.peft = get_peft_model(self.model, settings.peft_config(), adapter_name=name)
            else:
                self.peft.add_adapter(name, settings.peft_config())
        self.adapters[name] = settings
        self._freeze_all()
        if init_from is not None:
            self.set_adapter_state(name, self.adapter_state(init_from))

    def delete_adapter(self, name: str) -> None:
        if name not in self.adapters:
            raise KeyError(name)
        if len(self.peft.peft_config) > 1:
            if name in self.peft.active_adapters:
                self.peft.set_adapter(next(a for a in self.peft.peft_config if a != name))
            self.peft.delete_adapter(name)
        else:  # peft cannot hold zero adapters: take LoRA out of the base model altogether
            self.model = self.peft.unload()
            self.peft = None
        del self.adapters[name]

    @staticmethod
    def _pattern(name: str) -> re.Pattern[str]:
        # the adapter name sits right after the LoRA tag (``...lora_A.<name>.weight``); matching it
        # anywhere else would confuse an adapter called ``mlp`` with the module path
        return re.compile(rf"\.(lora_[AB]|lora_embedding_[AB])\.{re.escape(name)}(\.|$)")

    def adapter_parameters(self, name: str) -> dict[str, torch.nn.Parameter]:
        """The trainable LoRA parameters of one adapter, keyed by module path."""
        pat = self._pattern(name)
        return {k: p for k, p in self.peft.named_parameters() if pat.search(k)}

    def adapter_state(self, name: str) -> dict[str, torch.Tensor]:
        """A detached copy of one adapter's weights, keyed without the adapter name."""
        pat = self._pattern(name)
        return {pat.sub(r".\1\2", k): p.detach().clone() for k, p in self.adapter_parameters(name).items()}

    def set_adapter_state(self, name: str, state: dict[str, torch.Tensor]) -> None:
        pat = self._pattern(name)
        params = self.adapter_parameters(name)
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(state[pat.sub(r".\1\2", k)])

    def _freeze_all(self) -> None:
        for p in self.peft.parameters():
            p.requires_grad_(False)

    @contextlib.contextmanager
    def training(self, name: str) -> Iterator[list[torch.nn.Parameter]]:
        """Make only adapter ``name`` trainable and active; yields its parameters."""
        self.peft.set_adapter(name)
        self._freeze_all()
        params = list(self.adapter_parameters(name).values())
        for p in params:
            p.requires_grad_(True)
        self.peft.train()
        try:
            yield params
        finally:
            for p in params:
                p.requires_grad_(False)
            self.peft.eval()

    @contextlib.contextmanager
    def training_many(self, names: Sequence[str]) -> Iterator[dict[str, list[torch.nn.Parameter]]]:
        """Make adapters ``names`` trainable together, for mixed-adapter batches (``adapter_names=``);
        yields each adapter's parameters. The model stays in eval mode, as peft requires there."""
        self._freeze_all()
        params = {n: list(self.adapter_parameters(n).values()) for n in names}
        for ps in params.values():
            for p in ps:
                p.requires_grad_(True)
        self.peft.eval()
        try:
            yield params
        finally:
            self._freeze_all()

    def stackable(self, names: Sequence[str]) -> bool:
        """Whether adapters ``names`` can run as one batched product per layer (:meth:`stacked`): plain
        LoRA on linear layers, the same shape and scaling in every layer."""
        from peft.tuners.lora import Linear as LoraLinear
        from peft.tuners.lora import LoraLayer

        for module in self.peft.modules():
            if isinstance(module, LoraLayer) and any(n in module.lora_A or n in module.lora_embedding_A for n in names):
                if not isinstance(module, LoraLinear) or not all(n in module.lora_A for n in names):
                    return False
                if any(n in module.lora_variant for n in names):
                    return False
                shapes = {
                    (module.lora_A[n].weight.shape, module.lora_B[n].weight.shape, module.scaling[n]) for n in names
                }
                if len(shapes) > 1:
                    return False
        return True

    @contextlib.contextmanager
    def stacked(self, names: Sequence[str]) -> Iterator[list[str]]:
        """Forward passes whose rows come in equal consecutive blocks, one block per adapter of ``names``:
        each LoRA layer adds ``scaling · B_i A_i x`` for block i with one batched product (``torch.bmm``
        over the adapters' own peft weights, so gradients reach them). Yields the ``adapter_names`` to
        pass to the model (the base for every row: peft adds nothing itself). Needs :meth:`stackable`
        adapters and LoRA dropout 0; peft's mixed-adapter forward does the same with one product and
        an indexed scatter per adapter, which costs more than the products on a CPU."""
        from peft.tuners.lora import LoraLayer

        def hook(module, args, output):
            x = args[0]
            a = torch.stack([module.lora_A[n].weight for n in names])  # (adapters, r, in)
            b = torch.stack([module.lora_B[n].weight for n in names])  # (adapters, out, r)
            xs = x.reshape(len(names), -1, x.shape[-1]).to(a.dtype)
            delta = torch.bmm(torch.bmm(xs, a.transpose(1, 2)), b.transpose(1, 2)) * module.scaling[names[0]]
            return output + delta.reshape(output.shape).to(output.dtype)

        handles = [
            m.register_forward_hook(hook)
            for m in self.peft.modules()
            if isinstance(m, LoraLayer) and names[0] in m.lora_A
        ]
        try:
            yield [BASE]
        finally:
            for h in handles:
                h.remove()

    # -- text -------------------------------------------------------------
    def prompt(self, user_text: str) -> str:
        """The generation prompt: the chat template for instruct models, the plain text otherwise."""
        return chat_prompt(self.tokenizer, self.chat, user_text)

    def count_tokens(self, text: str) -> int:
        return count_tokens(self.tokenizer, text)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        adapters: Sequence[str | None] | None = None,
        *,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
        batch_size: int = 32,
        seed: int | None = None,
        progress: str | None = None,
    ) -> list[str]:
        """Complete already-formatted ``prompts``, each with its own adapter (None = base model).

        Greedy when ``temperature == 0``. Prompts are sorted by length and batched so padding stays
        small; different adapters share one batch (peft's mixed-adapter inference).
        """
        if adapters is None:
            adapters = [None] * len(prompts)
        names = [BASE if a is None else a for a in adapters]
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            if seed is not None:
                torch.manual_seed(seed)
            return self._generate(prompts, names, max_new_tokens, temperature, top_p, batch_size, progress)

    def _generate(self, prompts, names, max_new_tokens, temperature, top_p, batch_size, progress) -> list[str]:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[str] = [""] * len(prompts)
        tok = self.tokenizer
        tok.padding_side = "left"
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        bar = tqdm(total=len(prompts), desc=progress, leave=False, unit="seq", disable=not progress)
        kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self.serving([n for n in names if n != BASE]) as serve:
            for idx in batches:
                enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
                enc = {k: v.to(self.device) for k, v in enc.items()}
                gen = serve.generate(enc, [names[i] for i in idx], **kwargs)
                new = gen[:, enc["input_ids"].shape[1] :]
                for j, i in enumerate(idx):
                    out[i] = tok.decode(new[j], skip_special_tokens=True).strip()
                bar.update(len(idx))
        bar.close()
        return out

    @contextlib.contextmanager
    def serving(self, adapters: Sequence[str]) -> Iterator[Serving]:
        """Inference on rows that each name their adapter (or :data:`BASE` / None), any mix per batch,
        for adapters among ``adapters`` (read once, as they are when the context opens). With
        ``lora_kernel="grouped"`` and :meth:`stackable` adapters, every LoRA layer does one grouped
        product for the whole batch (:mod:`multiseal.learning.multilora`); otherwise peft's forward."""
        used = sorted(set(adapters) - {BASE})
        if self.peft is not None:
            self.peft.eval()
        if self.peft is None or self.lora_kernel != "grouped" or (used and not self.stackable(used)):
            yield Serving(self, None)
            return
        with routed(self.model, used) as router:
            yield Serving(self, router)

    @contextlib.contextmanager
    def _base_only(self) -> Iterator[None]:
        if self.peft is None:
            yield
            return
        with self.peft.disable_adapter():
            yield


def build_shared_model(
    base: str = "smollm2-135m",
    *,
    device: str = "auto",
    dtype: str = "auto",
    chat: bool | None = None,
    allow_download: bool = False,
    progress: bool = True,
    lora_kernel: str = "grouped",
) -> SharedModel:
    """Load the base once and wrap it; ``chat=None`` uses the chat template when the tokenizer has one;
    ``lora_kernel`` is how batches that mix adapters run (:data:`multiseal.types.LORA_KERNELS`)."""
    dev, dt = resolve_device(device, dtype)
    model, tok = load_base(base, dtype=dt, allow_download=allow_download, progress=progress)
    model.to(device=dev, dtype=dt)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if chat is None:
        chat = bool(getattr(tok, "chat_template", None))
    return SharedModel(model=model, tokenizer=tok, device=dev, chat=chat, name=base, lora_kernel=lora_kernel)


@dataclass
class Serving:
    """Forward passes and generation with a per-row adapter (:meth:`SharedModel.serving`)."""

    shared: SharedModel
    router: object | None  # a multilora.Router, or None for peft's own forward

    def _call(self, method: str, enc: dict, rows: Sequence[str | None], kwargs: dict):
        shared, names = self.shared, [BASE if r is None else r for r in rows]
        if self.router is not None:
            self.router.route([None if n == BASE else n for n in names], shared.device)
            return getattr(shared.model, method)(**enc, **kwargs)
        if shared.peft is None or all(n == BASE for n in names):
            with shared._base_only():
                return getattr(shared.model, method)(**enc, **kwargs)
        if len(set(names)) == 1:
            shared.peft.set_adapter(names[0])
            return getattr(shared.peft, method)(**enc, **kwargs)
        return getattr(shared.peft, method)(**enc, **kwargs, adapter_names=names)

    def generate(self, enc: dict, rows: Sequence[str | None], **kwargs) -> torch.Tensor:
        """``generate`` on a tokenised batch whose row ``i`` uses adapter ``rows[i]``."""
        return self._call("generate", enc, rows, kwargs)

    def logits(self, enc: dict, rows: Sequence[str | None]) -> torch.Tensor:
        """Float logits of a tokenised batch (``input_ids``, ``attention_mask``), row ``i`` through ``rows[i]``."""
        batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        return self._call("__call__", batch, rows, {}).logits.float()
