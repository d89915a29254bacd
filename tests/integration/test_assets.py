"""The packaged pretrained weights load with the libraries that will use them, offline."""

import pytest
import torch

from shared.assets import fer_weights_path, minilm_dir


def test_minilm_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    model = AutoModel.from_pretrained(minilm_dir()).eval()
    batch = tokenizer(["I am so happy today", "this is terrible"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (B, T, 384)
    assert hidden.shape[0] == 2 and hidden.shape[2] == 384


def test_fer_checkpoint_holds_the_network_state_dict() -> None:
    checkpoint = torch.load(fer_weights_path(), map_location="cpu", weights_only=True)
    state = checkpoint["network"]
    # NetworkV2(in_c=1, nl=32, out_f=7): four padded conv blocks on a 1×48×48 face, then 9216→256→7.
    assert state["conv_1.1.weight"].shape == (32, 1, 3, 3)
    assert state["conv_4.1.weight"].shape == (256, 128, 3, 3)
    assert state["linear.0.weight"].shape == (256, 256 * 6 * 6)
    assert state["linear.2.weight"].shape == (7, 256)
    assert checkpoint["accuracy"] > 0.5
