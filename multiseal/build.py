"""Builders: typed scenario sections in, library objects out.

This is the only place where scenario sections meet library classes; everything downstream takes
plain typed arguments.
"""
from __future__ import annotations

import os
from pathlib import Path

from multiseal.adapt import InnerLoopSettings
from multiseal.evaluate import EvalSettings
from multiseal.model import LoraSettings, SharedModel, build_shared_model
from multiseal.scenario import (
    EvaluationSection,
    InnerLoopSection,
    LoraSection,
    ModelSection,
    Scenario,
    SelfEditSection,
    WorldSection,
    resolve_relative,
)
from multiseal.self_edit import SelfEditSettings
from multiseal.world import World, generate_world, load_squad_json


def build_model(cfg: ModelSection, progress: bool = True) -> SharedModel:
    """The shared base model. ``threads`` matters on a small CPU: with more threads than free cores,
    each OpenMP region waits for descheduled siblings and runs several times slower."""
    threads = cfg.threads or (int(os.environ["MULTISEAL_THREADS"]) if os.environ.get("MULTISEAL_THREADS") else None)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return build_shared_model(
        cfg.base, device=cfg.device, dtype=cfg.dtype, chat=cfg.chat,
        allow_download=cfg.allow_download, progress=progress,
    )


def build_lora(cfg: LoraSection) -> LoraSettings:
    return LoraSettings(cfg.rank, cfg.alpha, cfg.dropout, tuple(cfg.target_modules))


def build_world(cfg: WorldSection, seed: int, source: str | Path | None = None) -> World:
    """The synthetic world (seeded) or the documents of a SQuAD-style file."""
    if cfg.kind == "squad":
        return load_squad_json(resolve_relative(cfg.path, source))
    return generate_world(
        cfg.documents, cfg.seed if cfg.seed is not None else seed,
        questions_per_doc=tuple(cfg.questions_per_doc), composition=cfg.composition,
    )


def build_self_edit(cfg: SelfEditSection) -> SelfEditSettings:
    return SelfEditSettings(cfg.style, cfg.candidates, cfg.temperature, cfg.top_p, cfg.max_new_tokens)


def build_inner_loop(cfg: InnerLoopSection) -> InnerLoopSettings:
    return InnerLoopSettings(cfg.epochs, cfg.lr, cfg.batch_size, cfg.max_length)


def build_eval(cfg: EvaluationSection) -> EvalSettings:
    return EvalSettings(cfg.max_new_tokens, cfg.batch_size, cfg.headline)


def run_name(scenario: Scenario) -> str:
    return scenario.tracking.run_name or scenario.name
