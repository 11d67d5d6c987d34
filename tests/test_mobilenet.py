"""MobileNetV2 with its real ImageNet weights, on real photos."""

from __future__ import annotations

import pytest
import torch

from model.codebook import build_codebook, compressible_layers
from model.metrics import fidelity
from model.mobilenet import (
    CALIBRATION_PHOTOS,
    EVALUATION_PHOTOS,
    load_mobilenet_v2,
    photo,
    photo_crops,
)
from model.vq import prepare_vq, vq_layers

#: ImageNet classes 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat.
CAT_CLASSES = range(281, 286)


@pytest.fixture(scope="module")
def mobilenet():
    return load_mobilenet_v2()


def test_weights_load_strictly_and_see_the_cat(mobilenet) -> None:
    assert sum(p.numel() for p in mobilenet.parameters()) == 3_504_872
    crops = photo_crops(("chelsea",), 8, seed=0)
    with torch.no_grad():
        classes = mobilenet(crops).argmax(dim=1)
    assert sum(int(c) in CAT_CLASSES for c in classes) >= 6, classes.tolist()


def test_calibration_and_evaluation_photos_are_disjoint() -> None:
    assert not set(CALIBRATION_PHOTOS) & set(EVALUATION_PHOTOS)
    # Different names can hold one image (scikit-image's cat is chelsea): compare the pixels.
    seen = {photo(name).tobytes() for name in EVALUATION_PHOTOS}
    assert not [name for name in CALIBRATION_PHOTOS if photo(name).tobytes() in seen]


def test_crops_are_seeded_and_normalised() -> None:
    first, second = photo_crops(("coffee",), 3, seed=4), photo_crops(("coffee",), 3, seed=4)
    assert first.shape == (3, 3, 224, 224) and torch.equal(first, second)
    assert not torch.equal(first, photo_crops(("coffee",), 3, seed=5))
    assert -3 < float(first.mean()) < 3
    jittered = photo_crops(("coffee",), 3, seed=4, jitter=True)
    assert torch.equal(jittered, photo_crops(("coffee",), 3, seed=4, jitter=True))
    assert jittered.shape == first.shape and not torch.equal(jittered, first)


def test_fidelity_of_a_model_to_itself(mobilenet) -> None:
    scores = fidelity(mobilenet, mobilenet, photo_crops(("flower",), 4))
    assert scores["top1_agreement"] == 100.0 and scores["top5_overlap"] == 100.0
    assert abs(scores["kl"]) < 1e-6


def test_every_layer_becomes_a_vq_layer(mobilenet) -> None:
    codebook = build_codebook({"mobilenet_v2": mobilenet}, K=256, D=8, seed=0)
    vq = prepare_vq(mobilenet, codebook)
    layers = vq_layers(vq)
    # The stem; 17 depthwise and 33 pointwise convolutions (the first block does not expand);
    # the last 1x1 and the classifier.
    assert len(layers) == len(compressible_layers(mobilenet)) == 1 + 17 + 33 + 1 + 1
    with torch.no_grad():
        assert vq(photo_crops(("flower",), 1)).shape == (1, 1000)
