"""The face network taught what faces cut from video look like: FER2013's network fine-tuned on the kit's
real clips' faces together with FER's own, measured by actor folds (CPU, about 10 minutes):

    python -m training.face_clips --folds-out var/runs/face-clips/folds \
        --weights training/weights/face-av-v1.safetensors

FER's stills are web photographs, centred, filtered, at 48 pixels; a face in a 360x270 recording is small,
smooth, lit and framed otherwise, and the FER network reads the kit's actors' neutral and angry faces as
surprise (clip-level weighted F1 0.33 as the encoder frames them, `training.face_video`). Each step here mixes
a batch of the kit's training actors' faces (every picture at 4 Hz, in a framing drawn around the one the
video encoder uses, so the tracker's box may wander) with twice as many of FER's training faces, both through
FER's augmentations plus a loss of resolution (a face a few dozen pixels high in the frame). The fine-tuned
weights are then moved a tenth of the way back to FER's (weight-space ensembling), which keeps more of what
FER taught at no cost to the clips; FER's held-out faces are read at every fold.

Out of fold: for each actor, a network is fine-tuned without that actor's clips and reads them as the video
encoder does (two pictures a second, the mean of a clip's distributions); those are the figures reported.
The temperature is fitted on those out-of-fold clips, each the mean of its pictures as fusion reads an
utterance, so the confidence is that of a face of an actor it never saw. The shipped network is fine-tuned
the same way on all five actors and carries that temperature. The fold networks (`--folds-out`,
`fold-K.safetensors`) let `training.eval_av --face-folds` read each clip's face out of fold through the
whole analysis.
"""

import argparse
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ValidationError

from emotion_contract.labels import EMOTIONS
from shared.model.bundle import load_state, save_state, sha256_file
from shared.model.face import FaceExpressionNet
from shared.model.face_detection import FACE_MARGIN, FACE_SHIFT
from training.eval_av import DEFAULT_CLIPS, AvClip, actor_fold, list_av_clips, per_actor_weighted_f1
from training.face import (
    DEFAULT_FACE_WEIGHTS,
    augment,
    face_logits,
    face_source,
    load_faces,
    read_face_card,
    split_faces,
)
from training.face_video import ClipFaces, framed, load_clip_faces
from training.metrics import HeadScores, score_head
from training.voice import FOLDS

logger = logging.getLogger(__name__)

RATE: Final = 4.0  # pictures a second cached per clip; the video encoder reads every second one (2 Hz)
# Framings drawn around the encoder's (FACE_MARGIN 1.2, FACE_SHIFT 0.1): the detector's box jitters.
MARGINS: Final = (FACE_MARGIN - 0.1, FACE_MARGIN, FACE_MARGIN + 0.1)
SHIFTS: Final = (FACE_SHIFT - 0.05, FACE_SHIFT, FACE_SHIFT + 0.05)
DEFAULT_FACE_CLIPS_WEIGHTS: Final = Path(__file__).resolve().parent / "weights" / "face-av-v1.safetensors"


@dataclass(frozen=True)
class ClipPictures:
    """Every cached picture of the kit's clips, framed each way, with its clip's label and actor."""

    framings: npt.NDArray[np.uint8]  # (F, N, 48, 48): one row per framing in MARGINS × SHIFTS
    labels: npt.NDArray[np.int64]  # (N,)
    clip: npt.NDArray[np.int64]  # (N,) index into the clip list
    order: npt.NDArray[np.int64]  # (N,) the picture's place in its clip (0, 1, …)

    @property
    def encoder(self) -> npt.NDArray[np.uint8]:
        """(N, 48, 48): the video encoder's own framing, the middle of MARGINS × SHIFTS."""
        middle: npt.NDArray[np.uint8] = self.framings[
            MARGINS.index(FACE_MARGIN) * len(SHIFTS) + SHIFTS.index(FACE_SHIFT)
        ]
        return middle


def clip_pictures(faces: Sequence[ClipFaces], clips: Sequence[AvClip]) -> ClipPictures:
    framings, labels, clip_index, order = [], [], [], []
    for i, (f, clip) in enumerate(zip(faces, clips, strict=True)):
        k = len(f.wide)
        if not k:
            continue
        framings.append(np.stack([framed(f.wide, m, s) for m in MARGINS for s in SHIFTS]))
        labels.append(np.full(k, clip.label))
        clip_index.append(np.full(k, i))
        order.append(np.arange(k))
    return ClipPictures(
        np.concatenate(framings, axis=1),
        np.concatenate(labels).astype(np.int64),
        np.concatenate(clip_index).astype(np.int64),
        np.concatenate(order).astype(np.int64),
    )


def lower_resolution(faces: torch.Tensor, generator: torch.Generator, share: float = 0.5) -> torch.Tensor:
    """A `share` of (B, 1, 48, 48) faces scaled down to 16-40 pixels and back up: a face a few dozen pixels
    high in a small recording has no finer detail than that."""
    out = faces.clone()
    chosen = (torch.rand(len(faces), generator=generator) < share).nonzero().flatten().tolist()
    for i in chosen:
        side = int(torch.randint(16, 41, (1,), generator=generator))
        small = F.interpolate(faces[i : i + 1], size=(side, side), mode="area")
        out[i : i + 1] = F.interpolate(small, size=faces.shape[-2:], mode="bilinear", align_corners=False)
    return out


def _unit(images: npt.NDArray[np.uint8]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).float().div(255.0).unsqueeze(1)


class Recipe(BaseModel):
    epochs: int = 6  # passes over the kit's training pictures
    batch: int = 64  # kit pictures a step
    fer_batch: int = 128  # FER faces beside them
    kit_low_resolution: float = 0.5  # the share of kit pictures scaled down further
    fer_low_resolution: float = 0.25  # the share of FER faces scaled down to a video face's detail
    lr: float = 0.004
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    # The share of FER's network kept in the weights (weight-space ensembling, Wortsman et al. 2022): the
    # fine-tuned weights are moved that far back toward the base, which keeps more of what FER taught.
    keep_base: float = 0.1
    seed: int = 0


def fine_tune(
    base: Path,
    pictures: ClipPictures,
    rows: npt.NDArray[np.int64],
    fer_images: npt.NDArray[np.uint8],
    fer_labels: npt.NDArray[np.int64],
    recipe: Recipe,
    checkpoint: Path | None = None,
) -> FaceExpressionNet:
    """FER's network, fine-tuned on the kit pictures `rows` and FER faces, SGD on a cosine schedule, then
    moved `recipe.keep_base` of the way back to FER's. `checkpoint`: where the fine-tuning (before that
    move) is kept and, when there already, read instead of trained (`tuned_checkpoint` names it)."""
    torch.manual_seed(recipe.seed)  # before the network is made: dropout draws as they always did
    net = FaceExpressionNet()
    load_state(net, base)
    net.temperature.fill_(1.0)  # type: ignore[operator]
    base_state = {name: value.clone() for name, value in net.state_dict().items()}
    if checkpoint is not None and checkpoint.is_file():
        load_state(net, checkpoint)
    else:
        _train(net, pictures, rows, fer_images, fer_labels, recipe)
        if checkpoint is not None:
            save_state(net, checkpoint)
    if recipe.keep_base > 0:
        mixed = {
            name: (1 - recipe.keep_base) * value + recipe.keep_base * base_state[name]
            if value.is_floating_point()
            else value
            for name, value in net.state_dict().items()
        }
        net.load_state_dict(mixed)
    net.temperature.fill_(1.0)  # type: ignore[operator]
    return net.eval()


def tuned_checkpoint(
    directory: Path, base: Path, pictures: ClipPictures, rows: npt.NDArray[np.int64], recipe: Recipe
) -> Path:
    """A fine-tuning's file, named by all it learnt from (the base, the pictures and rows, the recipe but
    its `keep_base`, which is applied afterwards): a run stopped midway resumes, and recipes that differ
    only in how far they move back to FER share their fine-tunings."""
    key = hashlib.sha256()
    key.update(sha256_file(base).encode())
    key.update(recipe.model_copy(update={"keep_base": 0.0}).model_dump_json().encode())
    for array in (pictures.framings, pictures.labels, pictures.clip, rows):
        key.update(np.ascontiguousarray(array).tobytes())
    return directory / f"tuned-{key.hexdigest()[:16]}.safetensors"


def _train(
    net: FaceExpressionNet,
    pictures: ClipPictures,
    rows: npt.NDArray[np.int64],
    fer_images: npt.NDArray[np.uint8],
    fer_labels: npt.NDArray[np.int64],
    recipe: Recipe,
) -> None:
    generator = torch.Generator().manual_seed(recipe.seed)
    net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    steps = recipe.epochs * math.ceil(len(rows) / recipe.batch)
    optimizer = torch.optim.SGD(
        net.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=steps, pct_start=0.1
    )
    n_framings = pictures.framings.shape[0]
    net.train()
    for _ in range(steps):
        kit = rows[torch.randint(len(rows), (recipe.batch,), generator=generator).numpy()]
        framing = torch.randint(n_framings, (recipe.batch,), generator=generator).numpy()
        fer = torch.randint(len(fer_labels), (recipe.fer_batch,), generator=generator).numpy()
        faces = torch.cat(
            [
                lower_resolution(
                    _unit(pictures.framings[framing, kit]), generator, recipe.kit_low_resolution
                ),
                lower_resolution(_unit(fer_images[fer]), generator, recipe.fer_low_resolution),
            ]
        )
        labels = torch.from_numpy(np.concatenate([pictures.labels[kit], fer_labels[fer]]))
        faces = augment(faces, generator)
        faces = faces.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(net(faces), labels, label_smoothing=recipe.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimizer.step()
        schedule.step()
    net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


def encoder_rows(pictures: ClipPictures, clip_indices: set[int]) -> npt.NDArray[np.int64]:
    """The pictures of these clips the video encoder reads (every second one of the 4 Hz cache: 2 Hz)."""
    wanted = np.isin(pictures.clip, list(clip_indices)) & (pictures.order % 2 == 0)
    return np.flatnonzero(wanted)


@torch.inference_mode()
def clip_distributions(
    logits: torch.Tensor, clip: npt.NDArray[np.int64], temperature: float, n_clips: int
) -> npt.NDArray[np.float64]:
    """(n_clips, 7): the mean calibrated distribution of each clip's pictures (NaN where it has none)."""
    p = (logits / temperature).softmax(-1).double().numpy()
    out = np.full((n_clips, len(EMOTIONS)), np.nan)
    for c in np.unique(clip):
        out[c] = p[clip == c].mean(axis=0)
    return out


def fit_clip_temperature(
    logits: torch.Tensor, clip: npt.NDArray[np.int64], labels: npt.NDArray[np.int64], n_clips: int
) -> float:
    """The T minimising the NLL of each clip's mean distribution at T against its label: the temperature at
    which the face is read (fusion averages an utterance's pictures), not that of a single picture, which
    carries the clip's label whether or not the face shows it yet."""
    candidates = np.exp(np.linspace(np.log(0.25), np.log(4.0), 97))

    def nll(t: float) -> float:
        p = clip_distributions(logits, clip, t, n_clips)
        has = ~np.isnan(p).any(axis=1)
        return float(-np.log(p[has, labels[has]] + 1e-12).mean())

    return float(min(candidates, key=nll))


class FoldReport(BaseModel):
    fold: int
    held_out_actors: list[str]
    fer_validation_weighted_f1: float
    seconds: float


class FaceClipsCard(BaseModel):
    """What `training.face_clips` wrote: the command, the data, the recipe and the out-of-fold figures."""

    command: str
    base_weights: str
    base_sha256: str
    clips: str
    fer: str
    recipe: Recipe
    framings: list[tuple[float, float]]
    created: datetime
    temperature: float
    out_of_fold: HeadScores  # the kit's clips, each read by the network of its actor's fold
    out_of_fold_per_actor: dict[str, float]
    before: HeadScores  # the same clips read by the base network (its own temperature)
    before_per_actor: dict[str, float]
    folds: list[FoldReport]
    fer_validation: HeadScores  # the shipped network on FER's held-out faces, at `temperature`
    fer_validation_before: HeadScores
    sha256: str = ""


class FaceDescription(BaseModel):
    """How a bundle describes its face network, whichever script made it."""

    source: str
    summary: str
    created: datetime
    learnt_from_clips: bool


def describe_face(weights: Path) -> FaceDescription:
    """The card beside `weights` (`training.face_clips`'s or `training.face`'s), checked against the file."""
    text = weights.with_suffix(".json").read_text()
    try:
        card = FaceClipsCard.model_validate_json(text)
    except ValidationError:
        fer = read_face_card(weights)
        return FaceDescription(
            source=face_source(weights),
            summary=f"Face: CNN on FER2013, held-out accuracy {fer.validation.accuracy:.3f}.",
            created=fer.created,
            learnt_from_clips=False,
        )
    if card.sha256 != sha256_file(weights):
        raise ValueError(f"{weights} is not the file its card describes (their sha256 differ)")
    oof, fer_scores = card.out_of_fold, card.fer_validation
    source = (
        f"VGG-style CNN (shared.model.face): {card.base_weights} (FER2013) fine-tuned on the faces of the "
        f"kit's real face + voice clips ({card.clips}) beside FER's; out of fold by actor, clip-level "
        f"weighted F1 {oof.weighted_f1:.3f} (accuracy {oof.accuracy:.3f}, ECE {oof.ece:.3f} at temperature "
        f"{card.temperature:.3f}; {card.before.weighted_f1:.3f} before), FER2013 held out weighted F1 "
        f"{fer_scores.weighted_f1:.3f}; {weights.name} (sha256 {card.sha256[:12]}…), made by `{card.command}`"
    )
    summary = (
        f"Face: CNN on FER2013 fine-tuned on real video faces, weighted F1 {oof.weighted_f1:.3f} on the "
        f"kit's clips out of fold by actor, {fer_scores.weighted_f1:.3f} on held-out FER2013."
    )
    return FaceDescription(source=source, summary=summary, created=card.created, learnt_from_clips=True)


def train(args: argparse.Namespace) -> FaceClipsCard:
    torch.set_num_threads(args.threads)
    clips = list_av_clips(args.clips)
    pictures = clip_pictures(load_clip_faces(clips, RATE, args.cache_dir), clips)
    logger.info("%d pictures of %d clips", len(pictures.labels), len(np.unique(pictures.clip)))
    images, labels = load_faces(args.npz)
    fer = split_faces(images, labels)
    recipe = Recipe(
        epochs=args.epochs,
        batch=args.batch,
        fer_batch=args.fer_batch,
        lr=args.lr,
        kit_low_resolution=args.kit_low_resolution,
        keep_base=args.keep_base,
        fer_low_resolution=args.fer_low_resolution,
        seed=args.seed,
    )
    folds_of_clips = np.array([actor_fold(c.actor) for c in clips])
    every_clip = set(range(len(clips)))
    read = encoder_rows(pictures, every_clip)
    base = FaceExpressionNet()
    load_state(base, args.base)
    base_logits = face_logits(base, pictures.encoder[read])
    base_temperature = float(base.temperature)  # type: ignore[arg-type]
    oof_logits = torch.zeros(len(read), len(EMOTIONS))
    reports = []
    for k in range(FOLDS):
        started = time.perf_counter()
        held = {int(i) for i in np.flatnonzero(folds_of_clips == k)}
        train_rows = np.flatnonzero(~np.isin(pictures.clip, list(held)))
        checkpoint = tuned_checkpoint(args.checkpoints, args.base, pictures, train_rows, recipe)
        net = fine_tune(
            args.base, pictures, train_rows, fer.train_images, fer.train_labels, recipe, checkpoint
        )
        in_fold = np.isin(pictures.clip[read], list(held))
        oof_logits[in_fold] = face_logits(net, pictures.encoder[read[in_fold]])
        fer_f1 = score_head(face_logits(net, fer.val_images).softmax(-1).numpy(), fer.val_labels, EMOTIONS)
        reports.append(
            FoldReport(
                fold=k,
                held_out_actors=sorted({clips[i].actor for i in held}),
                fer_validation_weighted_f1=round(fer_f1.weighted_f1, 4),
                seconds=round(time.perf_counter() - started, 1),
            )
        )
        if args.folds_out:
            save_state(net, args.folds_out / f"fold-{k}.safetensors", half=True)
        logger.info("%s", reports[-1].model_dump_json())
    clip_labels = np.array([c.label for c in clips])
    temperature = fit_clip_temperature(oof_logits, pictures.clip[read], clip_labels, len(clips))
    actors = np.array([c.actor for c in clips])

    def clip_scores(logits: torch.Tensor, t: float) -> tuple[HeadScores, dict[str, float]]:
        p = clip_distributions(logits, pictures.clip[read], t, len(clips))
        has = ~np.isnan(p).any(axis=1)
        return (
            score_head(p[has], clip_labels[has], EMOTIONS),
            per_actor_weighted_f1(p[has], clip_labels[has], actors[has]),
        )

    oof, oof_actor = clip_scores(oof_logits, temperature)
    before, before_actor = clip_scores(base_logits, base_temperature)
    if args.folds_out:  # the fold networks carry the out-of-fold temperature too
        for k in range(FOLDS):
            path = args.folds_out / f"fold-{k}.safetensors"
            net = FaceExpressionNet()
            load_state(net, path)
            net.temperature.fill_(temperature)  # type: ignore[operator]
            save_state(net, path, half=True)
    every_picture = np.arange(len(pictures.labels))
    checkpoint = tuned_checkpoint(args.checkpoints, args.base, pictures, every_picture, recipe)
    final = fine_tune(
        args.base, pictures, every_picture, fer.train_images, fer.train_labels, recipe, checkpoint
    )
    final.temperature.fill_(temperature)  # type: ignore[operator]
    fer_logits = face_logits(final, fer.val_images)
    card = FaceClipsCard(
        command=" ".join(["python -m training.face_clips", *sys.argv[1:]]),
        base_weights=args.base.name,
        base_sha256=sha256_file(args.base),
        clips=f"{args.clips}: {len(clips)} clips of actors {sorted(set(actors.tolist()))}",
        fer=(
            f"FER2013 training faces ({len(fer.train_labels)}; "
            f"{len(fer.val_labels)} held out, never trained on)"
        ),
        recipe=recipe,
        framings=[(m, s) for m in MARGINS for s in SHIFTS],
        created=datetime.now(UTC).replace(microsecond=0),
        temperature=temperature,
        out_of_fold=oof,
        out_of_fold_per_actor=oof_actor,
        before=before,
        before_per_actor=before_actor,
        folds=reports,
        fer_validation=score_head((fer_logits / temperature).softmax(-1).numpy(), fer.val_labels, EMOTIONS),
        fer_validation_before=score_head(
            (face_logits(base, fer.val_images) / base_temperature).softmax(-1).numpy(),
            fer.val_labels,
            EMOTIONS,
        ),
    )
    if args.weights:
        save_state(final, args.weights, half=True)
        card.sha256 = sha256_file(args.weights)
        args.weights.with_suffix(".json").write_text(card.model_dump_json(indent=2) + "\n")
    return card


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--npz", type=Path, default=Path("../shared/data/face/fer2013_train.npz"))
    parser.add_argument("--base", type=Path, default=DEFAULT_FACE_WEIGHTS, help="FER2013's network")
    parser.add_argument("--cache-dir", type=Path, default=Path("var/cache/face-video"))
    parser.add_argument("--folds-out", type=Path, default=None, help="write each fold's network here")
    parser.add_argument(
        "--checkpoints",
        type=Path,
        default=Path("var/runs/face-clips/tuned"),
        help="each fine-tuning, kept: a stopped run resumes, another --keep-base reuses them",
    )
    parser.add_argument("--weights", type=Path, default=None, help="write the shipped network (and its card)")
    parser.add_argument("--epochs", type=int, default=Recipe().epochs)
    parser.add_argument("--batch", type=int, default=Recipe().batch)
    parser.add_argument("--fer-batch", type=int, default=Recipe().fer_batch)
    parser.add_argument("--kit-low-resolution", type=float, default=Recipe().kit_low_resolution)
    parser.add_argument("--fer-low-resolution", type=float, default=Recipe().fer_low_resolution)
    parser.add_argument("--keep-base", type=float, default=Recipe().keep_base)
    parser.add_argument("--lr", type=float, default=Recipe().lr)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    return parser


def main(argv: list[str] | None = None) -> FaceClipsCard:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    card = train(get_args_parser().parse_args(argv))
    summary = {
        "out_of_fold_weighted_f1": round(card.out_of_fold.weighted_f1, 4),
        "out_of_fold_accuracy": round(card.out_of_fold.accuracy, 4),
        "out_of_fold_ece": round(card.out_of_fold.ece, 4),
        "per_actor": card.out_of_fold_per_actor,
        "before_weighted_f1": round(card.before.weighted_f1, 4),
        "before_per_actor": card.before_per_actor,
        "temperature": round(card.temperature, 3),
        "fer_validation_weighted_f1": round(card.fer_validation.weighted_f1, 4),
        "fer_validation_before": round(card.fer_validation_before.weighted_f1, 4),
        "folds_fer": [f.fer_validation_weighted_f1 for f in card.folds],
    }
    print(json.dumps(summary, indent=2))
    return card


if __name__ == "__main__":
    main()
