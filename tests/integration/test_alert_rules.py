"""The alerts of deploy/k8s/monitoring/prometheus-rules.yaml, checked and unit-tested by Prometheus' own
promtool (Debian's `prometheus` package): every rule parses, and every alert has a test in
tests/prometheus/alerts_test.yml in which it fires on the series that should trigger it and stays quiet on
the others."""

import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
import yaml  # type: ignore[import-untyped]

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
RULES: Final = REPO_ROOT / "deploy" / "k8s" / "monitoring" / "prometheus-rules.yaml"
TESTS: Final = REPO_ROOT / "tests" / "prometheus" / "alerts_test.yml"

pytestmark = pytest.mark.integration


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: scripts/setup.sh installs Debian's prometheus package")
    return found


def rule_groups() -> dict[str, Any]:
    """The PrometheusRule's spec: the `groups:` document promtool reads."""
    resource = yaml.safe_load(RULES.read_text())
    assert resource["kind"] == "PrometheusRule"
    spec: dict[str, Any] = resource["spec"]
    return spec


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule_groups(), sort_keys=False))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    return tmp_path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_checks_the_rules(rules_dir: Path) -> None:
    checked = run("check", "rules", "rules.yml", cwd=rules_dir)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    count = sum(len(group["rules"]) for group in rule_groups()["groups"])
    assert f"SUCCESS: {count} rules found" in checked.stdout


def test_every_alert_fires_on_its_series_and_stays_quiet_on_the_others(rules_dir: Path) -> None:
    tested = run("test", "rules", TESTS.name, cwd=rules_dir)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_test_that_expects_it_to_fire() -> None:
    alerts = {
        rule["alert"] for group in rule_groups()["groups"] for rule in group["rules"] if "alert" in rule
    }
    cases = [case for test in yaml.safe_load(TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    assert firing == alerts


def test_a_wrong_expectation_fails(rules_dir: Path) -> None:
    """The tests can fail: the same file with one annotation changed does not pass."""
    text = (rules_dir / TESTS.name).read_text()
    (rules_dir / "broken_test.yml").write_text(text.replace("3 jobs are in", "4 jobs are in", 1))
    broken = run("test", "rules", "broken_test.yml", cwd=rules_dir)
    assert broken.returncode != 0 and "FAILED" in broken.stdout + broken.stderr
