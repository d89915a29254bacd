"""Does the dialogue GRU hold over a long file? MELD's dialogues are 1-24 utterances; a file may hold
thousands. This scores MELD dev's words read four ways by the same text weights:

    python scripts/dialogue_long_file.py [--text-weights FILE]     # default: the default bundle's

- dialogue by dialogue, as training read them;
- the whole split as one file (every dialogue in order, one conversation of 1,109 utterances);
- the same with the dialogues shuffled (seed 0);
- with the GRU off (each embedding as the encoder gave it; the calibration stays the GRU's).

It prints each line's emotion and sentiment weighted F1 (calibrated, as served).
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.assets import text_backbone_dir  # noqa: E402
from training.data import read_meld_csv  # noqa: E402
from training.evaluate import fitted_temperatures, score_view  # noqa: E402
from training.model import load_tokenizer  # noqa: E402
from training.text_weights import load_text_weights, text_classifier  # noqa: E402
from training.train_dialogue import EncodedSplit, split_predictions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--text-weights", type=Path, default=REPO / "training/weights/meld-text-mpnet-dialogue-v1.safetensors"
    )
    parser.add_argument("--meld-csv", type=Path, default=REPO.parent / "shared/data/meld/dev_sent_emo.csv")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    stored = load_text_weights(args.text_weights)
    backbone_dir = text_backbone_dir(stored.config.text_backbone, REPO / "var/cache")
    model = text_classifier(stored, backbone_dir)
    dialogue = model.text.projection.dialogue
    if dialogue is None:
        raise SystemExit(f"{args.text_weights} has no dialogue GRU")
    split = EncodedSplit.encode(model, read_meld_csv(args.meld_csv), load_tokenizer(backbone_dir))
    calibration = fitted_temperatures(model.fusion)
    whole = [i for rows in split.dialogues for i in rows]
    shuffled = [split.dialogues[i] for i in np.random.default_rng(0).permutation(len(split.dialogues))]
    readings: dict[str, Callable[[], torch.Tensor]] = {
        "dialogue by dialogue": lambda: dialogue.conversations(split.embeddings, split.dialogues),
        f"one file of {len(whole)} utterances": lambda: dialogue.conversations(split.embeddings, [whole]),
        "one file, dialogues shuffled": lambda: dialogue.conversations(
            split.embeddings, [[i for rows in shuffled for i in rows]]
        ),
        "the GRU off": lambda: split.embeddings,
    }
    rows = torch.tensor(whole)
    print(f"{args.text_weights.name} on {args.meld_csv.name}: emotion / sentiment weighted F1, calibrated")
    for name, read in readings.items():
        with torch.no_grad():
            text = read()[rows]
        predictions = split_predictions(model, split, text, rows)
        scores = score_view(predictions, calibration)
        print(f"  {name:<34} {scores.emotion_weighted_f1:.3f} / {scores.sentiment_weighted_f1:.3f}")


if __name__ == "__main__":
    main()
