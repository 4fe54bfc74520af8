"""Pilot for the skills domain (issue 21): where does test-time training solve a task that the
in-context model does not, and does the configuration matter?

Generated tasks (every family), answered in context by the base model and after test-time training
with a few fixed configurations; prints solved tasks per family and arm, and the seconds each arm
took. Run from the repository root:

    python analysis/skills_pilot.py --tasks 2 --arms plain,augmented
    python analysis/skills_pilot.py --model tiny-random --tasks 1   # a quick check
    python analysis/skills_pilot.py --tasks 2 --write 4             # how many configurations are valid

Not a study: a calibration, to choose task sizes and the configuration menu before one.
"""

from __future__ import annotations

import argparse
import random
import time

from multiseal.learning.model import build_shared_model
from multiseal.learning.skill_config import FORMS, config_text, random_config, write_configs
from multiseal.learning.ttt import attempt_tasks, in_context
from multiseal.types import LoraSettings, SkillConfig
from multiseal.world.grid_tasks import FAMILIES, TaskShape, generate_tasks

GEOMETRIC = ("rotate90", "rotate180", "rotate270", "reverse", "flip_vertical", "transpose")
ARMS = {
    "plain": SkillConfig(("identity",), True, 1, 1e-3, 5, "output"),
    "plain-hot": SkillConfig(("identity",), True, 2, 3e-3, 5, "output"),
    "augmented": SkillConfig(GEOMETRIC, True, 1, 1e-3, 3, "output"),
    "colours": SkillConfig(("colours",), True, 3, 1e-3, 3, "output"),
    "all-tokens": SkillConfig(("identity",), True, 1, 1e-3, 5, "all"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tasks", type=int, default=1, help="tasks per family")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument(
        "--arms",
        default="plain,augmented",
        help=f"comma-separated: {', '.join(ARMS)}, or random (a valid configuration drawn from the menu per task)",
    )
    ap.add_argument("--width", default="3,5")
    ap.add_argument("--height", default="2,3")
    ap.add_argument("--colours", type=int, default=2)
    ap.add_argument("--demonstrations", type=int, default=3)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--write",
        type=int,
        default=0,
        metavar="K",
        help="instead of the arms: sample K configurations per task in each form (keyed, free) at "
        "temperatures 1.0 and 0.7 and count the valid ones",
    )
    args = ap.parse_args()
    shape = TaskShape(
        width=tuple(map(int, args.width.split(","))),
        height=tuple(map(int, args.height.split(","))),
        colours=args.colours,
        demonstrations=args.demonstrations,
    )
    tasks = generate_tasks(args.families.split(","), args.tasks, args.seed, shape)
    model = build_shared_model(args.model, progress=False)
    lora = LoraSettings(rank=args.rank, alpha=2.0 * args.rank)
    if args.write:
        for form in FORMS:
            for temperature in (1.0, 0.7):
                t0 = time.perf_counter()
                rows = write_configs(
                    model,
                    list(tasks),
                    k=args.write,
                    temperature=temperature,
                    top_p=0.95,
                    max_new_tokens=64,
                    seed=args.seed,
                    form=form,
                )
                flat = [x for row in rows for x in row]
                valid = [c for _, c in flat if c is not None]
                print(
                    f"{form}, temperature {temperature}: {len(valid)}/{len(flat)} valid in "
                    f"{time.perf_counter() - t0:.0f} s; distinct valid: {len(set(valid))}",
                    flush=True,
                )
                for reply, config in flat[:3]:
                    print(f"    {'valid  ' if config else 'INVALID'} {reply[:100]!r}")
        return
    results: dict[str, list] = {}
    t0 = time.perf_counter()
    results["in-context"] = in_context(model, tasks, seed=args.seed)
    seconds = {"in-context": time.perf_counter() - t0}
    for arm in args.arms.split(","):
        t0 = time.perf_counter()
        if arm == "random":  # the draws of kind: skills' random arm
            rng = random.Random(f"multiseal-random-config:{args.seed}")
            configs = [random_config(rng) for _ in tasks]
            for t, c in zip(tasks, configs):
                print(f"  random {t.task_id}: {config_text(c)!r}", flush=True)
        else:
            configs = [ARMS[arm]] * len(tasks)
        results[arm] = attempt_tasks(model, tasks, configs, lora, seed=args.seed)
        seconds[arm] = time.perf_counter() - t0
        print(
            f"{arm}: {sum(a.solved for a in results[arm])}/{len(tasks)} solved in {seconds[arm]:.0f} s "
            f"({sum(a.trained_tokens for a in results[arm]):,} tokens trained)",
            flush=True,
        )
    families = list(dict.fromkeys(t.family for t in tasks))
    print(f"\n{'family':<14}" + "".join(f"{arm:>12}" for arm in results))
    for fam in families:
        row = [sum(a.solved for a, t in zip(results[arm], tasks) if t.family == fam) for arm in results]
        n = sum(t.family == fam for t in tasks)
        print(f"{fam:<14}" + "".join(f"{r:>10}/{n}" for r in row))
    print(f"{'all':<14}" + "".join(f"{sum(a.solved for a in results[arm]):>10}/{len(tasks)}" for arm in results))
    print("seconds       " + "".join(f"{seconds[arm]:>12.0f}" for arm in results))
    for arm in results:
        for a, t in zip(results[arm], tasks):
            print(
                f"  {arm:<11} {t.task_id:<16} {'SOLVED' if a.solved else 'wrong '} loss {a.final_loss:.3f} "
                f"reply {a.replies[0][:60]!r}"
                if a.replies
                else f"  {arm} {t.task_id}: no reply"
            )


if __name__ == "__main__":
    main()
