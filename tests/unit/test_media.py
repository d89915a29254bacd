"""shared.media and face detection on files made by ffmpeg/espeak-ng (known content) and on the real
talking-head clips."""

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from emotion_contract.errors import FailureCode
from shared.media.container import MediaError, read_declared_duration
from shared.media.decode import load_audio, probe
from shared.media.frames import Span, Uint8Array, sample_span_frames, sample_stills
from shared.model.face_detection import FaceBox, FaceTracker, crop_face, detect_faces, frame_face
from tests.media_factory import (
    VIDEO_FPS,
    VIDEO_SIZE,
    MediaSet,
    make_media_set,
    ramp_brightness,
    streams_of_different_lengths,
    truncated_copy,
)

TALKING = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "talking"
FRONTAL_CLIPS = [
    "vr_face_1.mp4",
    "vr_face_2.mp4",
    "vr_face_4.mp4",
    "vr_face_5.mp4",
    "sadtalker_WDA_KatieHill_000.mp4",
]
ALL_CLIPS = [*FRONTAL_CLIPS, "fr_short_hamilton_clip.mp4"]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaSet:
    return make_media_set(tmp_path_factory.mktemp("media"))


def talking(name: str) -> Path:
    path = TALKING / name
    if not path.is_file():
        pytest.skip(f"{path} is not there (shared data is laid beside the repository)")
    return path


# --- probe -------------------------------------------------------------------------------------------


def test_probe_video_with_audio(media: MediaSet) -> None:
    info = probe(media.speech_mp4)
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == VIDEO_SIZE
    assert info.fps == pytest.approx(VIDEO_FPS)
    assert info.duration_s == pytest.approx(media.speech.duration_s, abs=0.1)


def test_probe_video_without_audio(media: MediaSet) -> None:
    info = probe(media.video_no_audio)
    assert info.has_video and not info.has_audio
    assert info.duration_s == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("kind", ["speech_mp3", "speech_m4a", "speech_flac", "speech_mp3_with_cover"])
def test_probe_audio_files(media: MediaSet, kind: str) -> None:
    info = probe(getattr(media, kind))
    assert info.has_audio and not info.has_video
    assert info.width is None and info.fps is None
    assert info.duration_s == pytest.approx(media.speech.duration_s, abs=0.1)


def test_probe_wav(media: MediaSet) -> None:
    info = probe(media.speech.path)
    assert (info.has_audio, info.has_video) == (True, False)
    assert info.duration_s == pytest.approx(media.speech.duration_s, abs=0.01)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("empty", FailureCode.EMPTY_FILE),
        ("random", FailureCode.NOT_MEDIA),
        ("png", FailureCode.NOT_MEDIA),
        ("jpeg", FailureCode.NOT_MEDIA),
        ("text", FailureCode.NOT_MEDIA),
        ("truncated", FailureCode.CORRUPT_MEDIA),
        ("truncated_faststart", FailureCode.CORRUPT_MEDIA),
    ],
)
def test_probe_rejects_unusable_files(media: MediaSet, kind: str, code: FailureCode) -> None:
    with pytest.raises(MediaError) as raised:
        probe(getattr(media, kind))
    assert raised.value.code == code
    assert raised.value.message


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
@pytest.mark.parametrize("video_s", [1.5, 8.0])  # the picture stops before the sound, or goes on after it
def test_probe_accepts_streams_of_different_lengths(
    media: MediaSet, tmp_path: Path, suffix: str, video_s: float
) -> None:
    """Each stream is judged by its own length: a sound that stops before the picture is not a cut file."""
    path = streams_of_different_lengths(media.speech.path, tmp_path / f"uneven{suffix}", video_s)
    info = probe(path)
    assert info.has_video and info.has_audio
    assert info.duration_s == pytest.approx(max(video_s, media.speech.duration_s), abs=0.15)
    assert len(load_audio(path)) / 16_000 == pytest.approx(media.speech.duration_s, abs=0.1)
    truncated = truncated_copy(path, tmp_path / f"cut{suffix}", keep_fraction=0.4)
    with pytest.raises(MediaError) as raised:
        probe(truncated)
    assert raised.value.code == FailureCode.CORRUPT_MEDIA


def test_probe_too_long(media: MediaSet) -> None:
    with pytest.raises(MediaError) as raised:
        probe(media.speech_mp4, max_duration_s=2.0)
    assert raised.value.code == FailureCode.TOO_LONG
    assert probe(media.speech_mp4, max_duration_s=60.0).has_audio


def test_bytes_that_look_like_another_riff_type_are_not_media(tmp_path: Path) -> None:
    """A WebP picture is a RIFF file too: it is not media, not damaged media (as the gateway says)."""
    webp = tmp_path / "picture.mp4"
    webp.write_bytes(b"RIFF\x24\x08\x00\x00WEBPVP8 " + bytes(64))
    with pytest.raises(MediaError) as raised:
        probe(webp)
    assert raised.value.code == FailureCode.NOT_MEDIA


@pytest.mark.parametrize("kind", ["speech_mp4", "video_no_audio", "speech_m4a", "speech_flac"])
def test_the_header_duration_is_what_probe_finds(media: MediaSet, kind: str) -> None:
    path = getattr(media, kind)
    assert read_declared_duration(str(path)) == pytest.approx(probe(path).duration_s, abs=0.15)


def test_a_header_that_cannot_be_read_is_a_media_error(media: MediaSet) -> None:
    with pytest.raises(MediaError) as raised:
        read_declared_duration(str(media.truncated))
    assert raised.value.code == FailureCode.CORRUPT_MEDIA


def test_probe_missing_file_is_not_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nothing.mp4")


@pytest.mark.parametrize("name", ALL_CLIPS)
def test_probe_real_clips(name: str) -> None:
    info = probe(talking(name))
    assert info.has_video and info.has_audio
    assert info.width and info.height and info.width >= 500
    assert info.fps and 20 <= info.fps <= 31
    assert 4.5 < info.duration_s < 10.5


# --- load_audio ----------------------------------------------------------------------------------------


def rms(samples: np.ndarray, start_s: float, end_s: float, rate: int = 16_000) -> float:
    return float(np.sqrt(np.mean(samples[int(start_s * rate) : int(end_s * rate)] ** 2)))


@pytest.mark.parametrize("kind", ["wav", "speech_mp4", "speech_mp3", "speech_m4a", "speech_flac"])
def test_load_audio_every_format(media: MediaSet, kind: str) -> None:
    path = media.speech.path if kind == "wav" else getattr(media, kind)
    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) / 16_000 == pytest.approx(media.speech.duration_s, abs=0.1)
    assert -1.0 <= samples.min() < 0 < samples.max() <= 1.0
    # The speech sits where the clip was built to have it: loud phrases around a silent gap.
    (first_start, first_end), (second_start, second_end) = media.speech.spans
    gap = rms(samples, first_end + 0.2, second_start - 0.2)
    assert rms(samples, first_start, first_end) > 20 * gap + 0.01
    assert rms(samples, second_start, second_end) > 20 * gap + 0.01


def test_load_audio_resamples(media: MediaSet) -> None:
    at_8k = load_audio(media.speech.path, sample_rate=8_000)
    at_16k = load_audio(media.speech.path)
    assert len(at_16k) == pytest.approx(2 * len(at_8k), abs=4)


def test_load_audio_without_audio_track(media: MediaSet) -> None:
    with pytest.raises(MediaError) as raised:
        load_audio(media.video_no_audio)
    assert raised.value.code == FailureCode.NO_AUDIO_TRACK


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("empty", FailureCode.EMPTY_FILE),
        ("random", FailureCode.NOT_MEDIA),
        ("png", FailureCode.NOT_MEDIA),
        ("truncated", FailureCode.CORRUPT_MEDIA),
    ],
)
def test_load_audio_rejects_unusable_files(media: MediaSet, kind: str, code: FailureCode) -> None:
    with pytest.raises(MediaError) as raised:
        load_audio(getattr(media, kind))
    assert raised.value.code == code


def test_load_audio_stops_at_the_limit(media: MediaSet) -> None:
    with pytest.raises(MediaError) as raised:
        load_audio(media.speech.path, max_duration_s=3.0)
    assert raised.value.code == FailureCode.TOO_LONG


@pytest.mark.parametrize("kind", ["speech_mp4", "speech_mp3", "speech_m4a", "speech_flac"])
def test_a_file_probe_accepts_at_the_limit_also_decodes_within_it(media: MediaSet, kind: str) -> None:
    """AAC's priming and padding decode to samples past the container's duration (the looped 3-hour talk:
    10800.0 s probed, more decoded); the voice's states ahead of the transcript must not refuse the file
    the rest of the pipeline accepts."""
    path = getattr(media, kind)
    limit = probe(path).duration_s
    assert len(load_audio(path, max_duration_s=limit)) > 0


def test_load_audio_real_clip() -> None:
    path = talking("vr_face_1.mp4")
    started = time.perf_counter()
    samples = load_audio(path)
    print(f"load_audio vr_face_1.mp4: {time.perf_counter() - started:.3f} s")
    assert len(samples) / 16_000 == pytest.approx(probe(path).duration_s, abs=0.1)
    assert rms(samples, 0.0, 2.0) > 0.02


def sample_frames(
    path: Path, spans: Sequence[Span], n_frames: int = 30, size: int = 112
) -> list[Uint8Array | None]:
    """Per span: the clip alone, (n_frames, size, size, 3) uint8 RGB, or None where the video has none."""
    sampled = sample_span_frames(path, spans, n_frames=n_frames, size=size, stills_per_span=0)
    return [frames.clip if frames is not None else None for frames in sampled]


# --- sample_span_frames: the clips ---------------------------------------------------------------------


def test_sample_frames_picks_frames_by_time(media: MediaSet) -> None:
    spans = [(0.0, 1.0), (1.0, 2.5), (4.0, 5.5), (3.0, 3.02)]
    clips = sample_frames(media.speech_mp4, spans)
    for (start, end), clip in zip(spans, clips, strict=True):
        assert clip is not None
        assert clip.shape == (30, 112, 112, 3) and clip.dtype == np.uint8
        targets = start + (np.arange(30) + 0.5) * (end - start) / 30
        # The ramp video's brightness encodes the time of each frame: within one frame (1/25 s) of the target.
        tolerance = ramp_brightness(1 / VIDEO_FPS) + 2
        brightness = clip.reshape(30, -1).mean(axis=1)
        expected = np.array([ramp_brightness(t) for t in targets])
        assert np.abs(brightness - expected).max() < tolerance, (brightness, expected)
        assert np.all(np.diff(brightness) >= -1)


def test_sample_frames_size_and_count(media: MediaSet) -> None:
    [clip] = sample_frames(media.speech_mp4, [(1.0, 2.0)], n_frames=8, size=64)
    assert clip is not None and clip.shape == (8, 64, 64, 3)


def test_sample_frames_crops_the_centre(media: MediaSet) -> None:
    [clip] = sample_frames(media.bars, [(0.0, 1.0)], n_frames=4)
    assert clip is not None
    red, blue = clip[..., 0].astype(int), clip[..., 2].astype(int)
    # The red side bars lie outside the centred square (a resize without the crop would squeeze them in).
    assert (blue - red).min() > 150


def test_sample_frames_outside_the_video(media: MediaSet) -> None:
    duration = media.speech.duration_s
    past_end, overlapping_end, inside = sample_frames(
        media.speech_mp4, [(duration + 1, duration + 3), (duration - 0.5, duration + 2), (1.0, 2.0)]
    )
    assert past_end is None
    assert overlapping_end is not None and inside is not None


def test_sample_frames_of_audio_only_file(media: MediaSet) -> None:
    assert sample_frames(media.speech.path, [(0.0, 1.0), (1.0, 2.0)]) == [None, None]
    assert sample_frames(media.speech_mp3, [(0.0, 1.0)]) == [None]
    assert sample_frames(media.speech_mp3_with_cover, [(0.0, 1.0)]) == [None]  # cover art is no video


def test_sample_frames_no_spans(media: MediaSet) -> None:
    assert sample_frames(media.speech_mp4, []) == []


def test_sample_frames_of_unusable_file(media: MediaSet) -> None:
    with pytest.raises(MediaError) as raised:
        sample_frames(media.random, [(0.0, 1.0)])
    assert raised.value.code == FailureCode.NOT_MEDIA


def test_stills_are_grey_frames_inside_the_span(media: MediaSet) -> None:
    [frames] = sample_span_frames(media.speech_mp4, [(2.0, 4.0)], stills_per_span=3)
    assert frames is not None
    width, height = VIDEO_SIZE
    assert frames.stills.shape == (3, height, width) and frames.stills.dtype == np.uint8
    brightness = frames.stills.reshape(3, -1).mean(axis=1)
    expected = [ramp_brightness(t) for t in (2.5, 3.0, 3.5)]
    assert np.abs(brightness - expected).max() < ramp_brightness(1 / VIDEO_FPS) + 2


def test_stills_are_downscaled_to_the_cap() -> None:
    path = talking("vr_face_2.mp4")  # 844×844
    [frames] = sample_span_frames(path, [(1.0, 2.0)], stills_per_span=2, still_max_side=480)
    assert frames is not None and frames.stills.shape == (2, 480, 480)
    assert frames.clip.shape == (30, 112, 112, 3)


@pytest.mark.parametrize("name", ALL_CLIPS)
def test_sample_frames_real_clips(name: str) -> None:
    path = talking(name)
    duration = probe(path).duration_s
    spans = [(0.0, 2.0), (2.0, 4.0), (4.0, duration)]
    started = time.perf_counter()
    sampled = sample_span_frames(path, spans)
    print(f"sample_span_frames {name} ({duration:.1f} s, 3 spans): {time.perf_counter() - started:.3f} s")
    for frames in sampled:
        assert frames is not None
        assert frames.clip.shape == (30, 112, 112, 3)
        assert frames.stills.shape[0] == 3 and max(frames.stills.shape[1:]) <= 480
        assert frames.clip.std() > 10  # real pictures, not a blank decode


def test_stills_at_a_fixed_rate_over_the_whole_video(media: MediaSet) -> None:
    stills = list(sample_stills(media.speech_mp4, interval_s=0.5, max_side=100))
    duration = probe(media.speech_mp4).duration_s
    times = [t for t, _ in stills]
    # One picture per half second, each the first frame at or after its tick (k + ½) · 0.5 s.
    assert len(times) == int(duration / 0.5 + 0.5)
    ticks = (np.arange(len(times)) + 0.5) * 0.5
    assert np.all(np.asarray(times) >= ticks - 1e-6) and np.all(np.asarray(times) - ticks < 2 / VIDEO_FPS)
    for time_s, grey in stills:
        assert grey.ndim == 2 and max(grey.shape) == 100
        # The ramp's brightness says which frame this is.
        assert abs(float(grey.mean()) - ramp_brightness(time_s)) < ramp_brightness(1 / VIDEO_FPS) + 3
    assert list(sample_stills(media.speech_mp3, interval_s=0.5)) == []
    with pytest.raises(ValueError, match="positive"):
        next(sample_stills(media.speech_mp4, interval_s=0))
    with pytest.raises(MediaError):
        list(sample_stills(media.png, interval_s=0.5))


# --- faces ---------------------------------------------------------------------------------------------


def test_detect_faces_finds_the_speaker() -> None:
    path = talking("vr_face_1.mp4")
    sampled = sample_span_frames(path, [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)], n_frames=1, stills_per_span=3)
    stills = [still for frames in sampled if frames is not None for still in frames.stills]
    assert len(stills) == 9
    started = time.perf_counter()
    found = [detect_faces(still) for still in stills]
    per_frame = (time.perf_counter() - started) / len(stills)
    print(f"detect_faces on {stills[0].shape}: {per_frame * 1000:.0f} ms per frame")
    for still, boxes in zip(stills, found, strict=True):
        assert boxes, "no face found in a frontal talking-head frame"
        face = boxes[0]
        side = still.shape[0]
        assert side / 5 <= face.width <= side * 2 / 3
        # The speaker sits in the middle of the picture, head in the upper half.
        assert side / 3 < face.x + face.width / 2 < side * 2 / 3
        assert face.y + face.height / 2 < side / 2


@pytest.mark.parametrize("name", FRONTAL_CLIPS)
def test_detect_faces_on_every_frontal_clip(name: str) -> None:
    sampled = sample_span_frames(talking(name), [(0.5, 1.5), (2.5, 3.5), (3.5, 4.5)], n_frames=1)
    stills = [still for frames in sampled if frames is not None for still in frames.stills]
    hits = sum(bool(detect_faces(still)) for still in stills)
    assert hits >= len(stills) * 2 / 3


def test_detect_faces_finds_none_without_a_face(media: MediaSet) -> None:
    [frames] = sample_span_frames(media.speech_mp4, [(1.0, 4.0)], n_frames=1)
    assert frames is not None
    assert all(detect_faces(still) == [] for still in frames.stills)
    noise = np.random.default_rng(3).integers(0, 256, size=(360, 480), dtype=np.uint8)
    assert detect_faces(noise) == []


def test_detect_faces_rejects_colour_images() -> None:
    with pytest.raises(ValueError, match="2-d"):
        detect_faces(np.zeros((100, 100, 3), dtype=np.uint8))


def test_crop_face() -> None:
    gray = np.zeros((200, 300), dtype=np.uint8)
    gray[50:150, 100:200] = 200  # the "face": a bright square
    crop = crop_face(gray, FaceBox(x=100, y=50, width=100, height=100))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert crop.min() >= 190
    assert crop_face(gray, (250, 150, 100, 100), size=32).shape == (32, 32)  # clipped at the border
    with pytest.raises(ValueError, match="outside"):
        crop_face(gray, (400, 300, 50, 50))


def test_the_tracker_follows_the_face_near_its_last_box() -> None:
    path = talking("vr_face_1.mp4")
    stills = list(sample_stills(path, interval_s=0.25))
    tracker = FaceTracker(refresh_s=60.0)
    boxes = [tracker.find(grey, time_s) for time_s, grey in stills]
    assert all(box is not None for box in boxes)
    # Each box agrees with a whole-frame search of the same picture.
    for (_, grey), box in zip(stills[::4], boxes[::4], strict=True):
        assert box is not None
        [full, *_] = detect_faces(grey)
        assert abs(box.x + box.width / 2 - (full.x + full.width / 2)) < full.width / 4
        assert 0.75 < box.width / full.width < 1.33
    # Tracking is cheaper than searching the whole frame.
    started = time.perf_counter()
    tracked = FaceTracker(refresh_s=60.0)
    for time_s, grey in stills:
        tracked.find(grey, time_s)
    tracking_s = time.perf_counter() - started
    started = time.perf_counter()
    for _, grey in stills:
        detect_faces(grey)
    print(f"tracking {tracking_s:.3f} s, whole-frame search {time.perf_counter() - started:.3f} s")


def test_the_tracker_searches_again_when_the_face_is_gone(media: MediaSet) -> None:
    path = talking("vr_face_1.mp4")
    [(_, face)] = list(sample_stills(path, interval_s=10.0))
    blank = np.zeros_like(face)
    tracker = FaceTracker(refresh_s=60.0)
    assert tracker.find(face, 0.0) is not None
    assert tracker.find(blank, 0.5) is None  # lost: the whole frame was searched, and nothing is there
    # A face appearing elsewhere is found by the whole-frame search, not missed by a search near the old box.
    shifted = np.zeros_like(face)
    width = face.shape[1]
    shifted[:, : width - width // 4] = face[:, width // 4 :]
    again = tracker.find(shifted, 1.0)
    first = detect_faces(face)[0]
    assert again is not None and again.x < first.x


@pytest.mark.parametrize(
    ("inputs", "outputs", "refusal"),
    [
        (
            ["-f", "lavfi", "-i", "color=c=red:s=64x64:r=300:d=0.2"],
            ["-c:v", "libx264"],
            "300 frames a second",
        ),
        (["-f", "lavfi", "-i", "color=c=red:s=9000x16:r=5:d=0.4"], ["-c:v", "libx264"], "9000x16"),
        (["-f", "lavfi", "-i", "sine=d=0.3"], [*["-map", "0:a"] * 17, "-c:a", "aac"], "17 tracks"),
    ],
)
def test_a_header_over_the_limits_is_refused_before_decoding(
    tmp_path: Path, inputs: list[str], outputs: list[str], refusal: str
) -> None:
    path = tmp_path / "over.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *inputs, *outputs, "-pix_fmt", "yuv420p", str(path)], check=True
    )
    for read in (probe, load_audio):
        with pytest.raises(MediaError) as refused:
            read(path)
        assert refused.value.code is FailureCode.MEDIA_OVER_LIMITS and refusal in refused.value.message


def test_a_face_is_framed_wider_and_lower_than_the_detector_box_and_padded_at_the_border() -> None:
    gray = np.zeros((200, 200), dtype=np.uint8)
    gray[60:140, 60:140] = 200  # the detector's box
    gray[140:150, 60:140] = 100  # the chin below it
    box = FaceBox(x=60, y=60, width=80, height=80)
    framed = frame_face(gray, box, margin=1.2, shift=0.1)
    assert framed.shape == (48, 48)
    # 96 px around the box's centre moved 8 px down: rows 60-155 of the picture, so the chin (rows 140-149,
    # 40-44 of the crop) and dark rows below it (45-47) come into it, and nothing above the box.
    column = framed[:, 24]
    assert (column[:38] == 200).all() and (column[41:44] == 100).all() and (column[46:] == 0).all()
    corner = frame_face(gray, FaceBox(x=0, y=0, width=40, height=40), margin=2.0, shift=0.0)
    assert corner.shape == (48, 48)  # padded, not squeezed, where the square leaves the picture


HOSTILE = Path(__file__).resolve().parents[1] / "data" / "picture-16000x16000.mp4"


def test_a_header_asking_for_a_huge_picture_is_refused_without_its_buffers_being_allocated() -> None:
    """The decoders FFmpeg opens while probing get the picture limit: the process never holds the 16000x16000
    frame (a probe without it peaks at ~630 MB, a decode at 1.1 GB)."""
    for read in (lambda: read_declared_duration(str(HOSTILE)), lambda: probe(HOSTILE)):
        with pytest.raises(MediaError) as raised:
            read()
        assert raised.value.code == FailureCode.MEDIA_OVER_LIMITS
        assert "16000x16000" in raised.value.message
    # A fresh process's own peak (VmHWM): ru_maxrss would keep the forking test process's across exec.
    peak_kib = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from shared.media.container import MediaError, read_declared_duration\n"
            "try:\n    read_declared_duration(sys.argv[1])\nexcept MediaError:\n    pass\n"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))",
            str(HOSTILE),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert int(peak_kib) < 300 * 1024


def test_a_picture_that_grows_past_the_limit_mid_stream_is_never_decoded(tmp_path: Path) -> None:
    """The header says 320x240; the stream's last frame is 6200x6200 (38 M pixels, past 8K's). The decoder,
    bound to the limit, refuses that frame instead of allocating it."""

    def h264(size: str, frames: int, dest: Path) -> Path:
        source = ["-f", "lavfi", "-i", f"color=gray:s={size}:r=2", "-frames:v", str(frames)]
        codec = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"]
        subprocess.run(["ffmpeg", "-v", "error", "-y", *source, *codec, str(dest)], check=True)
        return dest

    stream = tmp_path / "grows.h264"
    stream.write_bytes(
        h264("320x240", 4, tmp_path / "a.h264").read_bytes()
        + h264("6200x6200", 1, tmp_path / "b.h264").read_bytes()
    )
    grows = tmp_path / "grows.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-r", "2", "-i", str(stream), "-c", "copy", str(grows)], check=True
    )
    assert probe(grows).has_video  # the header is within the limits
    shapes = [grey.shape for _, grey in sample_stills(grows, interval_s=0.5)]
    assert shapes and set(shapes) == {(240, 320)}
