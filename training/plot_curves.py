"""Render a run's TensorBoard scalars as one PNG (for the README and docs/, where TensorBoard is not at hand).

python -m training.plot_curves RUN_DIR/tensorboard --out docs/training-curves.png
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def plot(scalars: dict[str, list[tuple[int, float]]], out: Path, title: str) -> None:
    # per-epoch curves only: per-step ones (a point per batch) are for TensorBoard itself
    epochs = min(len(points) for points in scalars.values())
    scalars = {tag: points for tag, points in scalars.items() if len(points) == epochs}
    groups = {
        "loss": [t for t in scalars if "loss" in t],
        "weighted F1": [t for t in scalars if "f1" in t.lower()],
        "accuracy": [t for t in scalars if "accuracy" in t],
        "learning rate": [t for t in scalars if "lr" in t.lower().split("/")[-1]],
    }
    groups = {name: tags for name, tags in groups.items() if tags}
    figure, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for axis, (name, tags) in zip(axes[0], groups.items(), strict=True):
        for tag in sorted(tags):
            steps, values = zip(*scalars[tag], strict=True)
            axis.plot(steps, values, marker="o", markersize=3, label=tag)
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("log_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/training-curves.png"))
    parser.add_argument("--title", default="training on MELD (dev scores)")
    args = parser.parse_args()
    scalars = read_scalars(args.log_dir)
    if not scalars:
        raise SystemExit(f"no scalars in {args.log_dir}")
    plot(scalars, args.out, args.title)
    print(f"wrote {args.out} ({len(scalars)} curves)")


if __name__ == "__main__":
    main()
