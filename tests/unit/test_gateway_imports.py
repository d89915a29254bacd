"""The gateway's container carries no torch: importing the service must not pull in the model code."""

import subprocess
import sys

FORBIDDEN = (
    "torch",
    "torchvision",
    "torchaudio",
    "transformers",
    "faster_whisper",
    "shared.model",
    "shared.stages",
    "shared.media.decode",
    "shared.media.frames",
)

_PROBE = f"""
import sys
import services.gateway.main
roots = {FORBIDDEN!r}
print(",".join(sorted(m for m in sys.modules if m in roots or m.startswith(tuple(r + "." for r in roots)))))
"""


def test_the_gateway_imports_no_model_code() -> None:
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == ""
