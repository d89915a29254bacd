"""Vendor JSON schemas of the custom resources deploy/k8s uses, so the manifests validate offline.

kubernetes-validate knows the core kinds only. The operators' own CRD files live in their GitHub
releases, which this project's machines cannot reach; the npm registry can, and the MIT-licensed
`@kubernetes-models/*` packages carry each operator's API as TypeScript declarations (generated from
the operator's CRDs or its Go API types). `ts-json-schema-generator` turns one declared type per kind
into a JSON schema (draft 7, unknown fields rejected), which is written to
deploy/k8s/schemas/<apiVersion>/<Kind>.json.

Usage (needs node and npm):
    .venv/bin/python scripts/fetch_crd_schemas.py           # (re)write the vendored schemas
    .venv/bin/python scripts/fetch_crd_schemas.py --check   # fail if they differ from a fresh build
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
SCHEMAS_DIR: Final = REPO_ROOT / "deploy" / "k8s" / "schemas"

# Exact versions: the transitive @kubernetes-models packages are pinned too, so a rebuild is reproducible.
NPM_PACKAGES: Final = {
    "@kubernetes-models/keda": "2.0.0",
    "@kubernetes-models/strimzi-kafka-operator": "1.0.1",
    "@kubernetes-models/cloudnative-pg": "2.0.0",
    "@kubernetes-models/prometheus-operator": "6.0.0",
    "@kubernetes-models/apimachinery": "3.0.2",
    "@kubernetes-models/base": "6.0.1",
    "@kubernetes-models/validate": "5.0.2",
    "kubernetes-models": "5.1.0",
    "ts-json-schema-generator": "2.4.0",
    "typescript": "5.9.3",
}
GENERATOR: Final = "node_modules/ts-json-schema-generator/dist/ts-json-schema-generator.js"
TSCONFIG: Final = {
    "compilerOptions": {
        "module": "nodenext",
        "moduleResolution": "nodenext",
        "target": "es2022",
        "strict": True,
        "skipLibCheck": True,
    }
}


@dataclass(frozen=True)
class CustomResource:
    api_version: str
    kind: str
    package: str
    module: str
    """The package's module that declares `I<kind>`."""

    @property
    def path(self) -> Path:
        return Path(self.api_version) / f"{self.kind}.json"


RESOURCES: Final = (
    CustomResource(
        "keda.sh/v1alpha1", "ScaledObject", "@kubernetes-models/keda", "keda.sh/v1alpha1/ScaledObject"
    ),
    *(
        CustomResource(
            "kafka.strimzi.io/v1",
            kind,
            "@kubernetes-models/strimzi-kafka-operator",
            f"kafka.strimzi.io/v1/{kind}",
        )
        for kind in ("Kafka", "KafkaNodePool", "KafkaTopic")
    ),
    CustomResource(
        "postgresql.cnpg.io/v1",
        "Cluster",
        "@kubernetes-models/cloudnative-pg",
        "postgresql.cnpg.io/v1/Cluster",
    ),
    *(
        CustomResource(
            "monitoring.coreos.com/v1",
            kind,
            "@kubernetes-models/prometheus-operator",
            f"monitoring.coreos.com/v1/{kind}",
        )
        for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule")
    ),
)


def run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


def install(workdir: Path) -> None:
    package = {"name": "crd-schemas", "private": True, "dependencies": NPM_PACKAGES}
    (workdir / "package.json").write_text(json.dumps(package, indent=2))
    (workdir / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))
    run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"], workdir)


def generate(workdir: Path, resource: CustomResource) -> dict[str, Any]:
    entry = workdir / f"entry_{resource.kind}.ts"
    entry.write_text(f'export type {{ I{resource.kind} }} from "{resource.package}/{resource.module}";\n')
    output = workdir / f"{resource.kind}.json"
    # `--expose none` inlines every referenced type: two packages may declare different types of one name.
    run(
        [
            "node",
            GENERATOR,
            "--path",
            entry.name,
            "--type",
            f"I{resource.kind}",
            "--tsconfig",
            "tsconfig.json",
            "--no-type-check",
            "--expose",
            "none",
            "--out",
            output.name,
        ],
        workdir,
    )
    schema: dict[str, Any] = json.loads(output.read_text())
    return schema


def tidy(node: Any) -> Any:
    """Drop prose and open the objects TypeScript declares as `{}`.

    `{}` is how the packages declare a CRD's `x-kubernetes-preserve-unknown-fields` object (Kafka's
    `config`, a topic's `config`): any keys are allowed there, so it must not reject unknown ones.
    """
    if isinstance(node, list):
        return [tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    tidied = {
        key: tidy(value)
        for key, value in node.items()
        if not (key in ("description", "markdownDescription") and isinstance(value, str))
    }
    opaque = (
        tidied.get("type") == "object" and "properties" not in tidied and "patternProperties" not in tidied
    )
    if opaque and tidied.get("additionalProperties") is False:
        del tidied["additionalProperties"]
    return tidied


def build(workdir: Path) -> dict[Path, str]:
    install(workdir)
    built: dict[Path, str] = {}
    for resource in RESOURCES:
        schema = tidy(generate(workdir, resource))
        schema["$comment"] = (
            f"{resource.api_version} {resource.kind}: generated by scripts/fetch_crd_schemas.py from "
            f"{resource.package}@{NPM_PACKAGES[resource.package]} ({resource.module}) with "
            f"ts-json-schema-generator@{NPM_PACKAGES['ts-json-schema-generator']}"
        )
        built[resource.path] = json.dumps(schema, indent=1, sort_keys=True) + "\n"
    return built


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="compare with the vendored schemas, write nothing"
    )
    args = parser.parse_args()
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            print(f"{tool} is not on PATH", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="crd-schemas-") as tmp:
        built = build(Path(tmp))
    if args.check:
        stale = [
            str(path)
            for path, text in built.items()
            if not (SCHEMAS_DIR / path).is_file() or (SCHEMAS_DIR / path).read_text() != text
        ]
        for name in stale:
            print(f"differs from a fresh build: deploy/k8s/schemas/{name}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in built.items():
        target = SCHEMAS_DIR / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote deploy/k8s/schemas/{path} ({len(text) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
