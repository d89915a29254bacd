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

Silent segments are nobody's neighbour and keep their embedding (the fusion masks them). Speakers are not
read: the utterances carry them (`shared.model.speakers`), but this GRU was trained without.
"""

from collections.abc import Sequence

import torch
from torch import nn


class DialogueContext(nn.Module):
    def __init__(self, embed_dim: int, hidden: int, dropout: float = 0.3) -> None:
        super().__init__()
        self.rnn = nn.GRU(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden + embed_dim, embed_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, D) embeddings of B conversations, (B, L) True on real rows → (B, L, D); padding rows
        come back as they went in."""
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        rnn = nn.utils.rnn
        packed = rnn.pack_padded_sequence(embeddings, lengths, batch_first=True, enforce_sorted=False)
        states, _ = rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=mask.shape[1])
        read = self.out(self.dropout(torch.cat([states, embeddings], dim=-1)))
        out: torch.Tensor = torch.where(mask.unsqueeze(-1), torch.relu(embeddings + read), embeddings)
        return out

    def conversations(self, embeddings: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
        """(N, D) embeddings with each group's rows (indices into them, in spoken order) read as one
        conversation; rows in no group are returned unchanged."""
        groups = [list(g) for g in groups if len(g)]
        if not groups:
            return embeddings
        longest = max(len(g) for g in groups)
        padded = embeddings.new_zeros(len(groups), longest, embeddings.shape[1])
        mask = torch.zeros(len(groups), longest, dtype=torch.bool, device=embeddings.device)
        for row, rows in enumerate(groups):
            padded[row, : len(rows)] = embeddings[rows]
            mask[row, : len(rows)] = True
        read = self(padded, mask)[mask]  # (Σ|g|, D), the groups' rows in order
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
