"""An analysis result as subtitles, WebVTT or SubRip: one cue per utterance, its words and its top emotion and
sentiment, so that any video player shows the analysis over the video. Where speakers were told apart, a
WebVTT cue is the speaker's voice span (`<v S1>`, which players show and style per voice) and a SubRip cue
starts with the speaker (`S1: `).

The REST API serves these (`GET /v1/analyses/{id}/export.vtt`, `.srt`) and the command line writes them
(`emotion-analyzer analyze FILE --vtt out.vtt`); both call these functions.
"""

from typing import Final

from emotion_contract.results import AnalysisResult, UtteranceResult

MIN_CUE_S: Final = 0.001
"""Players drop cues that end where they start; a span of no length gets this much."""


def _timestamp(seconds: float, decimal: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _span(utterance: UtteranceResult) -> tuple[float, float]:
    return utterance.start_time, max(utterance.end_time, utterance.start_time + MIN_CUE_S)


def label_line(utterance: UtteranceResult) -> str:
    """`joy 82% · positive 64%`: the fused top emotion and sentiment with their confidences."""
    emotion, sentiment = utterance.emotions[0], utterance.sentiments[0]
    return (
        f"{emotion.label.value} {emotion.confidence:.0%} · {sentiment.label.value} {sentiment.confidence:.0%}"
    )


def _lines(utterance: UtteranceResult) -> list[str]:
    text = " ".join(utterance.text.split())  # one line: a cue's line breaks are the player's to make
    return [text, f"[{label_line(utterance)}]"] if text else [f"[{label_line(utterance)}]"]


def _vtt_text(line: str) -> str:
    # WebVTT cue text is HTML-like: these three would start markup or end the cue's timing line.
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt_lines(utterance: UtteranceResult) -> list[str]:
    lines = [_vtt_text(line) for line in _lines(utterance)]
    if utterance.speaker is not None:  # a voice span runs to the cue's end unless closed
        lines[0] = f"<v {utterance.speaker}>{lines[0]}"
    return lines


def _srt_lines(utterance: UtteranceResult) -> list[str]:
    lines = _lines(utterance)
    if utterance.speaker is not None:
        lines[0] = f"{utterance.speaker}: {lines[0]}"
    return lines


def to_webvtt(result: AnalysisResult) -> str:
    cues = []
    for number, utterance in enumerate(result.utterances, start=1):
        start, end = _span(utterance)
        timing = f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}"
        cues.append("\n".join([str(number), timing, *_vtt_lines(utterance)]))
    header = f"WEBVTT - emotions and sentiments by {result.model_version}"
    return "\n\n".join([header, *cues]) + "\n"


def to_srt(result: AnalysisResult) -> str:
    cues = []
    for number, utterance in enumerate(result.utterances, start=1):
        start, end = _span(utterance)
        timing = f"{_timestamp(start, ',')} --> {_timestamp(end, ',')}"
        cues.append("\n".join([str(number), timing, *_srt_lines(utterance)]))
    return "\n\n".join(cues) + "\n" if cues else ""
