"""A picture of an analysis over time: each utterance's fused emotion distribution as a stacked band where
it was spoken, beneath it a lane per speaker (where speakers were told apart: who spoke when, in the colour
of their top emotion), the face's, the voice's and the words' own distributions (where the result has them;
blank where a modality was missing), and the words at the bottom.

matplotlib is in the `ml` extra, not in the base install, so it is imported only when a picture is drawn.
The figure is drawn on an Agg canvas of its own: no pyplot, no global backend, no display needed.
"""

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Final

from emotion_contract.labels import Emotion, Modality
from emotion_contract.results import AnalysisResult, EmotionScore, UtteranceResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Fixed per emotion, so that pictures of different files read alike.
EMOTION_COLOURS: Final[dict[Emotion, str]] = {
    Emotion.ANGER: "#d62728",
    Emotion.DISGUST: "#6b8e23",
    Emotion.FEAR: "#9467bd",
    Emotion.JOY: "#f2b701",
    Emotion.NEUTRAL: "#b0b0b0",
    Emotion.SADNESS: "#1f77b4",
    Emotion.SURPRISE: "#ff7f0e",
}
TEXT_FONT_PT: Final = 8.0
TEXT_LINES: Final = 4
# Characters of an 8 pt sans-serif font per inch, roughly: enough to decide where to wrap.
CHARS_PER_INCH: Final = 15.0
MIN_WIDTH_IN: Final = 12.0
MAX_WIDTH_IN: Final = 48.0
WIDTH_PER_UTTERANCE_IN: Final = 1.2
HEIGHT_IN: Final = 5.5
HEIGHT_PER_MODALITY_IN: Final = 1.4
HEIGHT_PER_SPEAKER_IN: Final = 0.35
DPI: Final = 100
MODALITY_ROWS: Final = ((Modality.VIDEO, "face"), (Modality.AUDIO, "voice"), (Modality.TEXT, "words"))


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def _caption(text: str, chars: int, max_lines: int = TEXT_LINES) -> str:
    """The text wrapped to `chars` a line, cut with an ellipsis after `max_lines`."""
    if chars < 3:
        return ""
    lines = textwrap.wrap(text, width=chars) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(chars - 1, 1)].rstrip() + "…"
    return "\n".join(lines)


def _band(axes: "Axes", utterance: UtteranceResult, scores: list[EmotionScore], min_width_s: float) -> None:
    width = max(utterance.end_time - utterance.start_time, min_width_s)
    confidences = {score.label: score.confidence for score in scores}
    bottom = 0.0
    for emotion, colour in EMOTION_COLOURS.items():  # the same stacking order in every band
        height = confidences.get(emotion, 0.0)
        axes.bar(utterance.start_time, height, width=width, bottom=bottom, align="edge", color=colour, lw=0)
        bottom += height


def _speaker_lanes(
    axes: "Axes", utterances: list[UtteranceResult], people: list[str], min_width_s: float
) -> None:
    """A lane per speaker, top to bottom in order of first appearance: their utterances as bars."""
    for lane, person in enumerate(people):
        spoken = [u for u in utterances if u.speaker == person]
        axes.broken_barh(
            [(u.start_time, max(u.end_time - u.start_time, min_width_s)) for u in spoken],
            (len(people) - lane - 0.9, 0.8),
            facecolors=[EMOTION_COLOURS[u.emotions[0].label] for u in spoken],
        )
    axes.set_ylim(0.0, len(people))
    axes.set_yticks([len(people) - lane - 0.5 for lane in range(len(people))], people)
    axes.set_ylabel("speaker", rotation=0, ha="right", va="center")


def plot_timeline(result: AnalysisResult, path: str | Path, title: str | None = None) -> Path:
    """Draw the result's utterances along time into `path` (PNG, or any format matplotlib writes by its
    suffix). `title` (e.g. the file's name) heads the picture, with the model version."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise PlotUnavailableError(
            "drawing a timeline needs matplotlib: pip install 'emotion-analyzer[ml]' (or just matplotlib)"
        ) from exc

    path = Path(path)
    utterances = result.utterances
    span_s = max([result.duration_s, *(u.end_time for u in utterances)]) or 1.0
    width_in = min(MAX_WIDTH_IN, max(MIN_WIDTH_IN, WIDTH_PER_UTTERANCE_IN * len(utterances)))
    rows = [
        (modality, name)
        for modality, name in MODALITY_ROWS
        if any((own := u.modalities.get(modality)) is not None and own.emotions for u in utterances)
    ]
    people = [summary.speaker for summary in result.speakers]
    lanes = 1 if people else 0
    height_in = HEIGHT_IN + HEIGHT_PER_MODALITY_IN * len(rows) + HEIGHT_PER_SPEAKER_IN * len(people)
    figure = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    lane_ratio = [0.25 * len(people)] if people else []
    *axes, words = figure.subplots(
        2 + lanes + len(rows),
        1,
        sharex=True,
        gridspec_kw={"height_ratios": [3.0, *lane_ratio, *[1.0] * len(rows), 1.1]},
    )
    bands = axes[0]
    if people:
        lane_axes = axes.pop(1)
        _speaker_lanes(lane_axes, utterances, people, min_width_s=span_s / 500)
        lane_axes.set_xlim(0.0, span_s)
        lane_axes.tick_params(labelbottom=False)

    for utterance in utterances:
        _band(bands, utterance, utterance.emotions, min_width_s=span_s / 500)
        for (modality, _), row in zip(rows, axes[1:], strict=True):
            own = utterance.modalities.get(modality)
            if own is not None and own.emotions:
                _band(row, utterance, own.emotions, min_width_s=span_s / 500)
    bands.set_ylabel("emotion probability (fused)")
    for (_, name), row in zip(rows, axes[1:], strict=True):
        row.set_ylabel(name, rotation=0, ha="right", va="center")
        row.set_yticks([0.0, 1.0])
    for row in axes:
        row.set_xlim(0.0, span_s)
        row.set_ylim(0.0, 1.0)
        row.tick_params(labelbottom=False)
    if not utterances:
        bands.text(0.5, 0.5, "no utterances", ha="center", va="center", transform=bands.transAxes)

    axis_width_in = width_in * 0.85  # less the legend and the labels
    for utterance in utterances:
        share = max(utterance.end_time - utterance.start_time, 0.0) / span_s
        chars = int(share * axis_width_in * CHARS_PER_INCH)
        top = utterance.emotions[0]
        strongest = _caption(f"{top.label.value} {top.confidence:.0%}", chars, max_lines=1)
        words.text(utterance.start_time, 0.97, strongest, va="top", fontsize=TEXT_FONT_PT, fontweight="bold")
        words.text(
            utterance.start_time,
            0.75,
            _caption(utterance.text or "—", chars),
            va="top",
            fontsize=TEXT_FONT_PT,
        )
    words.set_ylim(0.0, 1.0)
    words.set_yticks([])
    for side in ("left", "right", "top"):
        words.spines[side].set_visible(False)
    words.set_xlabel("time (s)")

    handles = [Patch(color=colour, label=emotion.value) for emotion, colour in EMOTION_COLOURS.items()]
    figure.legend(handles=handles, loc="outside right upper", frameon=False)
    heading = f"model {result.model_version}, {result.duration_s:.1f} s, {len(utterances)} utterance(s)"
    figure.suptitle(f"{title} — {heading}" if title else heading)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
