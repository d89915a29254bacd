"""Inference cost per utterance of each encoder on this machine, and the bundle's size on disk.

    python scripts/encoder_cost.py [--bundle DIR] [--repeats 5]

Utterances are the speech spans of a real talking video (../shared/data/talking/vr_face_1.mp4), each
encoder timed on them after a warm-up; R3D-18 is timed even while the bundle marks it untrained (the
services skip untrained branches), so the figure is what it will cost once trained. The voice encodes the
whole file once (30 s windows): its figure is that cost over the utterances.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emotion_contract.events import Span  # noqa: E402
from shared.media.decode import load_audio, probe  # noqa: E402
from shared.media.frames import sample_span_frames, sample_stills  # noqa: E402
from shared.model.bundle import open_bundle  # noqa: E402
from shared.model.config import ModelConfig  # noqa: E402
from shared.model.face_detection import FaceTracker, crop_face  # noqa: E402
from shared.model.inference import (  # noqa: E402
    AudioFeaturizer,
    FusionPredictor,
    TextFeaturizer,
    VideoFeaturizer,
    pool_video_track,
)
from shared.stages import FACE_INTERVAL_S, track_video_file  # noqa: E402

VIDEO = REPO.parent / "shared" / "data" / "talking" / "vr_face_1.mp4"
SENTENCES = ["My biggest weakness is asking for help when I need it.", "I'd like to do better at that."]
SPANS = [(0.0, 2.38), (3.28, 4.48)]


def text_label(config: ModelConfig) -> str:
    parts = [config.text_backbone, "projection"]
    if config.text_dialogue_hidden:
        parts.append(f"GRU {config.text_dialogue_hidden}")
    return " + ".join(parts)


def per_utterance_ms(work: Callable[[], object], utterances: int, repeats: int) -> float:
    work()  # warm-up
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        timings.append((time.perf_counter() - started) / utterances * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=REPO / "var" / "bundles" / "default")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    bundle = open_bundle(str(args.bundle))
    spans = [
        Span(index=i, start=s, end=e, text=t)
        for i, ((s, e), t) in enumerate(zip(SPANS, SENTENCES, strict=True))
    ]
    n = len(spans)
    text = TextFeaturizer(bundle)
    video = VideoFeaturizer(bundle, run_untrained=True)
    audio = AudioFeaturizer(bundle, run_untrained=True)
    fusion = FusionPredictor(bundle)
    samples = load_audio(VIDEO)
    frames = sample_span_frames(VIDEO, [(s.start, s.end) for s in spans])
    clips = [f.clip for f in frames if f is not None]
    stills = list(sample_stills(VIDEO, interval_s=FACE_INTERVAL_S))

    def track_faces() -> npt.NDArray[np.uint8]:
        tracker = FaceTracker()
        boxes = [(grey, tracker.find(grey, time_s)) for time_s, grey in stills]
        return np.stack([crop_face(grey, box) for grey, box in boxes if box is not None])

    crops = track_faces()
    text_features = text.encode(SENTENCES)
    faces_only = VideoFeaturizer(bundle)  # as the services run it: R3D-18 off while untrained
    track = track_video_file(VIDEO, featurizer=faces_only, max_duration_s=3600)
    encoded_video = pool_video_track(track, SPANS)
    audio_features = audio.encode(samples, SPANS)

    # The video is read over the whole file, not per utterance: its rows are this file's cost shared
    # among its utterances, which is what an utterance of a talking video costs on average.
    rows = {
        f"text ({text_label(bundle.config)})": lambda: text.encode(SENTENCES),
        f"video: pictures at {1 / FACE_INTERVAL_S:g} Hz, decoded": lambda: list(
            sample_stills(VIDEO, interval_s=FACE_INTERVAL_S)
        ),
        "video: face tracking and crops": track_faces,
        "video: facial expression CNN": lambda: video.face_emotions(crops),
        "video: the whole face track": lambda: track_video_file(
            VIDEO, featurizer=faces_only, max_duration_s=3600
        ),
        "video: R3D-18 (30×112×112, untrained)": lambda: video.clip_embeddings(clips),
        f"audio: {bundle.config.audio_encoder}": lambda: audio.encode(samples, SPANS),
        "fusion (fused + per modality)": lambda: fusion.predict(
            n,
            text_features,
            encoded_video.video,
            audio_features.audio,
            face_emotions=encoded_video.face_emotions,
            voice_emotions=audio_features.voice_emotions,
        ),
    }
    seconds = probe(VIDEO).duration_s
    print(f"bundle {bundle.version}; {seconds:.1f} s video; torch threads {torch.get_num_threads()}")
    print(f"{'encoder':<38} {'ms / utterance':>15}")
    for name, work in rows.items():
        print(f"{name:<38} {per_utterance_ms(work, n, args.repeats):>15.1f}")
    print("\nbundle size on disk:")
    total = 0
    for component, spec in bundle.manifest.components.items():
        size = sum(f.size for f in spec.files)
        total += size
        print(f"  {component:<8} {size / 1e6:>8.1f} MB  trained={spec.trained}")
    print(f"  {'total':<8} {total / 1e6:>8.1f} MB")


if __name__ == "__main__":
    main()
