"""A Prometheus (Debian's package) that scrapes the local stack's services, as the cluster's Prometheus
Operator does theirs (deploy/k8s/monitoring): `make up MONITORING=1`, and the monitoring test."""

import json
import shutil
from pathlib import Path
from typing import Any, Final

DEFAULT_PORT: Final = 9090
JOB_PREFIX: Final = "local/"
"""Jobs are named `<namespace>/<service>` on Kubernetes; here the namespace is `local`."""


class PrometheusMissingError(RuntimeError):
    def __init__(self) -> None:
        super().__init__("prometheus is not installed: scripts/setup.sh installs Debian's prometheus package")


def binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise PrometheusMissingError
    return found


def scrape_config(targets: dict[str, str], *, interval_s: float) -> dict[str, Any]:
    """One job per service, `local/<service>`, scraping its /metrics URL (`host:port/metrics`)."""
    jobs = []
    for name, url in sorted(targets.items()):
        address, _, path = url.removeprefix("http://").partition("/")
        jobs.append(
            {
                "job_name": f"{JOB_PREFIX}{name.replace('_', '-')}",
                "metrics_path": f"/{path}",
                "static_configs": [{"targets": [address], "labels": {"service": name}}],
            }
        )
    interval = f"{max(interval_s, 1.0):g}s"
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval}, "scrape_configs": jobs}


def write_config(path: Path, targets: dict[str, str], *, interval_s: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON is YAML too: Prometheus reads it, and the stack needs no YAML library for it.
    path.write_text(json.dumps(scrape_config(targets, interval_s=interval_s), indent=2))
    return path


def command(config: Path, data_dir: Path, host: str, port: int) -> list[str]:
    return [
        binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address={host}:{port}",
    ]
