"""The conversation, read a second way: a small recurrent network over a file's utterance embeddings.

The context window (shared.model.context) lets the encoder's attention see the neighbours' words, at the
price of reading each neighbour again for every utterance: on 2 CPU cores MPNet with 2 before and 1 after
costs more than twice as much per utterance as MPNet alone. This module leaves the encoder reading each
utterance once and lets the conversation reach each embedding afterwards: a bidirectional GRU runs over the
spoken utterances' 128-d embeddings in order, and a residual layer adds what it read to each one,

    e'ᵢ = ReLU(eᵢ + W·[GRU(e₁ … eₙ)ᵢ ; eᵢ] + b)

The whole file is in hand when the text is encoded (the transcriber has every utterance), so the GRU reads
both ways. W and b start at zero: an untrained module passes the embeddings through unchanged, and training
starts from the encoder as it was. Its cost is a GRU step per utterance, well under a millisecond.

Silent segments are nobody's neighbour and keep their embedding (the fusion masks them).

With `speaker_features` (a config's `text_dialogue_speakers`), the GRU also reads who speaks each utterance
(`speaker_features`: which of the conversation's first people by order of appearance, whether it is the
previous utterance's speaker, and whether the speaker is known at all), so a reply is read as a reply and
not as the same person going on. Unknown speakers read as zeros: a model trained with speakers dropped
now and then reads a file without them too.
"""

from collections.abc import Sequence
from typing import Final

import torch
from torch import nn

SPEAKER_SLOTS: Final = 4
"""The conversation's first people each have a slot; later ones share the last."""
SPEAKER_FEATURES: Final = SPEAKER_SLOTS + 2


def speaker_features(speakers: Sequence[str | None]) -> torch.Tensor:
    """(n, SPEAKER_FEATURES) per utterance of one conversation in spoken order: the one-hot slot of its
    speaker by first appearance, 1 where the previous utterance's speaker is the same, 1 where the speaker
    is known; all zeros for an unknown speaker."""
    out = torch.zeros(len(speakers), SPEAKER_FEATURES)
    slots: dict[str, int] = {}
    for i, speaker in enumerate(speakers):
        if speaker is None:
            continue
        slot = slots.setdefault(speaker, min(len(slots), SPEAKER_SLOTS - 1))
        out[i, slot] = 1.0
        out[i, SPEAKER_SLOTS] = float(i > 0 and speakers[i - 1] == speaker)
        out[i, SPEAKER_SLOTS + 1] = 1.0
    return out


class DialogueContext(nn.Module):
    def __init__(self, embed_dim: int, hidden: int, dropout: float = 0.3, speaker_features: int = 0) -> None:
        super().__init__()
        self.speaker_features = speaker_features
        self.rnn = nn.GRU(embed_dim + speaker_features, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden + embed_dim, embed_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, embeddings: torch.Tensor, mask: torch.Tensor, speakers: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, L, D) embeddings of B conversations, (B, L) True on real rows → (B, L, D); padding rows
        come back as they went in. `speakers`: (B, L, speaker_features), None for unknown speakers."""
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        rnn = nn.utils.rnn
        read_in = embeddings
        if self.speaker_features:
            if speakers is None:
                speakers = embeddings.new_zeros(*embeddings.shape[:2], self.speaker_features)
            read_in = torch.cat([embeddings, speakers], dim=-1)
        packed = rnn.pack_padded_sequence(read_in, lengths, batch_first=True, enforce_sorted=False)
        states, _ = rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=mask.shape[1])
        read = self.out(self.dropout(torch.cat([states, embeddings], dim=-1)))
        out: torch.Tensor = torch.where(mask.unsqueeze(-1), torch.relu(embeddings + read), embeddings)
        return out

    def conversations(
        self,
        embeddings: torch.Tensor,
        groups: Sequence[Sequence[int]],
        speakers: Sequence[str | None] | None = None,
    ) -> torch.Tensor:
        """(N, D) embeddings with each group's rows (indices into them, in spoken order) read as one
        conversation; rows in no group are returned unchanged. `speakers`: who speaks each of the N rows
        (None: not known), read where the model was trained with speakers."""
        groups = [list(g) for g in groups if len(g)]
        if not groups:
            return embeddings
        longest = max(len(g) for g in groups)
        padded = embeddings.new_zeros(len(groups), longest, embeddings.shape[1])
        mask = torch.zeros(len(groups), longest, dtype=torch.bool, device=embeddings.device)
        who = embeddings.new_zeros(len(groups), longest, self.speaker_features)
        for row, rows in enumerate(groups):
            padded[row, : len(rows)] = embeddings[rows]
            mask[row, : len(rows)] = True
            if self.speaker_features and speakers is not None:
                who[row, : len(rows)] = speaker_features([speakers[i] for i in rows]).to(who)
        read = self(padded, mask, who if self.speaker_features else None)[mask]  # (Σ|g|, D), in order
        out = embeddings.clone()
        out[torch.tensor([i for g in groups for i in g], device=embeddings.device)] = read
        return out


def spoken_conversation(present: Sequence[bool]) -> list[list[int]]:
    """A file's one conversation: the rows that hold words, in order (silent rows are no one's neighbour)."""
    return [[i for i, spoken in enumerate(present) if spoken]]


def batch_conversations(dialogue_ids: Sequence[int], spoken: Sequence[bool]) -> list[list[int]]:
    """The conversations of a batch whose rows are whole dialogues in spoken order: consecutive rows with
    one dialogue id form one conversation, its silent rows left out."""
    groups: list[list[int]] = []
    previous: int | None = None
    for row, (dialogue, has_words) in enumerate(zip(dialogue_ids, spoken, strict=True)):
        if dialogue != previous:
            groups.append([])
            previous = dialogue
        if has_words:
            groups[-1].append(row)
    return [g for g in groups if g]
