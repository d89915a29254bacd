"""Write the API documents, generated from the code so that they cannot drift from it:

docs/openapi.json    the gateway's REST API (FastAPI's OpenAPI document of the app, never started)
docs/asyncapi.json   the pipeline's Kafka events (faststream's AsyncAPI document, one channel per topic)

python scripts/export_api_docs.py            write both (`make docs`)
python scripts/export_api_docs.py --check    exit 1 when the files in docs/ differ from what the code gives
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: the project's packages sit beside this folder
    sys.path.insert(0, str(REPO_ROOT))

from faststream.kafka import KafkaBroker  # noqa: E402
from faststream.specification import AsyncAPI  # noqa: E402

from emotion_contract.events import Event, Topic  # noqa: E402
from services.gateway.main import create_app  # noqa: E402
from services.gateway.settings import Settings  # noqa: E402

DOCS_DIR: Final = REPO_ROOT / "docs"
# What production's services reach Kafka at (deploy/k8s/base/config.yaml).
KAFKA_SERVER: Final = "emotion-analyzer-kafka-bootstrap:9092"
ALL_STAGES: Final = ("transcriber", "video_encoder", "audio_encoder", "fusion")
# Who sends and who reads each topic (the services' app.py and the gateway's consumer.py say the same).
ROLES: Final[dict[Topic, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    Topic.ANALYSIS_REQUESTED: (("gateway",), ("transcriber", "video_encoder", "audio_encoder")),
    Topic.TRANSCRIPT_READY: (("transcriber",), ("audio_encoder", "fusion")),
    Topic.FEATURES_VIDEO: (("video_encoder",), ("fusion",)),
    Topic.FEATURES_AUDIO: (("audio_encoder",), ("fusion",)),
    Topic.ANALYSIS_PROGRESS: (("transcriber", "audio_encoder", "fusion"), ("gateway",)),
    Topic.ANALYSIS_COMPLETED: (("fusion",), ("gateway",)),
    Topic.ANALYSIS_FAILED: (ALL_STAGES, ("gateway",)),
    Topic.DEAD_LETTER: (ALL_STAGES, ("operators (nothing consumes it)",)),
}


def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = create_app(Settings()).openapi()
    return document


def _event_models() -> dict[Topic, type[Event]]:
    models = {model.TOPIC: model for model in Event.__subclasses__()}
    undocumented = set(Topic) - set(ROLES)
    if set(models) != set(Topic) or undocumented:
        raise RuntimeError(f"topics without an event model or roles here: {sorted(undocumented)}")
    return models


def asyncapi_document() -> dict[str, Any]:
    broker = KafkaBroker(
        KAFKA_SERVER,
        description="Apache Kafka (Strimzi) in production; Tansu, a Kafka-protocol broker, locally",
    )
    for topic, model in _event_models().items():
        senders, readers = ROLES[topic]
        summary = (model.__doc__ or "").strip()
        broker.publisher(
            topic.value,
            title=topic.value,
            schema=model,
            description=f"{summary} Sent by {', '.join(senders)}; read by {', '.join(readers)}.".strip(),
        )
    specification = AsyncAPI(
        broker,
        title="Multimodal Emotion Analyzer: pipeline events",
        version=f"events v{Event.model_fields['schema_version'].default}",
        description="The Kafka topics the services talk over (emotion_contract/events.py). Every event is "
        "JSON, keyed by its job id so that one job's events stay ordered. Each service is one consumer "
        "group; delivery is at least once and every handler is idempotent.",
    ).to_specification()
    document: dict[str, Any] = json.loads(specification.to_json())
    return document


def documents() -> dict[Path, str]:
    """Each file's content: sorted keys and a final newline, so that regenerating changes nothing."""
    return {
        DOCS_DIR / "openapi.json": json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n",
        DOCS_DIR / "asyncapi.json": json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for path, content in documents().items():
        current = path.read_text() if path.exists() else None
        if args.check:
            if current != content:
                stale.append(path)
        elif current != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    for path in stale:
        print(f"{path.relative_to(REPO_ROOT)} is stale: run `make docs`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
