"""The learning layer: one agent's machinery on the shared base model.

``weights`` (where the base comes from), ``model`` (the shared base with named LoRA adapters),
``train`` (the one training loop: inner loop and writer fine-tuning), ``self_edit`` (prompt styles,
sampling, parsing), ``evaluate`` (closed-book answers in shared batches) and ``grading`` (graders).
"""
