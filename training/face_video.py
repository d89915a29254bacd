"""The face as video shows it: how frames of the kit's real clips become the expression network's pictures,
each way scored on the clips by actor (`python -m training.face_video`).

    python -m training.face_video [--clips ../shared/data/av/javanese] [--json]

Every clip's picture is looked at `--rate` times a second, the face followed as the video encoder follows
it (`FaceTracker`), and a wide crop around each box kept once (cached in var/cache/face-video). The variants
then cost only the network: the crop's margin around the detector's box and its vertical shift, the grey
normalisation, how densely the pictures are taken, and how a clip's pictures are pooled. Each variant's
clip-level weighted F1 is given over all clips and per actor; the one shipped is chosen by actor folds
(best mean over the folds of the other actors' clips, then read on the held-out one).
"""

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel

from emotion_contract.labels import EMOTIONS
from shared.media.frames import sample_stills
from shared.model.bundle import load_state
from shared.model.face import FaceExpressionNet, faces_tensor
from shared.model.face_detection import FaceTracker, crop_face, frame_face
from training.eval_av import DEFAULT_CLIPS, AvClip, list_av_clips, per_actor_weighted_f1
from training.face import DEFAULT_FACE_WEIGHTS
from training.metrics import score_head

logger = logging.getLogger(__name__)
WIDE: Final = 2.0  # the cached crop's side, in detector boxes
WIDE_PIXELS: Final = 128
Pooling = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]


@dataclass
class ClipFaces:
    times: npt.NDArray[np.float64]  # (k,) seconds
    wide: npt.NDArray[np.uint8]  # (k, 128, 128): WIDE boxes around each face, grey
    sides: npt.NDArray[np.float64]  # (k,) the detector box's side in source pixels
    samples: int  # pictures looked at


def clip_faces(clip: AvClip, rate: float) -> ClipFaces:
    tracker = FaceTracker()
    times, crops, sides, samples = [], [], [], 0
    for time_s, grey in sample_stills(clip.path, interval_s=1 / rate):
        samples += 1
        if (box := tracker.find(grey, time_s)) is not None:
            times.append(time_s)
            crops.append(frame_face(grey, box, margin=WIDE, shift=0.0, size=WIDE_PIXELS))
            sides.append(max(box.width, box.height))
    empty = np.zeros((0, WIDE_PIXELS, WIDE_PIXELS), dtype=np.uint8)
    return ClipFaces(np.array(times), np.stack(crops) if crops else empty, np.array(sides, float), samples)


def load_clip_faces(clips: Sequence[AvClip], rate: float, cache_dir: Path) -> list[ClipFaces]:
    cache = cache_dir / f"faces-{rate:g}hz.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            return [
                ClipFaces(
                    data[f"{c.stem}/t"], data[f"{c.stem}/x"], data[f"{c.stem}/s"], int(data[f"{c.stem}/n"])
                )
                for c in clips
            ]
    faces = []
    for i, clip in enumerate(clips):
        faces.append(clip_faces(clip, rate))
        logger.info("%d/%d %s: %d faces", i + 1, len(clips), clip.stem, len(faces[-1].times))
    arrays: dict[str, npt.NDArray[np.generic]] = {}
    for clip, f in zip(clips, faces, strict=True):
        arrays |= {f"{clip.stem}/t": f.times, f"{clip.stem}/x": f.wide, f"{clip.stem}/s": f.sides}
        arrays[f"{clip.stem}/n"] = np.array(f.samples)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **arrays)  # type: ignore[arg-type]
    return faces


def framed(wide: npt.NDArray[np.uint8], margin: float, shift: float) -> npt.NDArray[np.uint8]:
    """(k, 48, 48) crops of `margin` detector boxes, their centre moved down by `shift` boxes."""
    scale = WIDE_PIXELS / WIDE
    side = margin * scale
    top = WIDE_PIXELS / 2 - side / 2 + shift * scale
    left = WIDE_PIXELS / 2 - side / 2
    box = (round(left), round(top), round(side), round(side))
    return np.stack([crop_face(w, box) for w in wide]) if len(wide) else np.zeros((0, 48, 48), np.uint8)


def equalised(crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    from skimage.exposure import equalize_hist

    return np.stack([np.rint(equalize_hist(c) * 255).astype(np.uint8) for c in crops])  # type: ignore[no-untyped-call]


def sharpened(crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """An unsharp mask: the kit's FER faces were sharpened (sharpness 0.86 median), video crops scaled down
    from ~145 px are smooth (0.34)."""
    from skimage.filters import unsharp_mask

    out = [unsharp_mask(c, radius=1.0, amount=1.5, preserve_range=True) for c in crops]  # type: ignore[no-untyped-call]
    return np.asarray(np.clip(np.rint(np.stack(out)), 0, 255), dtype=np.uint8)


TREATMENTS: Final[dict[str, Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]]]] = {
    "none": lambda crops: crops,
    "equalised": equalised,
    "sharpened": sharpened,
}


POOLINGS: Final[dict[str, Pooling]] = {
    "mean": lambda p: p.mean(axis=0),
    "log-mean": lambda p: np.exp(np.log(p + 1e-6).mean(axis=0)),
    "confident-half": lambda p: p[np.argsort(-p.max(axis=1))[: max(1, (len(p) + 1) // 2)]].mean(axis=0),
}


class Variant(BaseModel):
    margin: float
    shift: float
    treatment: str
    rate: float
    pooling: str

    @property
    def name(self) -> str:
        return f"m{self.margin:g} s{self.shift:+g} {self.treatment} {self.rate:g}Hz {self.pooling}"


class VariantScores(BaseModel):
    variant: Variant
    clips: int
    weighted_f1: float
    accuracy: float
    ece: float
    per_actor: dict[str, float]
    top_class_counts: dict[str, int]


def frame_probabilities(
    net: FaceExpressionNet, faces: Sequence[ClipFaces], margin: float, shift: float, treatment: str
) -> list[npt.NDArray[np.float32]]:
    """Per clip, (k, 7) calibrated distributions of its pictures framed so."""
    out = []
    for f in faces:
        crops = framed(f.wide, margin, shift)
        if len(crops):
            crops = TREATMENTS[treatment](crops)
        with torch.inference_mode():
            out.append(
                net.probabilities(faces_tensor(crops)).numpy() if len(crops) else np.zeros((0, 7), np.float32)
            )
    return out


def score_variant(
    clips: Sequence[AvClip], probabilities: Sequence[npt.NDArray[np.float32]], variant: Variant, every: int
) -> VariantScores:
    distributions = []
    for p in probabilities:
        kept = p[::every]
        pooled = POOLINGS[variant.pooling](kept) if len(kept) else None
        distributions.append(None if pooled is None else pooled / pooled.sum())
    has = np.array([d is not None for d in distributions])
    p = np.stack([d for d in distributions if d is not None])
    labels = np.array([c.label for c in clips])[has]
    actors = np.array([c.actor for c in clips])[has]
    scores = score_head(p, labels, EMOTIONS)
    top = np.bincount(p.argmax(axis=1), minlength=len(EMOTIONS))
    return VariantScores(
        variant=variant,
        clips=int(has.sum()),
        weighted_f1=round(scores.weighted_f1, 4),
        accuracy=round(scores.accuracy, 4),
        ece=round(scores.ece, 4),
        per_actor=per_actor_weighted_f1(p, labels, actors),
        top_class_counts={e: int(n) for e, n in zip(EMOTIONS, top, strict=True) if n},
    )


def by_actor_folds(results: Sequence[VariantScores]) -> dict[str, tuple[str, float]]:
    """For each held-out actor: the variant best on the other actors (mean weighted F1), and its score on the
    held-out one."""
    actors = sorted(results[0].per_actor)
    chosen = {}
    for held in actors:
        best = max(results, key=lambda r: np.mean([r.per_actor[a] for a in actors if a != held]))
        chosen[held] = (best.variant.name, best.per_actor[held])
    return chosen


def main(argv: list[str] | None = None) -> list[VariantScores]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--weights", type=Path, default=DEFAULT_FACE_WEIGHTS)
    parser.add_argument("--rate", type=float, default=4.0, help="pictures a second looked at (the densest)")
    parser.add_argument("--cache-dir", type=Path, default=Path("var/cache/face-video"))
    parser.add_argument("--margins", type=float, nargs="+", default=[1.0, 1.2, 1.4, 1.6])
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    clips = list_av_clips(args.clips)
    faces = load_clip_faces(clips, args.rate, args.cache_dir)
    net = FaceExpressionNet()
    load_state(net, args.weights)
    net.eval()
    results = []
    for margin in args.margins:
        for shift in args.shifts:
            for treatment in TREATMENTS:
                probabilities = frame_probabilities(net, faces, margin, shift, treatment)
                for every in (round(args.rate), 1):
                    for pooling in POOLINGS:
                        variant = Variant(
                            margin=margin,
                            shift=shift,
                            treatment=treatment,
                            rate=args.rate / every,
                            pooling=pooling,
                        )
                        r = score_variant(clips, probabilities, variant, every)
                        results.append(r)
                        print(
                            f"{variant.name:<34} F1 {r.weighted_f1:.3f} acc {r.accuracy:.3f} ECE {r.ece:.3f} "
                            f"{r.top_class_counts}",
                            flush=True,
                        )
    print(json.dumps(by_actor_folds(results)))
    if args.json:
        print(json.dumps([r.model_dump() for r in results]))
    return results


if __name__ == "__main__":
    main()
