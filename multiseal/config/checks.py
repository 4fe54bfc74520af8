"""Checks that need the model or the run's size, made before any weights load.

* **The model is here**: ``model.base`` is an alias, a local folder with a ``config.json`` and
  weights, or a Hugging Face id whose config and weights are in the local cache (``$HF_HUB_CACHE``,
  ``$HF_HOME``); a download is allowed only with ``model.allow_download: true``. Nothing here touches
  the network.
* **The device is here**: ``model.device: cuda[:N]`` or ``mps`` names a device torch sees.
* **The run can write**: the tracking store's folder and ``tracking.run_dir`` are checked by creating
  a probe file there (and removing it, and any folder made for it).
* **LoRA targets exist**: every ``model.lora.target_modules`` entry names a layer LoRA can wrap
  (``Linear``, transformers' ``Conv1D``, ``Embedding``), matched as peft does (the module's name or a
  dotted tail of its path). The names come from the architecture built on the ``meta`` device from
  the model's *config*: no weights are read, no memory is taken. Cached per model name per process;
  the aliases' Llama layer names are known without a build when every target is one of them.

The run's size against ``limits`` is :mod:`multiseal.config.estimate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from multiseal.config.paths import probe_folder, runs_root, store_problem, tracking_uri
from multiseal.config.schema import ModelSection, TrackingSection
from multiseal.errors import Problem
from multiseal.learning.weights import base_config, hf_cached_file, hf_hub_cache

ALIASES = ("smollm2-135m", "tiny-random")

# Both aliases are Llamas: targets among these layer names need no build (and no transformers import,
# seconds a file with a typo elsewhere should not wait for); tests/test_scenarios.py keeps this true.
ALIAS_LAYERS = frozenset(
    {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head", "embed_tokens"}
)

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class ModelShape:
    """What a model's config implies: parameter count, sizes, and the layers LoRA can wrap."""

    parameters: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    linear: dict[str, tuple[int, int]]  # module path -> (in, out) features
    embedding: dict[str, tuple[int, int]]  # module path -> (entries, dim)

    def linear_names(self) -> list[str]:
        return sorted({p.rsplit(".", 1)[-1] for p in self.linear})

    def matches(self, target: str) -> list[str]:
        """The wrappable modules peft's ``target_modules`` entry ``target`` selects."""
        return [p for p in (*self.linear, *self.embedding) if p == target or p.endswith("." + target)]

    def lora_parameters(self, targets: list[str] | tuple[str, ...], rank: int) -> int:
        paths = {p for t in targets for p in self.matches(t)}
        return sum(rank * sum(self.linear.get(p) or self.embedding[p]) for p in paths)


_SHAPES: dict[str, ModelShape] = {}


def model_shape(name: str) -> ModelShape | None:
    """The shape of ``model.base`` from its config, the architecture built on the ``meta`` device
    (no weights read, no memory taken); None when its config is not here or cannot be built. Shapes
    are kept per model name for the process (a model not found is looked for again next time)."""
    if name not in _SHAPES:
        try:
            cfg = base_config(name)
        except (OSError, ValueError, KeyError):
            return None
        shape = _shape(cfg) if cfg is not None else None
        if shape is None:
            return None
        _SHAPES[name] = shape
    return _SHAPES[name]


def _shape(cfg) -> ModelShape | None:
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(cfg)
    except Exception:  # noqa: BLE001 - an architecture that cannot be built here is not checked
        return None
    finally:
        hf_logging.set_verbosity(level)
    linear, embedding = {}, {}
    for path, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            linear[path] = (mod.in_features, mod.out_features)
        elif isinstance(mod, Conv1D):
            linear[path] = tuple(mod.weight.shape)
        elif isinstance(mod, torch.nn.Embedding):
            embedding[path] = (mod.num_embeddings, mod.embedding_dim)
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    hidden = int(getattr(text, "hidden_size", 0) or getattr(text, "n_embd", 0) or 0)
    return ModelShape(
        parameters=sum(p.numel() for p in model.parameters()),
        layers=int(getattr(text, "num_hidden_layers", 0) or getattr(text, "n_layer", 0) or 1),
        hidden=hidden,
        intermediate=int(getattr(text, "intermediate_size", 0) or 4 * hidden),
        vocab=int(getattr(text, "vocab_size", 0) or 0),
        linear=linear,
        embedding=embedding,
    )


def check_model(model: ModelSection) -> list[Problem]:
    """``model.base`` is here (or may be downloaded), and every LoRA target is a layer it has."""
    name = model.base
    if name not in ALIASES:
        path = Path(name).expanduser()
        if path.exists():
            if not (path / "config.json").is_file():
                return [
                    Problem(
                        "model.base",
                        f"'{name}' is a local path, but {path.resolve() / 'config.json'} does "
                        "not exist; give a folder saved with save_pretrained (config.json and "
                        "weights), an alias (smollm2-135m, tiny-random) or a Hugging Face id",
                    )
                ]
            if not any((path / f).is_file() for f in WEIGHT_FILES):
                return [
                    Problem(
                        "model.base",
                        f"'{name}' is a local folder with a config.json but no weights (looked for "
                        f"{', '.join(WEIGHT_FILES)} in {path.resolve()})",
                    )
                ]
        elif not _in_hf_cache(name):
            if not model.allow_download:
                return [
                    Problem(
                        "model.base",
                        (
                            f"'{name}' is not an alias (smollm2-135m, tiny-random), not a local folder (looked for "
                            f"{path.resolve()}), and not in the local Hugging Face cache (looked for its config.json and "
                            f"weights under {hf_hub_cache()}); set model.allow_download: true to fetch it from the hub, "
                            "or give the path of a local folder"
                        ),
                    )
                ]
            return []  # to be downloaded: its modules are not known offline
    elif set(model.lora.target_modules) <= ALIAS_LAYERS:
        return []
    try:
        cfg = base_config(name)
    except (OSError, ValueError, KeyError) as e:
        return [Problem("model.base", f"'{name}': its config.json cannot be read by transformers: {e}")]
    shape = model_shape(name) if cfg is not None else None
    if shape is None:
        return []
    problems = []
    for i, target in enumerate(model.lora.target_modules):
        if not shape.matches(target):
            problems.append(
                Problem(
                    f"model.lora.target_modules[{i}]",
                    (
                        f"'{target}' is not a linear module of {name}; its linear modules: {', '.join(shape.linear_names())}"
                        + (
                            f" (and embeddings: {', '.join(sorted({p.rsplit('.', 1)[-1] for p in shape.embedding}))})"
                            if shape.embedding
                            else ""
                        )
                    ),
                )
            )
    return problems


def _in_hf_cache(repo_id: str) -> bool:
    """The repo's config and weights are in the local Hugging Face cache (what loading it needs)."""
    return hf_cached_file(repo_id, "config.json") is not None and any(
        hf_cached_file(repo_id, f) is not None for f in WEIGHT_FILES
    )


def check_device(device: str) -> list[Problem]:
    """``model.device`` names a device torch sees here (``auto`` and ``cpu`` always do)."""
    if device in ("auto", "cpu"):
        return []
    import torch

    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return [Problem("model.device", "'mps': torch sees no Apple GPU (MPS) on this machine; use auto or cpu")]
        return []
    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        return [
            Problem(
                "model.device",
                (
                    f"'{device}': torch sees no CUDA GPU on this machine (torch {torch.__version__}, {build}); use auto "
                    "or cpu, or install a CUDA build of torch on a machine with a GPU"
                ),
            )
        ]
    index, count = int(device.partition(":")[2] or 0), torch.cuda.device_count()
    if index >= count:
        return [
            Problem(
                "model.device",
                f"'{device}': there is no CUDA device {index}; torch sees {count} (cuda:0 to cuda:{count - 1})",
            )
        ]
    return []


def check_tracking(tracking: TrackingSection) -> list[Problem]:
    """The tracking store (when local) and the folder of run directories can be written: checked by
    writing a probe file into each (removed again, with any folder made for it)."""
    problems = []
    uri = tracking_uri(tracking.uri)
    if problem := store_problem(uri):
        problems.append(Problem("tracking.uri", f"{uri}: {problem}"))
    root = runs_root(tracking.run_dir)
    if problem := probe_folder(root):
        default = "" if tracking.run_dir else " (the default folder of run directories: $MULTISEAL_RUNS, else ./runs)"
        problems.append(Problem("tracking.run_dir", f"{root}{default}: {problem}"))
    return problems
