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
from collections.abc import Callable
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
from shared.model.pooling import MIN_FLOOR, HeadRule, PoolingRule, expert_scales, pool
from shared.model.voice import VoiceHead
from training.data import read_meld_csv
from training.eval_av import Reading, actor_fold, write_reliability_png
from training.face import face_logits, load_faces, split_faces
from training.metrics import score_head
from training.voice_data import ClipSpan, list_clips

logger = logging.getLogger(__name__)
T, V, A = Modality.TEXT, Modality.VIDEO, Modality.AUDIO
SUBSETS: Final = ((T, A), (T, V), (V, A), (T, V, A))


@dataclass
class Pool:
    """Distributions of one head: per expert (n, K) and (n,) presence, and the (n,) true labels; the face's
    (n,) quality and which rows' words were translated, where the source has them."""

    distributions: dict[Modality, npt.NDArray[np.float32]]
    present: dict[Modality, npt.NDArray[np.bool_]]
    labels: npt.NDArray[np.int64]
    face_quality: npt.NDArray[np.float64] | None = None
    translated: npt.NDArray[np.bool_] | None = None

    def rows(self, keep: npt.NDArray[np.bool_]) -> "Pool":
        return Pool(
            {m: d[keep] for m, d in self.distributions.items()},
            {m: p[keep] for m, p in self.present.items()},
            self.labels[keep],
            None if self.face_quality is None else self.face_quality[keep],
            None if self.translated is None else self.translated[keep],
        )

    def pooled(self, rule: HeadRule) -> npt.NDArray[np.float32]:
        scales = expert_scales(rule, len(self.labels), self.face_quality, self.translated)
        return pool(self.distributions, self.present, rule, scales)


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


def _fit_head(
    pools: list[Pool], k: int, steps: int = 300, counts: list[float] | None = None
) -> tuple[HeadRule, float]:
    """Weights, floors and the translated words' scale minimising the weighted mean of each pool's mean NLL
    (pool i counts `counts[i]`, however many rows it has; by default by its rows)."""
    counts = counts or source_counts(pools)
    experts = (T, V, A)
    raw_w = torch.zeros(3, requires_grad=True)
    raw_f = torch.full((3,), -2.0, requires_grad=True)
    raw_s = torch.full((), 2.0, requires_grad=True)
    tensors = [
        (
            {
                m: torch.from_numpy(np.nan_to_num(p.distributions[m], nan=1.0 / k)).double()
                for m in p.distributions
            },
            {m: torch.from_numpy(p.present[m]).double() for m in p.present},
            torch.from_numpy(p.labels),
            torch.from_numpy(np.ones(len(p.labels)) if p.face_quality is None else p.face_quality).double(),
            torch.from_numpy(
                np.zeros(len(p.labels), bool) if p.translated is None else p.translated
            ).double(),
        )
        for p in pools
    ]
    translated_anywhere = any(p.translated is not None and p.translated.any() for p in pools)
    optimizer = torch.optim.Adam([raw_w, raw_f, raw_s], lr=0.05)

    def parameters() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        weights = torch.nn.functional.softplus(raw_w + 0.5413)
        floors = MIN_FLOOR + (0.5 - MIN_FLOOR) * torch.sigmoid(raw_f)
        return weights, floors, torch.sigmoid(raw_s) if translated_anywhere else torch.ones(())

    def loss() -> torch.Tensor:
        weights, floors, translated_scale = parameters()
        total = torch.zeros((), dtype=torch.float64)
        for (distributions, present, labels, quality, translated), count in zip(tensors, counts, strict=True):
            log_pooled = torch.zeros(len(labels), k, dtype=torch.float64)
            for i, m in enumerate(experts):
                if m in distributions:
                    floored = (1 - floors[i]) * distributions[m] + floors[i] / k
                    scale = present[m]
                    if m is V:
                        scale = scale * quality
                    if m is T:
                        scale = scale * (1 - translated + translated * translated_scale)
                    log_pooled = log_pooled + scale[:, None] * weights[i] * floored.log()
            total = total - count * log_pooled.log_softmax(-1).gather(1, labels[:, None]).mean()
        return total / sum(counts)

    for _ in range(steps):
        optimizer.zero_grad()
        value = loss()
        torch.autograd.backward(value)
        optimizer.step()
    weights, floors, translated_scale = parameters()
    rule = HeadRule(
        weights={m: round(float(weights[i]), 4) for i, m in enumerate(experts)},
        floors={m: round(float(floors[i]), 4) for i, m in enumerate(experts)},
        translated_words_scale=round(float(translated_scale), 4),
    )
    return rule, float(loss())


def source_counts(pools: list[Pool]) -> list[float]:
    """The earlier sources count by their rows, as one source together (the RAVDESS clips are 7 % of it), so
    the kit's clips, one source of their own, weigh as much as all of them."""
    total = sum(len(p.labels) for p in pools)
    return [len(p.labels) / total for p in pools]


def load_av_readings(path: Path) -> tuple[Pool, list[Reading]]:
    """`training.eval_av --readings-out`: each utterance of the kit's clips, its modalities out of fold."""
    rows = [Reading.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]
    k = len(EMOTIONS)

    def column(get: "Callable[[Reading], list[float] | None]") -> tuple[np.ndarray, np.ndarray]:
        values = [get(r) for r in rows]
        present = np.array([v is not None for v in values])
        matrix = np.array([v if v is not None else [1.0 / k] * k for v in values], dtype=np.float32)
        return matrix, present

    (face, has_face), (voice, has_voice), (words, has_words) = (
        column(lambda r: r.face),
        column(lambda r: r.voice),
        column(lambda r: r.words),
    )
    return Pool(
        {T: words, V: face, A: voice},
        {T: has_words, V: has_face, A: has_voice},
        np.array([r.label for r in rows], dtype=np.int64),
        np.array([r.face_quality for r in rows], dtype=np.float64),
        np.array([r.translated for r in rows], dtype=bool),
    ), rows


def clip_level(
    rows: list[Reading], pooled: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Each clip's distribution: its utterances' weighted by their length (as `training.eval_av` scores)."""
    stems = list(dict.fromkeys(r.stem for r in rows))
    index = {s: i for i, s in enumerate(stems)}
    sums = np.zeros((len(stems), pooled.shape[1]))
    labels = np.zeros(len(stems), dtype=np.int64)
    for r, p in zip(rows, pooled, strict=True):
        sums[index[r.stem]] += r.seconds * p
        labels[index[r.stem]] = r.label
    return sums / sums.sum(axis=1, keepdims=True), labels


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


def fit_av_folds(
    av: Pool, rows: list[Reading], others: list[Pool], args: argparse.Namespace
) -> dict[str, float]:
    """A rule per actor fold, fitted without that actor's clips, pooling that actor's utterances: the
    out-of-fold fused figures on the clips (and each fold's rule written to `--folds-out`)."""
    fold = np.array([actor_fold(r.actor) for r in rows])
    pooled = np.zeros((len(rows), len(EMOTIONS)), dtype=np.float32)
    for k in sorted(set(fold.tolist())):
        rule, _ = _fit_head(
            [*others, av.rows(fold != k)], len(EMOTIONS), counts=[*source_counts(others), args.av_weight]
        )
        pooled[fold == k] = av.rows(fold == k).pooled(rule)
        if args.folds_out is not None:
            target = args.folds_out / "fusion" / f"fold-{k}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            head = PoolingRule(
                emotion=rule, sentiment=rule, fitted=True, fitted_on=f"actor fold {k} held out"
            )
            target.write_text(head.model_dump_json(indent=2) + "\n")
        logger.info("fold %d: %s", k, rule.model_dump_json())
    fused, labels = clip_level(rows, pooled)
    scores = score_head(fused, labels, EMOTIONS)
    figures = {
        "av_clips": float(len(labels)),
        "av_fused_weighted_f1_out_of_fold": round(scores.weighted_f1, 4),
        "av_fused_accuracy_out_of_fold": round(scores.accuracy, 4),
        "av_fused_ece_out_of_fold": round(scores.ece, 4),
    }
    views: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]] = {}
    for name, m in (("face", V), ("voice", A), ("words", T)):
        here = av.present[m]
        if here.any():
            alone, alone_labels = clip_level(
                [r for r, h in zip(rows, here, strict=True) if h], av.distributions[m][here]
            )
            views[name] = (alone, alone_labels)
            figures[f"av_{name}_weighted_f1"] = round(
                score_head(alone, alone_labels, EMOTIONS).weighted_f1, 4
            )
    views["fused"] = (fused, labels)
    if args.reliability_png is not None:
        write_reliability_png(views, args.reliability_png)
    return figures


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
    av_figures: dict[str, float] = {}
    av_rows: list[Reading] = []
    emotion_pools = [real, emotion_triples]
    if args.av_readings is not None:
        av, av_rows = load_av_readings(args.av_readings)
        av_figures = fit_av_folds(av, av_rows, [real, emotion_triples], args)
        emotion_pools.append(av)
    emotion_rule, emotion_nll = _fit_head(
        emotion_pools,
        len(EMOTIONS),
        counts=[*source_counts([real, emotion_triples])] + ([args.av_weight] if av_rows else []),
    )
    sentiment_rule, sentiment_nll = _fit_head([sentiment_triples], len(SENTIMENTS))
    # The kit's clips have no sentiment labels: words read through a translation weigh the same there.
    sentiment_rule.translated_words_scale = emotion_rule.translated_words_scale

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
        **av_figures,
    }
    rule = PoolingRule(
        emotion=emotion_rule,
        sentiment=sentiment_rule,
        fitted=True,
        fitted_on=(
            f"`python -m training.fusion_fit` (seed {args.seed}): {len(clips)} RAVDESS clips' voice (out of "
            f"fold) with their transcripts' words, and {args.draws} label-matched draws of MELD dev words, "
            f"held-out voices and held-out FER faces in every combination of 2-3 experts"
            + (
                f", and the utterances of the kit's {len({r.stem for r in av_rows})} real face + voice "
                "clips (face, voice out of fold, words through translation where read), their mean NLL "
                f"weighing {args.av_weight:g} against the other sources' together"
                if av_rows
                else ""
            )
            + "; NLL minimised"
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
    parser.add_argument(
        "--av-readings", type=Path, default=None, help="`training.eval_av --readings-out`: the kit's clips"
    )
    parser.add_argument(
        "--folds-out", type=Path, default=None, help="write each actor fold's rule to DIR/fusion/fold-K.json"
    )
    parser.add_argument(
        "--reliability-png", type=Path, default=None, help="the out-of-fold reliability diagram on the clips"
    )
    parser.add_argument(
        "--av-weight",
        type=float,
        default=1.0,
        help="the weight of the clips' mean NLL; the other sources together weigh 1, each by its rows",
    )
    parser.add_argument("--draws", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    return parser


if __name__ == "__main__":
    main()
