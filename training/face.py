"""Trains the facial-expression network on the kit's FER2013 training faces (CPU, resumable):

    python -m training.face --npz ../shared/data/face/fer2013_train.npz --epochs 30 \
        --output-dir var/runs/face-v1 --weights training/weights/face-fer2013-v1.safetensors

FER2013 has no subject ids, so the validation faces are a stratified 10 % of the training split chosen by a
seeded permutation (the same faces on every run); the public and private test faces are not in the kit and
are never looked for. SGD with Nesterov momentum on a one-cycle schedule, cross-entropy with label
smoothing, bfloat16 autocast (AMX on this machine's CPUs makes it ~2.6× faster than float32), and on-line
augmentation: mirror, rotation/scale/shift, gamma, blur and sharpening (the kit's faces were filtered, video
crops are not), and random erasing. Every epoch writes `checkpoint.pth`; `--resume` continues from it. The
temperature is fitted on the validation faces (NLL) after the last epoch, from the best epoch's weights.
"""

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from pydantic import BaseModel

from emotion_contract.labels import EMOTIONS
from shared.model.bundle import load_state, save_state, sha256_file
from shared.model.face import FaceExpressionNet, standardise
from training.calibrate import fit_temperature
from training.metrics import HeadScores, score_head

logger = logging.getLogger(__name__)

FER_SOURCE: Final = (
    "FER2013 Training split (Goodfellow et al. 2013, Kaggle; research use), the kit's filtered copy "
    "../shared/data/face/fer2013_train.npz"
)
VALIDATION_SHARE: Final = 0.1
DEFAULT_FACE_WEIGHTS: Final = Path(__file__).resolve().parent / "weights" / "face-fer2013-v1.safetensors"


def read_face_card(weights: Path) -> "FaceCard":
    return FaceCard.model_validate_json(weights.with_suffix(".json").read_text())


def face_source(weights: Path) -> str:
    card = read_face_card(weights)
    if card.sha256 != sha256_file(weights):
        raise ValueError(f"{weights} is not the file its card describes (their sha256 differ)")
    v = card.validation
    return (
        f"VGG-style CNN (shared.model.face) trained on {card.train_faces} FER2013 training faces, "
        f"selected on {card.val_faces} held out (accuracy {v.accuracy:.3f}, weighted F1 {v.weighted_f1:.3f}, "
        f"ECE {v.ece:.3f} at temperature {card.temperature:.3f}); {weights.name} "
        f"(sha256 {card.sha256[:12]}…), made by `{card.command}`"
    )


@dataclass(frozen=True)
class FaceSplit:
    train_images: npt.NDArray[np.uint8]
    train_labels: npt.NDArray[np.int64]
    val_images: npt.NDArray[np.uint8]
    val_labels: npt.NDArray[np.int64]


def load_faces(npz: Path) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """(N, 48, 48) uint8 images and (N,) MELD-order labels of a kit-format npz, checked."""
    with np.load(npz, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"].astype(np.int64)
        classes = [str(c) for c in data["classes"]] if "classes" in data else list(EMOTIONS)
    if list(classes) != list(EMOTIONS):
        raise ValueError(f"{npz}: classes {classes} are not MELD's {list(EMOTIONS)}")
    if images.ndim != 3 or images.shape[1:] != (48, 48) or len(images) != len(labels):
        raise ValueError(f"{npz}: expected (N, 48, 48) images and (N,) labels, got {images.shape}")
    return images.astype(np.uint8), labels


def split_faces(images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64], seed: int = 0) -> FaceSplit:
    """A stratified validation share per class, by a seeded permutation."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        val[members[: round(len(members) * VALIDATION_SHARE)]] = True
    return FaceSplit(images[~val], labels[~val], images[val], labels[val])


def _to_float(images: npt.NDArray[np.uint8]) -> torch.Tensor:
    return torch.from_numpy(images).float().div(255.0).unsqueeze(1)  # (B, 1, 48, 48) in [0, 1]


def augment(faces: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, 1, 48, 48) in [0, 1] → augmented and standardised."""
    b = faces.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(b, generator=generator) * (high - low) + low

    angle = uniform(-15, 15) * math.pi / 180
    scale = uniform(0.85, 1.15)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, uniform(-0.12, 0.12)], dim=1),
            torch.stack([sin * flip, cos, uniform(-0.12, 0.12)], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(faces.shape), align_corners=False)
    faces = F.grid_sample(faces, grid, padding_mode="border", align_corners=False)
    faces = faces.clamp(1e-4, 1).pow(torch.exp(uniform(-0.4, 0.4)).view(b, 1, 1, 1))
    # Blur some, sharpen some: the kit's faces were smoothed and contrast-filtered, video crops are not.
    blurred = F.avg_pool2d(F.pad(faces, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mix = uniform(-1.0, 1.0).view(b, 1, 1, 1) * (torch.rand(b, 1, 1, 1, generator=generator) < 0.4)
    faces = faces + mix * (blurred - faces)
    erase = torch.rand(b, generator=generator) < 0.5
    sizes = (uniform(0.15, 0.4) * 48).long()
    for i in erase.nonzero().flatten().tolist():
        side = int(sizes[i])
        y, x = torch.randint(0, 48 - side + 1, (2,), generator=generator).tolist()
        faces[i, :, y : y + side, x : x + side] = torch.rand((), generator=generator)
    return standardise(faces)


class EpochLog(BaseModel):
    epoch: int
    train_loss: float
    val_accuracy: float
    val_weighted_f1: float
    seconds: float


class FaceCard(BaseModel):
    """What `training.face` wrote: the command, the data, the figures of the stored weights."""

    command: str
    seed: int
    data: str
    data_sha256: str
    created: datetime
    epochs: int
    best_epoch: int
    train_faces: int
    val_faces: int
    temperature: float
    validation: HeadScores
    validation_before_calibration_ece: float
    ms_per_face: float
    history: list[EpochLog]
    sha256: str = ""


@torch.inference_mode()
def face_logits(net: FaceExpressionNet, images: npt.NDArray[np.uint8], batch: int = 512) -> torch.Tensor:
    """Mirror-averaged logits (before the temperature), as `FaceExpressionNet.probabilities` uses them."""
    net.eval()
    out = []
    for first in range(0, len(images), batch):
        faces = standardise(_to_float(images[first : first + batch]))
        out.append(net.mirrored_logits(faces))
    return torch.cat(out)


def ms_per_face(net: FaceExpressionNet, repeats: int = 50) -> float:
    """Single-face latency of `probabilities` (mirror included) on this machine's threads."""
    faces = torch.randn(1, 1, 48, 48)
    with torch.inference_mode():
        net.eval()
        for _ in range(5):
            net.probabilities(faces)
        started = time.perf_counter()
        for _ in range(repeats):
            net.probabilities(faces)
    return (time.perf_counter() - started) / repeats * 1000


def train(args: argparse.Namespace) -> FaceCard:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images, labels = load_faces(args.npz)
    split = split_faces(images, labels, args.seed)
    out: Path = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    net = FaceExpressionNet()
    net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    steps_per_epoch = math.ceil(len(split.train_labels) / args.batch_size)
    optimizer = torch.optim.SGD(
        net.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15
    )
    history: list[EpochLog] = []
    start_epoch, best_f1 = 0, -1.0
    checkpoint_path = out / "checkpoint.pth"
    if args.resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch, best_f1 = state["epoch"] + 1, state["best_f1"]
        history = [EpochLog.model_validate(h) for h in state["history"]]
        logger.info("resumed after epoch %d (best weighted F1 %.4f)", start_epoch, best_f1)
    train_x = _to_float(split.train_images)
    train_y = torch.from_numpy(split.train_labels)
    for epoch in range(start_epoch, args.epochs):
        generator = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(train_y), generator=generator)
        net.train()
        started, total = time.perf_counter(), 0.0
        for step in range(steps_per_epoch):
            index = order[step * args.batch_size : (step + 1) * args.batch_size]
            faces = augment(train_x[index], generator).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(net(faces), train_y[index], label_smoothing=args.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        scores = score_head(
            face_logits(net, split.val_images).softmax(-1).numpy(), split.val_labels, EMOTIONS
        )
        history.append(
            EpochLog(
                epoch=epoch,
                train_loss=total / steps_per_epoch,
                val_accuracy=scores.accuracy,
                val_weighted_f1=scores.weighted_f1,
                seconds=time.perf_counter() - started,
            )
        )
        logger.info("%s", history[-1].model_dump_json())
        if scores.weighted_f1 > best_f1:
            best_f1 = scores.weighted_f1
            save_state(net, out / "best.safetensors")
        torch.save(
            {
                "net": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "epoch": epoch,
                "best_f1": best_f1,
                "history": [h.model_dump() for h in history],
            },
            checkpoint_path.with_suffix(".tmp"),
        )
        checkpoint_path.with_suffix(".tmp").replace(checkpoint_path)
    return finish(args, split, history)


def finish(args: argparse.Namespace, split: FaceSplit, history: list[EpochLog]) -> FaceCard:
    """Best epoch's weights, temperature fitted on validation, the weights file and its card."""
    net = FaceExpressionNet()
    load_state(net, args.output_dir / "best.safetensors")
    logits = face_logits(net, split.val_images)
    labels = torch.from_numpy(split.val_labels)
    before = score_head(logits.softmax(-1).numpy(), split.val_labels, EMOTIONS)
    temperature = fit_temperature(logits, labels)
    net.temperature.fill_(temperature)  # type: ignore[operator]
    after = score_head((logits / temperature).softmax(-1).numpy(), split.val_labels, EMOTIONS)
    best = max(history, key=lambda h: h.val_weighted_f1)
    card = FaceCard(
        command=" ".join(["python -m training.face", *sys.argv[1:]]),
        seed=args.seed,
        data=FER_SOURCE,
        data_sha256=sha256_file(args.npz),
        created=datetime.now(UTC).replace(microsecond=0),
        epochs=len(history),
        best_epoch=best.epoch,
        train_faces=len(split.train_labels),
        val_faces=len(split.val_labels),
        temperature=temperature,
        validation=after,
        validation_before_calibration_ece=before.ece,
        ms_per_face=ms_per_face(net),
        history=history,
    )
    if args.weights:
        save_state(net, args.weights, half=True)
        card.sha256 = sha256_file(args.weights)
        args.weights.with_suffix(".json").write_text(card.model_dump_json(indent=2) + "\n")
    (args.output_dir / "summary.json").write_text(card.model_dump_json(indent=2) + "\n")
    return card


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--npz", type=Path, default=Path("../shared/data/face/fer2013_train.npz"))
    parser.add_argument("--output-dir", type=Path, default=Path("var/runs/face-v1"))
    parser.add_argument("--weights", type=Path, default=None, help="also write float16 weights and a card")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoint.pth")
    return parser


def main(argv: list[str] | None = None) -> FaceCard:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    card = train(get_args_parser().parse_args(argv))
    print(
        json.dumps({"validation": card.validation.model_dump(exclude={"confusion"}), "ms": card.ms_per_face})
    )
    return card


if __name__ == "__main__":
    main()
