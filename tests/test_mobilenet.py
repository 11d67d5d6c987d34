"""MobileNetV2 with its real ImageNet weights, on real photos."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from vq4all.cli import main
from vq4all.flow import frozen_mobilenet
from vq4all.golden.codebook import save_codebook
from vq4all.golden.network import LayerOp, run_network, save_network
from vq4all.hw.params import AcceleratorParams
from vq4all.model.codebook import build_codebook, compressible_layers
from vq4all.model.metrics import fidelity
from vq4all.model.user import load_images
from vq4all.model.vq import prepare_vq, vq_layers
from vq4all.model.workloads import pictures as pictures_module
from vq4all.model.workloads.mobilenet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_mobilenet_v2,
)
from vq4all.model.workloads.pictures import (
    CALIBRATION_PHOTOS,
    EVALUATION_PHOTOS,
    photo,
    photo_crops,
    stamp_composites,
    stamps,
)
from vq4all.sim.arch.cycles import layer_cycles
from vq4all.sim.arch.mapping import network_runs

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


def test_only_photographs_evaluate_and_never_calibrate(tmp_path, monkeypatch) -> None:
    (tmp_path / "backgrounds").mkdir()
    sizes = {"Aqua.jpg": 1, "Blinds.jpg": 1, "Dune_1920x1080.jpg": 2, "Dune_3840x2160.jpg": 8}
    for name, size in sizes.items():
        (tmp_path / "backgrounds" / name).write_bytes(b"x" * size)
    (tmp_path / "backgrounds" / "Storm.png").write_bytes(b"x")
    (tmp_path / "backgrounds" / "stripes.png").write_bytes(b"x")  # artwork
    monkeypatch.setattr(
        pictures_module, "BACKGROUND_DIRS", (tmp_path / "backgrounds", tmp_path / "wallpapers")
    )
    calibration, evaluation = pictures_module.backgrounds()
    assert [path.name for path in evaluation] == ["Blinds.jpg", "Storm.png"]
    # One file per picture (its largest size); the artwork only calibrates.
    assert [path.name for path in calibration] == ["Aqua.jpg", "Dune_3840x2160.jpg", "stripes.png"]


def test_stamps_are_cut_out_on_backgrounds_and_only_photographic(tmp_path) -> None:
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="apt-get install tuxpaint-stamps-default"):
        stamps(tmp_path)
    # An opaque red square in a transparent margin, a cartoon and a letter (left out).
    pixels = np.zeros((40, 20, 4), dtype=np.uint8)
    pixels[10:30, 5:15] = (255, 0, 0, 255)
    for folder in ("animals", "animals/cartoon", "symbols/alphabets"):
        (tmp_path / folder).mkdir(parents=True)
        Image.fromarray(pixels).save(tmp_path / folder / "red.png")
    found = stamps(tmp_path)
    assert found == [tmp_path / "animals" / "red.png"]
    composites = stamp_composites(found, ("coffee",), 3, seed=1, size=64)
    assert composites.shape == (3, 3, 64, 64)
    assert torch.equal(composites, stamp_composites(found, ("coffee",), 3, seed=1, size=64))
    red = torch.tensor([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225]).reshape(3, 1)
    for composite in composites:
        inside = torch.isclose(composite.reshape(3, -1), red, atol=1e-5).all(dim=0)
        rows, cols = inside.reshape(64, 64).nonzero().unbind(1)
        # The stamp's height is half to 95% of the side: its red square, half of that (less
        # the blended edge); the transparent margin leaves the coffee around it.
        assert 10 <= int(rows.max() - rows.min()) + 1 <= 31 and int(inside.sum()) < 64 * 64 / 4
    assert stamp_composites(found, ("coffee",), 0, size=64).shape == (0, 3, 64, 64)


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


@pytest.fixture(scope="module")
def exported():
    """MobileNetV2 with every sub-vector frozen to its nearest codeword of a K=256 codebook
    (no training: these tests check the export and the RTL, not the accuracy)."""
    return frozen_mobilenet(256)


def test_the_whole_network_exports_and_golden_follows_the_float_vq_model(exported) -> None:
    codebook, vq, program = exported
    kinds = [type(op).__name__ for op in program.graph]
    # 53 layers (every ReLU6 fused into one), 10 residual adds, one global average pooling.
    assert (len(program.layers), kinds.count("AddOp"), kinds.count("GlobalAvgPoolOp")) == (
        53,
        10,
        1,
    )
    assert "ReluOp" not in kinds
    assert [layer.conv.groups for layer in program.layers if layer.conv][:3] == [1, 32, 1]
    x = photo_crops(EVALUATION_PHOTOS[:1], 2, seed=3)
    with torch.no_grad():
        float_vq = vq(x)
    assert program.graph[-1] == LayerOp(len(program.graph) - 1, 52, "classifier.1")
    logits = program.layers[-1]
    golden = (run_network(codebook, program, x).to(torch.float64) - logits.output_zero_point) * (
        logits.output_scale
    )
    # The integer model tracks the float VQ model's logits (int16 quantization of every value).
    correlation = torch.corrcoef(torch.stack([golden.flatten(), float_vq.double().flatten()]))
    assert correlation[0, 1] > 0.999


@pytest.mark.verilator
@pytest.mark.slow
def test_the_whole_network_runs_on_the_rtl_from_a_folder_of_photos(exported, tmp_path) -> None:
    """Every layer op of MobileNetV2 (16-bit activations) on two photos, through
    ``vq4all simulate --network`` with the photos as a folder of image files: every layer's
    output bit-exact, and every layer's cycles those of the cycle model."""
    codebook, _, program = exported
    save_codebook(tmp_path / "codebook.safetensors", codebook)
    save_network(tmp_path / "mobilenetv2.safetensors", program)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in EVALUATION_PHOTOS[:2]:
        Image.fromarray(photo(name)).save(photos / f"{name}.png")
    normalize = [",".join(map(str, values)) for values in (IMAGENET_MEAN, IMAGENET_STD)]
    main(
        [
            *("simulate", "--network", str(tmp_path / "mobilenetv2.safetensors")),
            *("--data", str(photos), "--mean", normalize[0], "--std", normalize[1]),
            *("--images", "2", "--quiet", "-o", str(tmp_path / "run")),
        ]
    )
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["images"] == report["images_bit_exact"] == 2
    assert report["rtl_predictions_equal_golden"]
    runs = network_runs(program)
    kinds = Counter(run.kind for run in runs)
    assert kinds == {"conv": 1, "depthwise": 17, "pointwise": 34, "linear": 1}
    params = AcceleratorParams(**report["params"])
    assert [row["cycles"] for row in report["layers"]] == [
        layer_cycles(params, run) for run in runs
    ]
    # The photos as the folder reader gives them are the images that golden was run on.
    images, _ = load_images(photos, (3, 224, 224), (IMAGENET_MEAN, IMAGENET_STD))
    golden = run_network(codebook, program, images).to(torch.int64).argmax(dim=1)
    measured = json.loads((tmp_path / "run" / "results" / "network.json").read_text())
    assert [image["golden_prediction"] for image in measured["images"]] == golden.tolist()
