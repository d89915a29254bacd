"""Fits the fusion rule (`shared.model.pooling`): each expert's weight and floor, for both heads, on data.

    python -m training.fusion_fit --bundle var/bundles/unfitted --out training/weights/fusion-rule-v2.json

No corpus here holds face, voice and words together, so the fit uses what exists:
- real co-occurrence: every RAVDESS clip's voice (its out-of-fold distribution from `training.voice`, so
  from a model that never heard that actor) with its words (the transcriber's text of the clip, through the
  bundle's text expert): the words are the same two neutral sentences whatever the emotion, and the rule
  must learn to follow the voice there;
- label-matched triples, as in training a product of experts without paired data: for a drawn emotion, a
  MELD dev utterance's words, a held-out voice clip and a held-out FER face with that emotion (each a
  calibrated distribution of its own validation data), shown in every combination of two or three experts
  (modality dropout). This assumes the modalities independent given the emotion, which is what log-linear
  pooling assumes too; its sentiment label is the MELD utterance's.
Minimises the mean negative log-likelihood of the pooled distribution over both sets (sentiment: the
triples only, RAVDESS has no sentiment labels); the floors stay at MIN_FLOOR or above.
"""

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

import numpy as np
import numpy.typing as npt
import torch

from emotion_contract.events import ModalityFeatures
from emotion_contract.labels import EMOTIONS, SENTIMENTS, Modality
from shared.model.bundle import load_state, open_bundle
from shared.model.face import FaceExpressionNet
from shared.model.inference import FusionPredictor, TextFeaturizer
from shared.model.pooling import MIN_FLOOR, HeadRule, PoolingRule, pool
from shared.model.voice import VoiceHead
from training.data import read_meld_csv
from training.face import face_logits, load_faces, split_faces
from training.metrics import score_head
from training.voice_data import ClipSpan, list_clips

logger = logging.getLogger(__name__)
T, V, A = Modality.TEXT, Modality.VIDEO, Modality.AUDIO
SUBSETS: Final = ((T, A), (T, V), (V, A), (T, V, A))


@dataclass
class Pool:
    """Distributions of one head: per expert (n, K) and (n,) presence, and the (n,) true labels."""

    distributions: dict[Modality, npt.NDArray[np.float32]]
    present: dict[Modality, npt.NDArray[np.bool_]]
    labels: npt.NDArray[np.int64]


def text_distributions(bundle_dir: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    bundle = open_bundle(str(bundle_dir), components=("text", "fusion"))
    features = TextFeaturizer(bundle).encode(texts)
    absent = ModalityFeatures(features=None, present=[False] * len(texts))
    return FusionPredictor(bundle).predict(len(texts), features, absent, absent)[T.value]


def voice_distributions(voice_dir: Path, weights: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """Out-of-fold calibrated voice distributions: (rows, 7), stems, variants."""
    head = VoiceHead()
    load_state(head, weights)
    oof = np.load(voice_dir / "oof.npz")
    logits = torch.from_numpy(oof["logits"]) / float(cast(torch.Tensor, head.temperature))
    return logits.softmax(-1).numpy(), [str(s) for s in oof["stems"]], [str(v) for v in oof["variants"]]


def _fit_head(pools: list[Pool], k: int, steps: int = 300) -> tuple[HeadRule, float]:
    experts = (T, V, A)
    raw_w = torch.zeros(3, requires_grad=True)
    raw_f = torch.full((3,), -2.0, requires_grad=True)
    tensors = [
        (
            {
                m: torch.from_numpy(np.nan_to_num(p.distributions[m], nan=1.0 / k)).double()
                for m in p.distributions
            },
            {m: torch.from_numpy(p.present[m]).double() for m in p.present},
            torch.from_numpy(p.labels),
        )
        for p in pools
    ]
    optimizer = torch.optim.Adam([raw_w, raw_f], lr=0.05)

    def parameters() -> tuple[torch.Tensor, torch.Tensor]:
        return torch.nn.functional.softplus(raw_w + 0.5413), MIN_FLOOR + (0.5 - MIN_FLOOR) * torch.sigmoid(
            raw_f
        )

    def loss() -> torch.Tensor:
        weights, floors = parameters()
        total, count = torch.zeros((), dtype=torch.float64), 0
        for distributions, present, labels in tensors:
            log_pooled = torch.zeros(len(labels), k, dtype=torch.float64)
            for i, m in enumerate(experts):
                if m in distributions:
                    floored = (1 - floors[i]) * distributions[m] + floors[i] / k
                    log_pooled = log_pooled + present[m][:, None] * weights[i] * floored.log()
            total = total - log_pooled.log_softmax(-1).gather(1, labels[:, None]).sum()
            count += len(labels)
        return total / count

    for _ in range(steps):
        optimizer.zero_grad()
        value = loss()
        torch.autograd.backward(value)
        optimizer.step()
    weights, floors = parameters()
    rule = HeadRule(
        weights={m: round(float(weights[i]), 4) for i, m in enumerate(experts)},
        floors={m: round(float(floors[i]), 4) for i, m in enumerate(experts)},
    )
    return rule, float(loss())


def _triples(
    rng: np.random.Generator,
    n: int,
    text: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    voice: tuple[np.ndarray, np.ndarray],
    face: tuple[np.ndarray, np.ndarray],
) -> tuple[Pool, Pool]:
    """Label-matched draws (uniform over emotions), each shown with a random subset of 2-3 experts."""
    text_e, text_s, text_emotion, text_sentiment = text
    rows: dict[str, list[int]] = {"t": [], "v": [], "f": []}
    labels = rng.integers(0, len(EMOTIONS), n)
    for y in labels:
        rows["t"].append(int(rng.choice(np.flatnonzero(text_emotion == y))))
        rows["v"].append(int(rng.choice(np.flatnonzero(voice[1] == y))))
        rows["f"].append(int(rng.choice(np.flatnonzero(face[1] == y))))
    subsets = [SUBSETS[i] for i in rng.integers(0, len(SUBSETS), n)]
    present = {m: np.array([m in s for s in subsets]) for m in (T, V, A)}
    t_rows, v_rows, f_rows = (np.array(rows[x]) for x in "tvf")
    emotion = Pool(
        {T: text_e[t_rows], V: face[0][f_rows], A: voice[0][v_rows]}, present, labels.astype(np.int64)
    )
    return emotion, Pool(
        {T: text_s[t_rows], V: face[0][f_rows], A: voice[0][v_rows]}, present, text_sentiment[t_rows]
    )


def main(argv: list[str] | None = None) -> PoolingRule:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = get_args_parser().parse_args(argv)
    rng = np.random.default_rng(args.seed)
    # Words: MELD dev and the RAVDESS transcripts, through the bundle's text expert.
    meld = read_meld_csv(args.meld_csv)
    spans = {k: ClipSpan.model_validate(v) for k, v in json.loads(args.spans.read_text()).items()}
    clips = [c for c in list_clips(args.voice_data) if c.corpus == "ravdess"]
    texts = [u.text for u in meld] + [spans[c.stem].text for c in clips]
    text_e, text_s = text_distributions(args.bundle, texts)
    meld_e, meld_s = text_e[: len(meld)], text_s[: len(meld)]
    meld_emotion = np.array([u.emotion for u in meld])
    meld_sentiment = np.array([u.sentiment for u in meld])
    # Voice: out of fold, clean clips (codec variants too, for the triples).
    voice_p, stems, variants = voice_distributions(args.voice_dir, args.voice_weights)
    sentiment_map = FusionPredictor(
        open_bundle(str(args.bundle), components=("fusion",))
    ).sentiment_given_emotion
    label_of = {c.stem: c.label for c in list_clips(args.voice_data)}
    voice_labels = np.array([label_of[s] for s in stems])
    held_out = np.array([v in ("clean", "codec") for v in variants])
    row_of = {s: i for i, (s, v) in enumerate(zip(stems, variants, strict=True)) if v == "clean"}
    # Face: the validation faces `training.face` held out.
    images, labels = load_faces(args.faces)
    split = split_faces(images, labels)
    net = FaceExpressionNet()
    load_state(net, args.face_weights)
    face_p = (
        (face_logits(net, split.val_images) / float(cast(torch.Tensor, net.temperature))).softmax(-1).numpy()
    )

    real_rows = np.array([row_of[c.stem] for c in clips])
    real = Pool(
        {T: text_e[len(meld) :], A: voice_p[real_rows]},
        {T: np.ones(len(clips), bool), A: np.ones(len(clips), bool)},
        voice_labels[real_rows],
    )
    emotion_triples, sentiment_triples = _triples(
        rng,
        args.draws,
        (meld_e, meld_s, meld_emotion, meld_sentiment),
        (voice_p[held_out], voice_labels[held_out]),
        (face_p, split.val_labels),
    )
    sentiment_triples.distributions = {
        T: sentiment_triples.distributions[T],
        V: sentiment_triples.distributions[V] @ sentiment_map,
        A: sentiment_triples.distributions[A] @ sentiment_map,
    }
    emotion_rule, emotion_nll = _fit_head([real, emotion_triples], len(EMOTIONS))
    sentiment_rule, sentiment_nll = _fit_head([sentiment_triples], len(SENTIMENTS))

    def scored(p: Pool, rule: HeadRule, names: tuple[str, ...]) -> dict[str, float]:
        s = score_head(pool(p.distributions, p.present, rule), p.labels, names)
        return {
            "weighted_f1": round(s.weighted_f1, 4),
            "accuracy": round(s.accuracy, 4),
            "ece": round(s.ece, 4),
        }

    voice_only = score_head(voice_p[real_rows], voice_labels[real_rows], EMOTIONS)
    text_only = score_head(text_e[len(meld) :], voice_labels[real_rows], EMOTIONS)
    real_fused = scored(real, emotion_rule, EMOTIONS)
    figures = {
        "emotion_nll": round(emotion_nll, 4),
        "sentiment_nll": round(sentiment_nll, 4),
        "ravdess_words_alone_weighted_f1": round(text_only.weighted_f1, 4),
        "ravdess_voice_alone_weighted_f1": round(voice_only.weighted_f1, 4),
        "ravdess_fused_weighted_f1": real_fused["weighted_f1"],
        "ravdess_fused_ece": real_fused["ece"],
        **{f"triples_{k}": v for k, v in scored(emotion_triples, emotion_rule, EMOTIONS).items()},
        **{
            f"triples_sentiment_{k}": v
            for k, v in scored(sentiment_triples, sentiment_rule, SENTIMENTS).items()
        },
    }
    rule = PoolingRule(
        emotion=emotion_rule,
        sentiment=sentiment_rule,
        fitted=True,
        fitted_on=(
            f"`python -m training.fusion_fit` (seed {args.seed}): {len(clips)} RAVDESS clips' voice (out of "
            f"fold) with their transcripts' words, and {args.draws} label-matched draws of MELD dev words, "
            f"held-out voices and held-out FER faces in every combination of 2-3 experts; NLL minimised"
        ),
        figures=figures,
    )
    args.out.write_text(rule.model_dump_json(indent=2) + "\n")
    print(rule.model_dump_json(indent=2))
    return rule


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=Path("var/bundles/default"))
    parser.add_argument("--out", type=Path, default=Path("training/weights/fusion-rule-v2.json"))
    parser.add_argument("--meld-csv", type=Path, default=Path("../shared/data/meld/dev_sent_emo.csv"))
    parser.add_argument("--voice-data", type=Path, default=Path("../shared/data/voice"))
    parser.add_argument("--spans", type=Path, default=Path("var/cache/voice/spans.json"))
    parser.add_argument("--voice-dir", type=Path, default=Path("var/runs/voice-v1"))
    parser.add_argument("--voice-weights", type=Path, default=Path("training/weights/voice-v1.safetensors"))
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/face/fer2013_train.npz"))
    parser.add_argument(
        "--face-weights", type=Path, default=Path("training/weights/face-fer2013-v1.safetensors")
    )
    parser.add_argument("--draws", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    return parser


if __name__ == "__main__":
    main()
