"""The CSV export: words that start like a spreadsheet formula are kept as text."""

import csv
import io

from emotion_contract.labels import Modality
from emotion_contract.results import (
    AnalysisResult,
    ModalityPrediction,
    UtteranceResult,
    emotion_scores,
    sentiment_scores,
)
from services.gateway.result_csv import defused, header, result_csv


def test_formula_like_cells_are_defused_and_others_left_alone() -> None:
    for planted in ('=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert defused(planted) == "'" + planted
    for plain in ("hello there", "0.5500", "joy", "", "a=b"):
        assert defused(plain) == plain


def test_a_spoken_formula_reaches_the_csv_as_text() -> None:
    emotions, sentiments = (
        emotion_scores([0.05, 0.05, 0.05, 0.55, 0.2, 0.05, 0.05]),
        sentiment_scores([0.1, 0.3, 0.6]),
    )
    said = '=HYPERLINK("http://evil.example","click")'
    utterance = UtteranceResult(
        index=0,
        start_time=0.0,
        end_time=0.5,
        text=said,
        speaker="S2",
        emotions=emotions,
        sentiments=sentiments,
        modalities={
            Modality.TEXT: ModalityPrediction(available=True, emotions=emotions, sentiments=sentiments)
        },
    )
    result = AnalysisResult(model_version="t", duration_s=0.5, language="en", utterances=[utterance])
    [columns, row] = list(csv.reader(io.StringIO(result_csv(result))))
    assert columns == header()
    assert row[columns.index("text")] == "'" + said
    assert row[columns.index("top_emotion")] == "joy"
    assert row[columns.index("speaker")] == "S2"
