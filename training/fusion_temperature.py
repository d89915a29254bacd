"""The face and the voice recorded together: the fusion rule's `face_voice_temperature`, fitted on the kit's
real face + voice clips by actor folds (`shared.model.pooling`).

    python -m training.eval_av --folds training/weights/av-folds --face-folds var/runs/face-clips/folds \
        --readings-out var/av/readings.jsonl
    python -m training.fusion_temperature --av-readings var/av/readings.jsonl \
        --rule training/weights/fusion-rule-v2.json --out training/weights/fusion-rule-v3.json

The rule's weights were fitted on label-matched draws that pair a face and a voice at random, so each brings
its own errors; an actor's face and voice in one recording err together (a weak take is weak in both), and
their product is then more confident than the evidence: on the kit's clips the fused answer was sure of 0.7
where it was right 0.5 of the time. Dividing the pooled log-probabilities by T where both count corrects
that, and only data with both recorded together can measure it: T minimises the negative log-likelihood of
each utterance's fused answer (the confidence users read), out of fold by actor for the figures, on all five
actors for the shipped rule. Nothing else of the rule moves, so no argmax changes: weighted F1 is the same.
"""

import argparse
import json
import logging
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from emotion_contract.labels import EMOTIONS, Modality
from shared.model.pooling import HeadRule, PoolingRule
from training.eval_av import Reading, actor_fold
from training.fusion_fit import Pool, clip_level, load_av_readings
from training.metrics import ece_if_calibrated, score_head

logger = logging.getLogger(__name__)
V, A = Modality.VIDEO, Modality.AUDIO
CANDIDATES: Final = np.exp(np.linspace(0.0, np.log(3.0), 221))  # 1 to 3


def both_count(pool: Pool) -> npt.NDArray[np.bool_]:
    quality = np.ones(len(pool.labels)) if pool.face_quality is None else pool.face_quality
    counted: npt.NDArray[np.bool_] = pool.present[V] & pool.present[A] & (quality > 0)
    return counted


def nll(pool: Pool, rule: HeadRule) -> float:
    p = pool.pooled(rule).astype(np.float64)
    return float(-np.log(np.clip(p[np.arange(len(pool.labels)), pool.labels], 1e-12, 1.0)).mean())


def fit_temperature(pool: Pool, rule: HeadRule) -> float:
    """The T (1 to 3) minimising the mean NLL of the utterances where the face and the voice both count."""
    rows = pool.rows(both_count(pool))
    if not len(rows.labels):
        raise ValueError("no utterance where the face and the voice both count: nothing to fit")
    return float(
        min(CANDIDATES, key=lambda t: nll(rows, rule.model_copy(update={"face_voice_temperature": t})))
    )


def figures(
    pool: Pool, rows: list[Reading], pooled: npt.NDArray[np.float32], prefix: str
) -> dict[str, float]:
    clips, labels = clip_level(rows, pooled)
    utterances = pooled.astype(np.float64)
    clip_scores, utterance_scores = (
        score_head(clips, labels, EMOTIONS),
        score_head(utterances, pool.labels, EMOTIONS),
    )
    return {
        f"{prefix}_clip_weighted_f1": round(clip_scores.weighted_f1, 4),
        f"{prefix}_clip_ece": round(clip_scores.ece, 4),
        f"{prefix}_clip_ece_if_calibrated": ece_if_calibrated(clips)[0],
        f"{prefix}_utterance_ece": round(utterance_scores.ece, 4),
        f"{prefix}_utterance_ece_if_calibrated": ece_if_calibrated(utterances)[0],
        f"{prefix}_utterance_nll": round(
            float(-np.log(np.clip(utterances[np.arange(len(pool.labels)), pool.labels], 1e-12, 1)).mean()), 4
        ),
    }


def temper(readings: Path, rule: PoolingRule, folds_out: Path | None = None) -> PoolingRule:
    """The rule with the temperature fitted on all the clips; `folds_out`/fusion/fold-K.json: each actor
    fold's rule, fitted without that actor (what `training.eval_av --folds` pools the actor's clips by)."""
    pool, rows = load_av_readings(readings)
    fold = np.array([actor_fold(r.actor) for r in rows])
    out_of_fold = np.zeros((len(rows), len(EMOTIONS)), dtype=np.float32)
    temperatures = []
    for k in sorted(set(fold.tolist())):
        t = fit_temperature(pool.rows(fold != k), rule.emotion)
        temperatures.append(round(t, 3))
        held_out = rule.emotion.model_copy(update={"face_voice_temperature": round(t, 3)})
        out_of_fold[fold == k] = pool.rows(fold == k).pooled(held_out)
        if folds_out is not None:
            target = folds_out / "fusion" / f"fold-{k}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            fold_rule = rule.model_copy(
                update={
                    "emotion": held_out,
                    "fitted_on": f"{rule.fitted_on}; tempered without actor fold {k}",
                }
            )
            target.write_text(fold_rule.model_dump_json(indent=2) + "\n")
    shipped = round(fit_temperature(pool, rule.emotion), 3)
    found = {
        **figures(pool, rows, pool.pooled(rule.emotion), "av_before"),
        **figures(pool, rows, out_of_fold, "av_out_of_fold"),
        **{f"av_fold_{k}_temperature": t for k, t in enumerate(temperatures)},
    }
    logger.info("folds %s, all clips %.3f", temperatures, shipped)
    return rule.model_copy(
        update={
            "emotion": rule.emotion.model_copy(update={"face_voice_temperature": shipped}),
            "fitted_on": rule.fitted_on
            + f"; then `python -m training.fusion_temperature`: the face and voice temperature {shipped} "
            f"fitted on the kit's real face + voice clips ({len({r.stem for r in rows})} clips, {len(rows)} "
            "utterances, actors 01-05; out of fold by actor in the figures); the sentiment has no labels "
            "there",
            "figures": {**rule.figures, **found},
        }
    )


def main(argv: list[str] | None = None) -> PoolingRule:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--av-readings", type=Path, required=True, help="`training.eval_av --readings-out`")
    parser.add_argument("--rule", type=Path, default=Path("training/weights/fusion-rule-v2.json"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--folds-out", type=Path, default=None, help="write each actor fold's rule here")
    args = parser.parse_args(argv)
    rule = PoolingRule.model_validate_json(args.rule.read_text())
    tempered = temper(args.av_readings, rule, args.folds_out)
    args.out.write_text(tempered.model_dump_json(indent=2) + "\n")
    print(json.dumps({k: v for k, v in tempered.figures.items() if k.startswith("av_")}, indent=2))
    return tempered


if __name__ == "__main__":
    main()
