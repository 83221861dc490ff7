# jmbooru: one image for the API (`jmbooru serve`, the default command) and for scale-out
# workers (`jmbooru worker`). Defaults suit a HuggingFace Docker Space: non-root uid 1000,
# port 7860, data under /data. See README.md ("Docker") and docs/deploy-huggingface.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# HuggingFace Spaces run the container as uid 1000; so does this image everywhere.
# /data is created here so that a fresh named volume mounted on it inherits uid 1000.
RUN useradd --create-home --home-dir /home/user --uid 1000 --shell /bin/bash user \
    && mkdir -p /data \
    && chown user:user /data

WORKDIR /home/user/app

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml (or README.md,
# which pyproject names as the package's readme) changes, not on every code change. The empty
# `app` and `jmbooru` packages only let pip resolve the project; the real code is installed below.
# `.[redis,s3]` adds the Redis/taskiq clients and obstore (S3 storage), so the same image runs both
# the single-process server and the scale-out API processes and workers.
COPY pyproject.toml README.md ./
# hadolint ignore=DL3013
RUN mkdir app jmbooru \
    && touch app/__init__.py jmbooru/__init__.py \
    && pip install ".[redis,s3]" \
    && pip uninstall --yes jmbooru \
    && rm -rf app jmbooru build ./*.egg-info

# Every package pyproject.toml ships: the server and CLI (app) and the scripting API (jmbooru).
# tests/test_dockerfile.py checks that these COPY lines cover them.
COPY app ./app
COPY jmbooru ./jmbooru
# hadolint ignore=DL3013
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info

# Numeric, so that platforms checking "runAsNonRoot" need not resolve the name.
USER 1000

ENV HOME=/home/user \
    PORT=7860 \
    JMBOORU_DATA_DIR=/data

EXPOSE 7860

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v1/health' % os.environ.get('PORT', '7860'), timeout=4)"]

# A shell expands $PORT at start-up (HuggingFace and most PaaS set it); `exec` makes the
# server PID 1, so `docker stop` (SIGTERM) reaches it and running jobs shut down cleanly.
CMD ["sh", "-c", "exec jmbooru serve --host 0.0.0.0 --port \"${PORT:-7860}\""]
