"""On the real SmolLM2-135M-Instruct: test-time training with a good configuration solves few-shot
grid tasks that the model does not solve in context (SEAL's few-shot domain, issue 21).

The tasks are the calibration's (docs/skills.md): recolour, widths 4–5, height 2, one colour, four
demonstrations, seed 1. In context the model solves none of them (it answers "The answer is 4.", not
a grid); in the calibration pilot the colours configuration solved 3 of 3 (trained beside six other
tasks, so with other adapter seeds; one task's outcome moves with the seeds: in scenarios/skills.yaml
the same configuration missed recolour-000). The test asks for what the issue names — at least one
task solved after training that is not solved in context — so one answer flipping on another CPU's
rounding leaves the claim intact, while a broken pipeline (no training, a wrong target, a wrong
reading of the answer) solves none."""

from __future__ import annotations

import pytest

from multiseal.rl.skill_restem import SkillSettings, evaluate_arm
from multiseal.types import LoraSettings, SkillConfig
from multiseal.world.grid_tasks import TaskShape, generate_tasks

pytestmark = pytest.mark.smollm2

SHAPE = TaskShape(width=(4, 5), height=(2, 2), colours=1, demonstrations=4)
COLOURS = SkillConfig(("colours",), True, 3, 1e-3, 3, "output")  # the calibration's best configuration


def test_test_time_training_with_the_oracle_configuration_solves_what_in_context_does_not(smollm2_model):
    tasks = generate_tasks(["recolour"], 3, 1, SHAPE)
    settings = SkillSettings(lora=LoraSettings(rank=16, alpha=32.0), oracle=(COLOURS,))
    in_context = evaluate_arm(smollm2_model, "in-context", tasks, settings, seed=1)
    oracle = evaluate_arm(smollm2_model, "oracle", tasks, settings, seed=1)
    solved_only_after_training = [
        t.task_id for t in tasks if oracle.solved[t.task_id] and not in_context.solved[t.task_id]
    ]
    assert solved_only_after_training, (
        f"in context {in_context.solved}, after training {oracle.solved}; "
        f"replies {[a.replies for a in oracle.attempts]}"
    )
    assert all(a.trained_tokens > 0 for a in oracle.attempts)
    assert not [name for name in smollm2_model.adapters if name.startswith("ttt")], "test-time adapters are deleted"
