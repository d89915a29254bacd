"""How the modalities' calibrated distributions become one: weighted log-linear pooling with a floor.

For the experts m present on an utterance (the words, the face, the voice), each with its own calibrated
distribution p_m over K classes,

    log p(y) = Σ_m w_m · log((1 − ε_m) · p_m(y) + ε_m / K) + const,

and an utterance with one expert gets that expert's distribution unchanged (it is calibrated already).
An expert may also carry a per-utterance scale s_m in [0, 1] (the face: its pictures' quality), which
multiplies its weight: a poor picture counts for less (at 0, as if it were not there), and alone it gives
p_m^s_m renormalised, flatter the poorer it is (uniform at 0).
Where the face and the voice both count, the pooled log-probabilities are divided by the rule's
`face_voice_temperature` (≥ 1): a face and a voice recorded together err together, which the independent
experts' product counts twice; only recordings that hold both can fit it (`training.fusion_temperature`).
The weights w_m say how far to trust each expert against the others; the floors ε_m say how little any one
expert may give a class, so that no expert can veto a class the others agree on: expert m moves the log
odds of two classes by at most w_m · log((1 − ε_m + ε_m/K) / (ε_m/K)). An expert that knows nothing
(a uniform distribution) adds a constant and changes nothing (but a face beside a voice still brings the
face and voice temperature below). Both are fitted on data
(`training.fusion_fit`) by minimising the pooled distribution's negative log-likelihood, never set by hand;
the floor is kept at MIN_FLOOR or above.
"""

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from emotion_contract.labels import Modality

V, A = Modality.VIDEO, Modality.AUDIO

MIN_FLOOR: Final = 0.05
FloatArray = npt.NDArray[np.float32]


class HeadRule(BaseModel):
    weights: dict[Modality, float] = Field(description="w_m ≥ 0 per expert")
    floors: dict[Modality, float] = Field(description=f"ε_m in [{MIN_FLOOR}, 1) per expert")
    translated_words_scale: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="The words' scale where they were read through Whisper's translation of another language",
    )
    face_voice_temperature: float = Field(
        default=1.0,
        ge=1.0,
        description="Divides the pooled log-probabilities where the face and the voice both count: recorded "
        "together they share their errors, which pooling them as independent experts counts twice",
    )


class PoolingRule(BaseModel):
    """The fusion rule of a bundle (its fusion component's `fusion_rule.json`)."""

    emotion: HeadRule
    sentiment: HeadRule
    fitted: bool = Field(description="False for the equal weights of an untrained bundle")
    fitted_on: str = ""
    figures: dict[str, float] = Field(default_factory=dict, description="NLL and scores of the fit")

    @classmethod
    def equal(cls) -> "PoolingRule":
        """Weights 1 and the minimum floor: the rule of a bundle whose fusion was not fitted."""
        head = HeadRule(weights={m: 1.0 for m in Modality}, floors={m: MIN_FLOOR for m in Modality})
        return cls(emotion=head, sentiment=head, fitted=False)


def pool(
    distributions: Mapping[Modality, FloatArray],
    present: Mapping[Modality, npt.NDArray[np.bool_]],
    rule: HeadRule,
    scales: Mapping[Modality, npt.NDArray[np.float64]] | None = None,
) -> FloatArray:
    """(n, K) pooled distributions; NaN rows where no expert is present.

    distributions: per expert (n, K) probabilities (any values where absent); present: per expert (n,);
    scales: per expert (n,) factors in [0, 1] of its weight (1 where not given)."""
    experts = [m for m in distributions if m in present]
    if not experts:
        raise ValueError("nothing to pool: no expert")
    n, k = distributions[experts[0]].shape
    counts = np.zeros(n, dtype=np.int64)
    anyone = np.zeros(n, dtype=bool)
    log_pooled = np.zeros((n, k), dtype=np.float64)
    single = np.full((n, k), 1.0 / k, dtype=np.float64)
    counted_of: dict[Modality, npt.NDArray[np.bool_]] = {}
    for m in experts:
        p = np.asarray(distributions[m], dtype=np.float64)
        here = np.asarray(present[m], dtype=bool)
        scale = np.ones(n) if scales is None or m not in scales else np.clip(np.asarray(scales[m]), 0.0, 1.0)
        if p.shape != (n, k) or here.shape != (n,) or scale.shape != (n,):
            raise ValueError(f"{m.value}: expected ({n}, {k}) probabilities and ({n},) presence and scales")
        # An expert scaled to nothing is there, but counts as absent.
        counted = here & (scale > 0)
        counted_of[m] = counted
        floor = max(rule.floors[m], MIN_FLOOR)
        floored = (1 - floor) * np.nan_to_num(p, nan=1.0 / k) + floor / k
        log_pooled += np.where(counted[:, None], rule.weights[m] * scale[:, None] * np.log(floored), 0.0)
        tempered = np.nan_to_num(p, nan=1.0 / k) ** scale[:, None]
        tempered /= tempered.sum(axis=1, keepdims=True)
        single = np.where(counted[:, None], tempered, single)
        counts += counted
        anyone |= here
    if V in counted_of and A in counted_of and rule.face_voice_temperature != 1.0:
        both = counted_of[V] & counted_of[A]
        log_pooled = np.where(both[:, None], log_pooled / rule.face_voice_temperature, log_pooled)
    log_pooled -= log_pooled.max(axis=1, keepdims=True)
    pooled = np.exp(log_pooled)
    pooled /= pooled.sum(axis=1, keepdims=True)
    # One expert counted: its distribution (tempered by its scale); none counted but one there: uniform.
    out = np.where((counts <= 1)[:, None], single, pooled)
    out[~anyone] = np.nan
    return out.astype(np.float32)


def expert_scales(
    rule: HeadRule,
    n: int,
    face_quality: Sequence[float] | npt.NDArray[np.float64] | None,
    translated: Sequence[bool] | npt.NDArray[np.bool_] | None,
) -> dict[Modality, npt.NDArray[np.float64]]:
    """Per-utterance scales of the experts' weights: the face's quality, and the rule's scale of words read
    through a translation."""
    scales = {}
    if face_quality is not None:
        scales[Modality.VIDEO] = np.asarray(face_quality, dtype=np.float64).reshape(n)
    if translated is not None:
        scales[Modality.TEXT] = np.where(np.asarray(translated, dtype=bool), rule.translated_words_scale, 1.0)
    return scales
