"""The packaged pretrained weights load with the libraries that will use them, offline."""

import pytest
import torch

from shared.assets import minilm_dir


def test_minilm_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    model = AutoModel.from_pretrained(minilm_dir()).eval()
    batch = tokenizer(["I am so happy today", "this is terrible"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (B, T, 384)
    assert hidden.shape[0] == 2 and hidden.shape[2] == 384
