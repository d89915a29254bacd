"""A training run's configuration: the command line and the dataclass agree, and bad combinations are refused
before anything loads."""

import dataclasses
from pathlib import Path

import pytest

from emotion_contract.labels import Modality
from training.train_config import ConfigError, TrainConfig, get_args_parser, parse_config


def test_every_option_is_a_field_and_every_field_an_option() -> None:
    options = {action.dest for action in get_args_parser()._actions if action.dest != "help"}
    assert options == {field.name for field in dataclasses.fields(TrainConfig)}


def test_options_left_out_take_the_dataclass_defaults() -> None:
    assert parse_config(["--data", "meld"]) == TrainConfig(data=Path("meld"))


def test_the_command_line_is_typed_on_the_way_in() -> None:
    config = parse_config([
        "--data", "meld", "--modalities", "text, audio", "--epochs", "3", "--lora-rank", "16", "--amp",
        "--no-bucket-by-length", "--select-metric", "emotion", "--text-weights", "w.safetensors",
    ])  # fmt: skip
    assert config.modalities == frozenset({Modality.TEXT, Modality.AUDIO})
    assert (config.epochs, config.amp, config.bucket_by_length, config.select_metric) == (
        3,
        True,
        False,
        "emotion",
    )
    assert config.text_weights == Path("w.safetensors")
    assert config.lora is not None and (config.lora.rank, config.lora.alpha) == (16, 32)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lora_rank": 4, "freeze_text": True}, "exclude each other"),
        ({"text_weights": Path("w.safetensors")}, "give --lora-rank"),
        ({"lora_rank": 4, "lora_dropout": 1.5}, "dropout"),
        ({"modalities": frozenset()}, "empty"),
    ],
)
def test_settings_that_cannot_work_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(data=Path("meld"), **changes)  # type: ignore[arg-type]


def test_the_command_line_refuses_them_as_argparse_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_config(["--data", "meld", "--lora-rank", "4", "--freeze-text"])
    assert exit_.value.code == 2 and "exclude each other" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(["--data", "meld", "--modalities", "text,smell"])
    assert "a subset of text,video,audio, not 'text,smell'" in capsys.readouterr().err


def test_the_plain_form_is_what_the_command_line_spells() -> None:
    plain = TrainConfig(data=Path("meld"), modalities=frozenset({Modality.AUDIO, Modality.TEXT})).to_dict()
    assert plain["data"] == "meld" and plain["modalities"] == "text,audio" and plain["resume"] is None
    assert set(plain) == {field.name for field in dataclasses.fields(TrainConfig)}
