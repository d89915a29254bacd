"""Per utterance of each talking video in the kit: the fused distribution beside the face's, the voice's and
the words' own (top three of each), as a Markdown table. `python scripts/talking_report.py [--bundle DIR]`
"""

import argparse
from pathlib import Path

from analyzer.pipeline import InProcessAnalyzer, PipelineOptions
from emotion_contract.labels import Modality
from emotion_contract.results import EmotionScore

TALKING = Path(__file__).resolve().parents[2] / "shared" / "data" / "talking"


def top(scores: list[EmotionScore] | None, k: int = 3) -> str:
    if not scores:
        return "—"
    return ", ".join(f"{s.label.value} {s.confidence:.2f}" for s in scores[:k])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", default="var/bundles/default")
    parser.add_argument("--videos", type=Path, default=TALKING)
    args = parser.parse_args()
    analyzer = InProcessAnalyzer(PipelineOptions(bundle_uri=args.bundle))
    print("| video | # | text | fused | face | voice | words |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for video in sorted(args.videos.glob("*.mp4")):
        result = analyzer.analyze(video)
        for u in result.utterances:
            own = {m: top(u.modalities[m].emotions) for m in (Modality.VIDEO, Modality.AUDIO, Modality.TEXT)}
            text = (u.text[:40] + "…") if len(u.text) > 40 else u.text
            print(
                f"| {video.name} | {u.index} | {text} | {top(u.emotions)} | {own[Modality.VIDEO]} | "
                f"{own[Modality.AUDIO]} | {own[Modality.TEXT]} |"
            )


if __name__ == "__main__":
    main()
