#!/usr/bin/env bash
# bench/gpu.py on a GPU machine whose Python has a CUDA torch but no MuJoCo and no network: install the
# wheels carried in .whl/ (mujoco, gymnasium and their small dependencies, for that machine's Python) and
# robotrl itself into /tmp/site, then run from outside the checkout (so `import robotrl` is the installed one).
#   bash bench/gpu.sh OUT_DIR [bench/gpu.py options]
# The wheels, fetched beforehand on a machine with network (for the GPU machine's Python, here 3.12):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#     --platform manylinux_2_27_x86_64 -d .whl mujoco==4.0.0 mujoco-core==4.0.0 mujoco-studio==4.0.0 \
#     gymnasium==1.4.0 farama-notifications==0.0.6 glfw==2.11.0 pyopengl==3.1.10
set -euo pipefail
out=${1:?usage: bench/gpu.sh OUT_DIR [options]}; shift
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
site=/tmp/robotrl-site
"$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$repo"/.whl/*.whl
"$py" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --upgrade --target "$site" "$repo"
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
cd /tmp
"$py" "$repo/bench/gpu.py" --out "$out" "$@"
