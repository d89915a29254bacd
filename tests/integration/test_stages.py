"""The stage functions on real media with real (small) models, as both the services and the CLI run them."""

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import webvtt

from emotion_contract.events import Span, Transcript, VideoTrack, VoiceFeatures
from emotion_contract.labels import EMOTIONS, Modality, WordsSource
from emotion_contract.results import AnalysisResult, UtteranceResult
from shared.assets import whisper_model_dir
from shared.feature_matrix import to_array
from shared.media.container import MediaError
from shared.media.decode import load_audio, probe
from shared.model.bundle import LocalBundle
from shared.model.inference import (
    NO_AUDIO,
    NO_SPEECH,
    AudioFeaturizer,
    FusionPredictor,
    TextFeaturizer,
    VideoFeaturizer,
    pool_video_track,
)
from shared.model.speaker_encoder import SAMPLE_RATE, load_speaker_encoder
from shared.model.speakers import Speakers
from shared.stages import FACE_INTERVAL_S, encode_audio_file, fuse, track_video_file, transcribe_file
from shared.transcription import Transcriber
from tests.bundle_fixtures import bundle, bundle_dir
from tests.media_factory import MediaSet, make_media_set, picture_only, streams_of_different_lengths

__all__ = ["bundle", "bundle_dir"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaSet:
    return make_media_set(tmp_path_factory.mktemp("stage-media"))


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory: pytest.TempPathFactory) -> Transcriber:
    return Transcriber(whisper_model_dir("tiny.en", tmp_path_factory.mktemp("whisper")))


def test_transcription_stage_gives_utterances_and_text_features(
    media: MediaSet, transcriber: Transcriber, bundle: LocalBundle
) -> None:
    output = transcribe_file(
        media.speech_mp4, transcriber=transcriber, text=TextFeaturizer(bundle), max_duration_s=60
    )
    assert output.speech_found and len(output.utterances) == 2
    assert [u.index for u in output.utterances] == [0, 1]
    assert output.text.features is not None and output.text.features.rows == 2


def test_a_file_whose_sound_stops_before_its_picture_is_analysed(
    media: MediaSet, transcriber: Transcriber, bundle: LocalBundle, tmp_path: Path
) -> None:
    path = streams_of_different_lengths(media.speech.path, tmp_path / "long-picture.mp4", video_s=9.0)
    output, track, audio, result = analysed(path, transcriber, bundle)
    assert output.speech_found and len(output.utterances) == 2
    assert output.media.duration_s == pytest.approx(9.0, abs=0.15)
    assert all(u.end <= media.speech.duration_s + 0.1 for u in output.utterances)
    assert track.missing_reason == "no face was found in the video"
    assert track.samples == round(9.0 / FACE_INTERVAL_S)
    assert len(result.utterances) == len(audio.audio.present) == 2


def test_a_video_without_speech_is_followed_in_fixed_windows(
    media: MediaSet, transcriber: Transcriber, bundle: LocalBundle
) -> None:
    output = transcribe_file(
        media.video_noise, transcriber=transcriber, text=TextFeaturizer(bundle), max_duration_s=60
    )
    assert not output.speech_found
    duration = output.media.duration_s
    assert [(u.start, u.end, u.text) for u in output.utterances] == [(0.0, 2.0, ""), (2.0, duration, "")]
    assert output.text.features is None and output.text.missing_reason == NO_SPEECH
    audio = encode_audio_file(
        media.video_noise,
        media=output.media,
        utterances=output.utterances,
        featurizer=AudioFeaturizer(bundle),
        speech_found=output.speech_found,
    )
    assert audio.audio.present == [False, False] and audio.audio.missing_reason == NO_SPEECH


def test_sound_without_speech_is_one_segment(
    media: MediaSet, transcriber: Transcriber, bundle: LocalBundle, tmp_path: Path
) -> None:
    silence = tmp_path / "silence.m4a"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=16000:cl=mono",
            "-t",
            "5",
            str(silence),
        ],
        check=True,
    )
    output = transcribe_file(silence, transcriber=transcriber, text=TextFeaturizer(bundle), max_duration_s=60)
    assert not output.speech_found
    assert [(u.start, u.end) for u in output.utterances] == [(0.0, output.media.duration_s)]


def test_a_talking_video_without_sound_is_analysed_from_the_face(
    talking_videos: Path, transcriber: Transcriber, bundle: LocalBundle, tmp_path: Path
) -> None:
    path = picture_only(talking_videos / "vr_face_1.mp4", tmp_path / "silent.mp4")
    output, track, _, result = analysed(path, transcriber, bundle)
    assert not output.media.has_audio and not output.speech_found and output.language is None
    assert len(output.utterances) == round(output.media.duration_s / 2)
    assert all(u.end - u.start <= 3.0 for u in output.utterances)
    video = pool_video_track(track, [(u.start, u.end) for u in output.utterances])
    missing = {m.modality.value: m.reason for m in result.missing_modalities}
    assert missing == {"text": NO_AUDIO, "audio": NO_AUDIO}
    assert video.face_emotions is not None
    faces = to_array(video.face_emotions)
    for row, utterance in enumerate(result.utterances):
        face = utterance.modalities[Modality.VIDEO]
        assert face.available and face.emotions is not None
        # The face alone: the fused answer is its distribution.
        for scores in (utterance.emotions, face.emotions):
            by_label = {s.label.value: s.confidence for s in scores}
            assert [by_label[e] for e in EMOTIONS] == pytest.approx(faces[row].tolist(), abs=2e-3)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("truncated", "corrupt_media"),
        ("empty", "empty_file"),
        ("png", "not_media"),
    ],
)
def test_files_the_pipeline_cannot_analyse_are_refused_with_a_code(
    media: MediaSet, transcriber: Transcriber, bundle: LocalBundle, kind: str, code: str
) -> None:
    with pytest.raises(MediaError) as error:
        transcribe_file(
            getattr(media, kind), transcriber=transcriber, text=TextFeaturizer(bundle), max_duration_s=60
        )
    assert error.value.code == code


def test_too_long_is_refused(media: MediaSet, transcriber: Transcriber, bundle: LocalBundle) -> None:
    with pytest.raises(MediaError) as error:
        transcribe_file(
            media.speech_mp4, transcriber=transcriber, text=TextFeaturizer(bundle), max_duration_s=1
        )
    assert error.value.code == "too_long"


def test_the_face_is_followed_over_the_whole_video_and_pooled_per_utterance(
    talking_videos: Path, bundle: LocalBundle
) -> None:
    path = talking_videos / "vr_face_1.mp4"
    duration = probe(path).duration_s
    track = track_video_file(path, featurizer=VideoFeaturizer(bundle, run_untrained=True), max_duration_s=60)
    # Two pictures a second, from the first tick to the end, each with the face of this frontal video.
    interval = FACE_INTERVAL_S
    assert track.interval_s == interval == 0.5
    assert track.samples == int(duration / interval + 0.5) and len(track.face_times) == track.samples
    assert (
        track.face_times == sorted(track.face_times)
        and interval / 2 <= track.face_times[0] < interval / 2 + 0.1
    )
    assert track.face_quality is not None and min(track.face_quality) > 0.9  # large, sharp, frontal
    assert track.face_emotions is not None and to_array(track.face_emotions).shape == (track.samples, 7)
    assert to_array(track.face_emotions).sum(axis=1) == pytest.approx(1.0, abs=1e-4)
    # R3D-18 (run untrained here) embeds fixed 2 s windows of the whole file.
    assert track.clip_features is not None and track.clip_features.rows == len(track.windows)
    assert track.windows[0] == (0.0, 2.0)
    spans = [(0.0, 2.4), (3.3, 4.5), (4.9, 4.95), (duration + 5, duration + 6)]
    video = pool_video_track(track, spans)
    # A short span still meets the picture whose second it falls in; one past the end meets none.
    assert video.video.present == [True, True, True, False]
    assert video.video.features is not None and to_array(video.video.features).shape == (4, 128)
    assert video.face_emotions is not None
    pooled, frames = to_array(video.face_emotions), to_array(track.face_emotions)
    first = [i for i, t in enumerate(track.face_times) if t - interval / 2 < 2.4]
    assert pooled[0] == pytest.approx(frames[first].mean(axis=0), abs=1e-6)
    assert pooled[3].tolist() == [0.0] * 7


def test_video_stage_on_audio_only_faceless_and_unreadable_files(
    media: MediaSet, bundle: LocalBundle
) -> None:
    featurizer = VideoFeaturizer(bundle, run_untrained=True)
    audio_only = track_video_file(media.speech_mp3, featurizer=featurizer, max_duration_s=60)
    assert audio_only.missing_reason == "the file has no video stream"
    faceless = track_video_file(media.speech_mp4, featurizer=featurizer, max_duration_s=60)
    assert faceless.missing_reason == "no face was found in the video" and faceless.samples > 0
    # The transcriber refuses a damaged file for the job; the picture is only reported missing.
    truncated = track_video_file(media.truncated, featurizer=featurizer, max_duration_s=60)
    assert (truncated.missing_reason or "").startswith(
        "the picture could not be read: the file looks like media"
    )
    video = pool_video_track(faceless, [(0.0, 1.0)])
    assert video.video.present == [False] and video.video.missing_reason == "no face was found in the video"


def test_audio_stage_embeds_each_utterance(media: MediaSet, bundle: LocalBundle) -> None:
    spans = [Span(index=i, start=s, end=e, text="") for i, (s, e) in enumerate(media.speech.spans)]
    encoded = encode_audio_file(
        media.speech_mp4,
        media=probe(media.speech_mp4),
        utterances=spans,
        featurizer=AudioFeaturizer(bundle, run_untrained=True),
        speech_found=True,
    )
    features = encoded.audio
    assert features.present == [True, True]
    assert features.features is not None and to_array(features.features).shape == (2, 128)


def seconds(timestamp: str) -> float:
    """`00:01:02.345` → 62.345 (webvtt-py's own `start_in_seconds` drops the milliseconds)."""
    hours, minutes, rest = timestamp.split(":")
    return round(int(hours) * 3600 + int(minutes) * 60 + float(rest), 3)


def test_cli_json_is_the_api_result_and_bad_input_exits_2(
    media: MediaSet, bundle_dir: Path, tmp_path: Path
) -> None:
    command = [
        sys.executable,
        "-m",
        "analyzer.cli",
        "analyze",
        "--bundle",
        str(bundle_dir),
        "--whisper",
        "tiny.en",
    ]
    done = subprocess.run(
        [
            *command,
            str(media.speech_m4a),
            "--json",
            "--plot",
            str(tmp_path / "timeline.png"),
            "--srt",
            str(tmp_path / "speech.srt"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = AnalysisResult.model_validate(json.loads(done.stdout))
    assert len(result.utterances) == 2 and result.model_version == "0.0.0-test"
    assert (tmp_path / "timeline.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    cues = webvtt.from_srt(str(tmp_path / "speech.srt")).captions
    assert [seconds(cue.start) for cue in cues] == [u.start_time for u in result.utterances]
    # One synthetic voice speaks both sentences: one speaker, named before each cue's words.
    assert [u.speaker for u in result.utterances] == ["S1", "S1"] and len(result.speakers) == 1
    assert [cue.text.splitlines()[0] for cue in cues] == [f"S1: {u.text}" for u in result.utterances]
    refused = subprocess.run(
        [*command, str(media.truncated)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert refused.returncode == 2
    assert "corrupt_media" in refused.stderr and "Traceback" not in refused.stderr


def test_cli_batch_prints_a_line_per_file_in_order(media: MediaSet, bundle_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    folder.mkdir()
    (folder / "a.m4a").write_bytes(media.speech_m4a.read_bytes())
    (folder / "notes.txt").write_text("not media, and not picked up from a folder")
    done = subprocess.run(
        [
            sys.executable, "-m", "analyzer.cli", "analyze", "--bundle", str(bundle_dir),
            "--whisper", "tiny.en", "--jsonl",
            str(folder), str(media.video_no_audio), str(tmp_path / "missing.mp4"),
        ],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
    )  # fmt: skip
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["path"] for line in lines] == [
        str(folder / "a.m4a"),
        str(media.video_no_audio),
        str(tmp_path / "missing.mp4"),
    ]
    assert len(AnalysisResult.model_validate(lines[0]["result"]).utterances) == 2
    silent = AnalysisResult.model_validate(lines[1]["result"])
    assert {m.modality.value for m in silent.missing_modalities} == {"text", "audio", "video"}
    assert lines[2]["error"]["code"] == "not_a_file"
    assert done.returncode == 2 and "Traceback" not in done.stderr


def analysed(
    path: Path, transcriber: Transcriber, bundle: LocalBundle
) -> tuple[Transcript, VideoTrack, VoiceFeatures, AnalysisResult]:
    """The file through every stage, as the analyzer runs them one after the other."""
    output = transcribe_file(path, transcriber=transcriber, text=TextFeaturizer(bundle), max_duration_s=60)
    track = track_video_file(path, featurizer=VideoFeaturizer(bundle), max_duration_s=60)
    audio = encode_audio_file(
        path,
        media=output.media,
        utterances=output.utterances,
        featurizer=AudioFeaturizer(bundle),
        speech_found=output.speech_found,
    )
    result = fuse(
        transcript=output,
        video_track=track,
        audio=audio,
        predictor=FusionPredictor(bundle),
        bundle_version="t",
    )
    return output, track, audio, result


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory: pytest.TempPathFactory) -> Transcriber:
    return Transcriber(whisper_model_dir("base", tmp_path_factory.mktemp("whisper-base")))


@pytest.mark.parametrize(
    ("clip", "source"),
    [("01-01-05_01.mp4", WordsSource.TRANSLATION), ("01-02-03_01.mp4", WordsSource.MISSING)],
)
def test_a_javanese_clip_is_read_through_translation_or_not_at_all_never_as_english(
    talking_videos: Path, multilingual: Transcriber, bundle: LocalBundle, clip: str, source: WordsSource
) -> None:
    path = talking_videos.parent / "av" / "javanese" / "clips" / clip
    if not path.is_file():
        pytest.skip(f"{path} is not there")
    output, _, _, result = analysed(path, multilingual, bundle)
    assert output.speech_found and output.words is source
    assert output.language not in (None, "en") and output.language_probability is not None
    assert result.language == output.language and result.language_probability == output.language_probability
    assert all(u.words is not WordsSource.TRANSCRIPT for u in result.utterances)
    for u in result.utterances:
        words = u.modalities[Modality.TEXT]
        assert u.text  # the original words are kept
        if u.words is WordsSource.TRANSLATION:
            assert words.available and u.translation
        else:
            assert not words.available and words.reason
    if source is WordsSource.MISSING:
        assert [m.reason for m in result.missing_modalities if m.modality is Modality.TEXT] == [
            output.text.missing_reason
        ]
        assert "uncertain" in (output.text.missing_reason or "")
    else:
        assert any(u.words is WordsSource.TRANSLATION for u in result.utterances)


def test_a_blurred_face_weighs_less_in_the_fused_answer(
    talking_videos: Path, transcriber: Transcriber, bundle: LocalBundle, tmp_path: Path
) -> None:
    sharp = talking_videos / "vr_face_1.mp4"
    blurred = tmp_path / "blurred.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(sharp),
            "-vf",
            "gblur=sigma=5",
            "-c:a",
            "copy",
            str(blurred),
        ],
        check=True,
    )
    output, _, audio, _ = analysed(sharp, transcriber, bundle)

    def fused(track: VideoTrack) -> AnalysisResult:
        return fuse(
            transcript=output,
            video_track=track,
            audio=audio,
            predictor=FusionPredictor(bundle),
            bundle_version="t",
        )

    tracks = {
        p.name: track_video_file(p, featurizer=VideoFeaturizer(bundle), max_duration_s=60)
        for p in (sharp, blurred)
    }
    for track in tracks.values():
        assert track.face_quality is not None and len(track.face_quality) == len(track.face_times) > 0
    qualities = {
        name: [u.modalities[Modality.VIDEO].quality for u in fused(track).utterances]
        for name, track in tracks.items()
    }
    assert all(q is not None and q > 0.9 for q in qualities[sharp.name])
    assert all(q is not None and q < 0.5 for q in qualities[blurred.name])
    # The blurred face's pull on the fused answer, measured from the answer without it (its quality 0):
    # with its measured quality it pulls less than at full weight.
    track = tracks[blurred.name]
    n = len(track.face_times)
    weighed, full, without = (
        fused(track.model_copy(update={"face_quality": q}))
        for q in (track.face_quality, [1.0] * n, [0.0] * n)
    )

    def distance(a: UtteranceResult, b: UtteranceResult) -> float:
        pa, pb = ({s.label: s.confidence for s in u.emotions} for u in (a, b))
        return sum(abs(pa[label] - pb[label]) for label in pa)

    for w, f, o in zip(weighed.utterances, full.utterances, without.utterances, strict=True):
        assert distance(w, o) < distance(f, o)


RAVDESS = REPO.parent / "shared" / "data" / "voice" / "ravdess"


def test_the_transcription_stage_tells_two_real_voices_apart_and_takes_the_number_given(
    transcriber: Transcriber, bundle: LocalBundle, tmp_path: Path
) -> None:
    """Two RAVDESS actors taking turns, a second of silence between: one speaker per turn, in turn; told that
    one person speaks, one speaker."""
    turns = [(1, 1), (2, 2), (1, 2), (2, 1)]  # (actor, statement)
    pause = np.zeros(SAMPLE_RATE, dtype=np.float32)
    audio = [pause]
    for actor, statement in turns:
        audio += [load_audio(RAVDESS / f"03-01-01-01-{statement:02d}-01-{actor:02d}.flac"), pause]
    path = tmp_path / "two-actors.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(np.concatenate(audio), -1, 1) * 32767).astype("<i2").tobytes())
    speakers = Speakers(load_speaker_encoder())

    def labels(people: int | None = None) -> list[str | None]:
        output = transcribe_file(
            path,
            transcriber=transcriber,
            text=TextFeaturizer(bundle),
            max_duration_s=60,
            speakers=speakers,
            people=people,
        )
        assert output.text.features is not None and output.text.features.rows == len(output.utterances)
        return [u.speaker for u in output.utterances]

    # tiny.en hears the four turns as one utterance (their pauses are under the VAD's two seconds): it is
    # cut where the voice changes, at the word gaps.
    assert labels() == ["S1", "S2", "S1", "S2"]
    assert set(labels(people=1)) == {"S1"}
    plain = transcribe_file(path, transcriber=transcriber, text=TextFeaturizer(bundle), max_duration_s=60)
    assert {u.speaker for u in plain.utterances} == {None}  # not told apart unless asked
