"""LoRA (Hu et al., 2021) on the text backbone, with PyPI peft: low-rank updates W + (alpha / r)·B·A of
the BERT layers' attention (query, key, value, output dense) and feed-forward (intermediate and output
dense) projections, the pretrained weights frozen. Exported bundles hold the adapters merged into the
backbone's weights, so inference loads a plain Hugging Face model and needs no peft.
"""

import copy
import re
from dataclasses import dataclass
from typing import Final

import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn
from transformers import PreTrainedModel

# The module names of BERT-family models in transformers (BertModel: encoder.layer.N.…); the pooler's
# dense layer is left out, since the text encoder mean-pools the last hidden states and never uses it.
BERT_LORA_TARGETS: Final = (
    r"encoder\.layer\.\d+\.("
    r"attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)"
)
# MPNetModel names the same layers encoder.layer.N.attention.attn.{q,k,v,o}.
MPNET_LORA_TARGETS: Final = (
    r"encoder\.layer\.\d+\.(attention\.attn\.(q|k|v|o)|intermediate\.dense|output\.dense)"
)


def default_targets(backbone: nn.Module) -> str:
    """The attention and feed-forward layers of the backbone's family (BERT or MPNet)."""
    names = {name for name, _ in backbone.named_modules()}
    return MPNET_LORA_TARGETS if any(n.endswith("attention.attn.q") for n in names) else BERT_LORA_TARGETS


# What peft puts in front of the backbone's own module names, in its state dicts.
PEFT_PREFIX: Final = "base_model.model."


class LoraError(ValueError):
    pass


@dataclass(frozen=True)
class LoraSettings:
    rank: int
    alpha: int
    dropout: float = 0.0
    target_modules: str = BERT_LORA_TARGETS

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise LoraError(f"the LoRA rank must be at least 1, not {self.rank}")
        if self.alpha <= 0:
            raise LoraError(f"the LoRA alpha must be positive, not {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise LoraError(f"the LoRA dropout must be in [0, 1), not {self.dropout}")

    def to_metadata(self) -> dict[str, str]:
        return {
            "lora_rank": str(self.rank),
            "lora_alpha": str(self.alpha),
            "lora_dropout": repr(self.dropout),
            "lora_target_modules": self.target_modules,
        }

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> "LoraSettings":
        try:
            return cls(
                rank=int(metadata["lora_rank"]),
                alpha=int(metadata["lora_alpha"]),
                dropout=float(metadata["lora_dropout"]),
                target_modules=metadata["lora_target_modules"],
            )
        except (KeyError, ValueError) as error:
            raise LoraError(f"no usable LoRA settings in the metadata: {error}") from error


def lora_targets(backbone: nn.Module, settings: LoraSettings) -> list[str]:
    """The names of the backbone's linear layers that the settings adapt."""
    pattern = re.compile(settings.target_modules)
    return [
        name
        for name, module in backbone.named_modules()
        if isinstance(module, nn.Linear) and pattern.fullmatch(name)
    ]


def with_lora(backbone: PreTrainedModel, settings: LoraSettings) -> PeftModel:
    """The backbone wrapped with fresh adapters (B = 0: it computes what it did); only they train."""
    if not lora_targets(backbone, settings):
        raise LoraError(
            f"no linear layer of the {type(backbone).__name__} backbone matches {settings.target_modules!r}: "
            "LoRA here targets BERT-family module names"
        )
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        bias="none",
    )
    model: PeftModel = get_peft_model(backbone, config)
    return model


def lora_state(model: PeftModel) -> dict[str, torch.Tensor]:
    """The adapters' A and B matrices, keyed by the backbone's module names (`….query.lora_A.weight`)."""
    state: dict[str, torch.Tensor] = get_peft_model_state_dict(model)
    return {key.removeprefix(PEFT_PREFIX): value.detach().clone() for key, value in state.items()}


def load_lora_state(model: PeftModel, state: dict[str, torch.Tensor]) -> None:
    """Loads `lora_state`'s output into adapters of the same settings; every matrix must be there."""
    expected = set(lora_state(model))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise LoraError(
            f"the LoRA weights do not fit the adapters: {len(missing)} missing (first {missing[:3]}), "
            f"{len(unexpected)} unexpected (first {unexpected[:3]})"
        )
    set_peft_model_state_dict(model, {PEFT_PREFIX + key: value.float() for key, value in state.items()})


def merged_backbone(model: nn.Module) -> PreTrainedModel:
    """A plain Hugging Face model with the adapters added into its weights; `model` stays as it is."""
    if not isinstance(model, PeftModel):
        raise LoraError(f"the {type(model).__name__} backbone has no LoRA adapters to merge")
    merged: PreTrainedModel = copy.deepcopy(model).merge_and_unload()
    return merged
