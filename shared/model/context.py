"""The conversation around each utterance, as the text encoder reads it.

An utterance alone is often ambiguous ("Oh really?"); its neighbours say how it was meant. The encoder
reads each utterance inside a window of the ones before and after it, in spoken order, separated by the
tokenizer's separator, and averages the hidden states of the utterance's own tokens only, so the embedding
stays the utterance's while its attention sees the conversation:

    [CLS] before₂ [SEP] before₁ [SEP] utterance [SEP] after₁ [SEP]      pooled over `utterance`

The same function builds the windows in training (a MELD dialogue, ordered by Utterance_ID) and in the
services (a file's transcript, in time order), so the model reads at inference what it learnt from.
Speakers are not part of the window: production has no diarization.

With no context (before = after = 0) the input is the plain `[CLS] utterance [SEP]`, pooled over every
token, which is what bundles made before windows existed were trained on.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class WordPieceTokenizer(Protocol):
    """What the windows need of a Hugging Face tokenizer."""

    @property
    def cls_token_id(self) -> int | None: ...

    @property
    def sep_token_id(self) -> int | None: ...

    def __call__(self, text: list[str], *, add_special_tokens: bool) -> dict[str, list[list[int]]]: ...


@dataclass(frozen=True)
class ContextWindow:
    before: int = 0
    """Utterances read before each one (the nearest first when tokens run short)."""
    after: int = 0
    """Utterances read after it."""
    utterance_tokens: int = 96
    """At most this many tokens of the utterance itself, its special tokens included."""
    window_tokens: int = 192
    """At most this many tokens in all; neighbours are cut to fit, the nearest kept first."""

    def __post_init__(self) -> None:
        if self.before < 0 or self.after < 0:
            raise ValueError(f"a context window cannot reach back {self.before} or ahead {self.after}")
        if self.utterance_tokens < 3 or self.window_tokens < self.utterance_tokens:
            raise ValueError(
                f"a window of {self.window_tokens} tokens cannot hold an utterance of {self.utterance_tokens}"
            )

    @property
    def alone(self) -> bool:
        return self.before == 0 and self.after == 0


@dataclass(frozen=True)
class WindowInput:
    """One utterance's encoder input: token ids, and 1 on the tokens its embedding averages."""

    input_ids: list[int]
    pool_mask: list[int]


def _special(tokenizer: WordPieceTokenizer) -> tuple[int, int]:
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ValueError(f"{type(tokenizer).__name__} has no [CLS]/[SEP] tokens to build windows with")
    return tokenizer.cls_token_id, tokenizer.sep_token_id


def _neighbours(spoken: list[int], position: int, window: ContextWindow) -> tuple[list[int], list[int]]:
    """Indices (into the texts) of the spoken utterances before (nearest last) and after (nearest first)."""
    first = max(0, position - window.before)
    return spoken[first:position], spoken[position + 1 : position + 1 + window.after]


def build_window(
    pieces: Sequence[Sequence[int]],
    target: int,
    before: Sequence[int],
    after: Sequence[int],
    window: ContextWindow,
    *,
    cls_id: int,
    sep_id: int,
) -> WindowInput:
    """The input of utterance `target` with the neighbours `before` (in order, nearest last) and `after`
    (nearest first), all indices into `pieces` (each utterance's word pieces, without special tokens)."""
    own = list(pieces[target][: window.utterance_tokens - 2])
    if window.alone:
        ids = [cls_id, *own, sep_id]
        return WindowInput(input_ids=ids, pool_mask=[1] * len(ids))
    budget = window.window_tokens - len(own) - 2
    kept_before: list[list[int]] = []
    kept_after: list[list[int]] = []
    # Nearest first, alternating sides, so that a long neighbour cannot crowd out the other side.
    by_distance = [
        (index, side)
        for distance in range(1, max(len(before), len(after)) + 1)
        for index, side in (
            (before[-distance] if distance <= len(before) else None, "before"),
            (after[distance - 1] if distance <= len(after) else None, "after"),
        )
        if index is not None
    ]
    for index, side in by_distance:
        if budget <= 1:
            break
        text = list(pieces[index])
        room = budget - 1  # its separator
        if side == "before":
            kept_before.insert(0, text[-room:] if len(text) > room else text)
        else:
            kept_after.append(text[:room])
        budget -= min(len(text), room) + 1
    ids = [cls_id]
    for text in kept_before:
        ids += [*text, sep_id]
    start = len(ids)
    ids += own
    mask = [0] * start + [1] * len(own)
    ids.append(sep_id)
    for text in kept_after:
        ids += [*text, sep_id]
    mask += [0] * (len(ids) - len(mask))
    return WindowInput(input_ids=ids, pool_mask=mask)


def window_inputs(
    tokenizer: WordPieceTokenizer, texts: Sequence[str], window: ContextWindow
) -> list[WindowInput]:
    """Each text's encoder input, its neighbours taken from the texts around it in the order given. Empty
    texts (no speech) are nobody's neighbour; their own input holds no words (the caller masks them)."""
    if not texts:
        return []
    cls_id, sep_id = _special(tokenizer)
    pieces = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    spoken = [i for i, text in enumerate(texts) if text.strip()]
    position = {index: n for n, index in enumerate(spoken)}
    out = []
    for index in range(len(texts)):
        before: list[int] = []
        after: list[int] = []
        if index in position and not window.alone:
            before, after = _neighbours(spoken, position[index], window)
        out.append(build_window(pieces, index, before, after, window, cls_id=cls_id, sep_id=sep_id))
    return out
