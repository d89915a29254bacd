"""Each service is handed the settings of the concerns it has, and no others."""

import importlib

import pytest
from pydantic_settings import BaseSettings

from shared.settings import (
    BaseServiceSettings,
    DatabaseSettings,
    KafkaSettings,
    ModelSettings,
    PipelineSettings,
    StorageSettings,
)

CONCERNS: dict[str, type[BaseServiceSettings]] = {
    "kafka": KafkaSettings,
    "database": DatabaseSettings,
    "storage": StorageSettings,
    "model": ModelSettings,
}
EXPECTED: dict[str, set[str]] = {
    "auth": {"database"},
    "gateway": {"kafka", "database", "storage"},
    "fusion": {"kafka", "database", "storage", "model"},
    "transcriber": {"kafka", "storage", "model"},
    "video_encoder": {"kafka", "storage", "model"},
    "audio_encoder": {"kafka", "storage", "model"},
}


def own_fields(concern: type[BaseServiceSettings]) -> set[str]:
    return set(concern.model_fields) - set(BaseServiceSettings.model_fields)


def service_settings(service: str) -> type[BaseSettings]:
    settings: type[BaseSettings] = importlib.import_module(f"services.{service}.settings").Settings
    return settings


@pytest.mark.parametrize("service", sorted(EXPECTED))
def test_a_service_has_exactly_the_fields_of_its_concerns(service: str) -> None:
    fields = set(service_settings(service).model_fields)
    for name, concern in CONCERNS.items():
        present = own_fields(concern) & fields
        if name in EXPECTED[service]:
            assert present == own_fields(concern), f"{service} lacks part of {name}"
        else:
            assert present == set(), f"{service} is handed {name} settings it does not use: {sorted(present)}"


def test_the_concerns_do_not_share_fields() -> None:
    concerns = [own_fields(concern) for concern in CONCERNS.values()]
    assert sum(len(fields) for fields in concerns) == len(set().union(*concerns))


def test_the_object_store_secret_is_checked_wherever_the_store_is_configured() -> None:
    with pytest.raises(ValueError, match="s3_secret_key still has its development default"):
        PipelineSettings(environment="production")
    assert DatabaseSettings(environment="production").environment == "production"
