"""VQ4ALL in PyTorch on real data (sklearn digits): the universal codebook, candidate
assignments, PNC, export, and golden integer inference of the exported program."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import SOURCES
from tests.files import edit_as_another_tool, flip_bit
from vq4all.golden.container import FORMAT_VERSION, ArtifactError
from vq4all.golden.network import load_network, predictions, save_network
from vq4all.model.checkpoint import load_compressed, save_compressed
from vq4all.model.codebook import build_codebook
from vq4all.model.compress import CompressConfig, compress
from vq4all.model.export import export_network
from vq4all.model.vq import (
    UnsupportedLayerError,
    VQWeight,
    nearest_codewords,
    prepare_vq,
    vq_layers,
)
from vq4all.model.workloads.zoo import evaluate

#: Every test here trains the zoo (a few seconds each) or compresses a network.
pytestmark = pytest.mark.slow

#: Compressed, and not among the codebook's sources.
TARGET = "dscnn"
#: Accuracy floor on the 497 held-out digits; the float dscnn reaches about 98%.
ACCURACY_FLOOR = 93.0


@pytest.fixture(scope="module")
def compressed(compressed_zoo):
    return compressed_zoo(TARGET)


@pytest.fixture(scope="module")
def program(compressed, universal, digits):
    return export_network(compressed.model, universal, digits.calibration(), digits.name)


def test_float_zoo_learns_digits(zoo, digits) -> None:
    for name, model in zoo.items():
        assert evaluate(model, digits.test_x, digits.test_y) >= ACCURACY_FLOOR, name


def test_codebook_provenance(universal) -> None:
    assert (universal.K, universal.D) == (65536, 8)
    assert universal.codewords.dtype == np.int8 and np.abs(universal.codewords).max() == 127
    provenance = universal.provenance
    assert set(provenance["sources"]) == set(SOURCES)
    assert provenance["bandwidth_rule"] == "scott" and provenance["seed"] == 0
    assert provenance["subvectors_sampled"] > 100_000


def test_network_outside_the_sources_compresses_accurately(zoo, compressed, digits) -> None:
    assert TARGET not in SOURCES
    accuracy = evaluate(compressed.model, digits.test_x, digits.test_y)
    assert accuracy >= ACCURACY_FLOOR
    assert accuracy >= evaluate(zoo[TARGET], digits.test_x, digits.test_y) - 2.0
    assert compressed.frozen_by_pnc >= 0.95, "PNC should freeze nearly all sub-vectors itself"
    for layer in vq_layers(compressed.model).values():
        assert bool(layer.frozen.all())
        ratios = layer.ratios()
        assert torch.equal(ratios.max(dim=-1).values, torch.ones_like(ratios[..., 0]))


def test_blockwise_schedule_compresses_accurately(zoo, universal, digits) -> None:
    config = CompressConfig(schedule="blockwise", block_steps=150)
    result = compress(
        zoo[TARGET], universal, digits.train_x, digits.train_y, config, progress=False
    )
    accuracy = evaluate(result.model, digits.test_x, digits.test_y)
    assert accuracy >= ACCURACY_FLOOR
    assert accuracy >= evaluate(zoo[TARGET], digits.test_x, digits.test_y) - 2.0
    layers = vq_layers(result.model)
    assert all(bool(layer.frozen.all()) for layer in layers.values())
    assert 0 < result.steps <= (len(layers) + 1) * 150 and result.frozen_by_pnc >= 0.95
    program = export_network(result.model, universal, digits.calibration())
    with torch.no_grad():
        float_vq = result.model(digits.test_x).argmax(dim=1).numpy()
    assert (predictions(universal, program, digits.test_x) == float_vq).mean() >= 0.99


def test_unknown_schedule_is_refused(zoo, universal, digits) -> None:
    with pytest.raises(ValueError, match="schedule 'greedy' is not one of joint, blockwise"):
        compress(zoo[TARGET], universal, digits.train_x, config=CompressConfig(schedule="greedy"))


def test_golden_integer_inference_matches_the_vq_model(
    compressed, program, universal, digits
) -> None:
    golden = predictions(universal, program, digits.test_x)
    with torch.no_grad():
        float_vq = compressed.model(digits.test_x).argmax(dim=1).numpy()
    assert (golden == float_vq).mean() >= 0.99
    assert 100 * (golden == digits.test_y.numpy()).mean() >= ACCURACY_FLOOR


def test_program_round_trip_is_exact(program, universal, digits, tmp_path) -> None:
    save_network(tmp_path / "net.safetensors", program)
    loaded = load_network(tmp_path / "net.safetensors", universal)
    assert loaded.graph == program.graph
    assert np.array_equal(
        predictions(universal, loaded, digits.test_x),
        predictions(universal, program, digits.test_x),
    )


def test_checkpoint_round_trip(compressed, universal, digits, tmp_path) -> None:
    save_compressed(
        tmp_path / "c.safetensors",
        compressed.model,
        TARGET,
        digits.image_shape,
        universal,
        8,
        digits.name,
        digits.calibration(),
    )
    checkpoint = load_compressed(tmp_path / "c.safetensors", universal)
    assert (checkpoint.network, checkpoint.dataset) == (TARGET, "digits")
    assert torch.equal(checkpoint.calibration, digits.calibration())
    with torch.no_grad():
        assert torch.equal(checkpoint.model(digits.test_x), compressed.model(digits.test_x))


def test_same_seed_same_codebook_and_indices(zoo, universal, program, digits) -> None:
    again = build_codebook({name: zoo[name] for name in SOURCES}, K=65536, D=8, seed=0)
    assert again.sha256 == universal.sha256
    other = build_codebook({name: zoo[name] for name in SOURCES}, K=65536, D=8, seed=1)
    assert other.sha256 != universal.sha256
    rerun = export_network(
        compress(zoo[TARGET], again, digits.train_x, digits.train_y, progress=False).model,
        again,
        digits.calibration(),
    )
    for first, second in zip(program.layers, rerun.layers, strict=True):
        assert np.array_equal(first.indices, second.indices)


def test_candidates_start_inversely_proportional_to_distance(zoo, universal) -> None:
    layer = zoo["mlp"][1]
    vq = VQWeight(layer.weight, universal, candidates=8)
    rows = layer.weight.detach().double()
    vectors = (rows / rows.pow(2).mean(dim=1, keepdim=True).sqrt()).reshape(-1, 8)
    distances = (vectors[:, None, :] - vq.codebook.double()[vq.candidates.reshape(-1, 8)]).norm(
        dim=-1
    )
    ratios = vq.soft_ratios().reshape(-1, 8).double()
    # r_i / r_0 = d_0 / d_i
    assert torch.allclose(ratios / ratios[:, :1], distances[:, :1] / distances, rtol=1e-4)


def test_nearest_codewords_equals_brute_force(universal) -> None:
    generator = torch.Generator().manual_seed(0)
    codewords = torch.from_numpy(universal.codewords[:5000]).double() * universal.scale
    vectors = torch.randn(300, 8, generator=generator, dtype=torch.float64)
    index, distance = nearest_codewords(vectors, codewords, 4)
    brute = torch.cdist(vectors, codewords).topk(4, largest=False)
    assert torch.equal(index, brute.indices)
    assert torch.allclose(distance, brute.values)


def test_nan_weights_name_the_layer(zoo, universal) -> None:
    broken = copy.deepcopy(zoo["mlp"])
    broken[3].weight.data[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"network 'mlp': layer '3': weights contain NaN or inf"):
        build_codebook({"mlp": broken}, K=256, D=8)
    with pytest.raises(ValueError, match=r"layer '3': weights contain NaN or inf"):
        prepare_vq(broken, universal)


def test_the_weighting_shares_the_density_between_networks() -> None:
    # 100 sub-vectors of all ones against 300 of all minus ones: a codeword's sign tells
    # which network's density it was drawn from.
    ones, minus_ones = nn.Linear(8, 100, bias=False), nn.Linear(8, 300, bias=False)
    nn.init.constant_(ones.weight, 1.0)
    nn.init.constant_(minus_ones.weight, -1.0)
    networks = {"small": nn.Sequential(ones), "large": nn.Sequential(minus_ones)}
    shares = {}
    for weighting in ("equal", "size"):
        codebook = build_codebook(networks, K=4096, D=8, weighting=weighting)
        assert codebook.provenance["weighting"] == weighting
        shares[weighting] = float((codebook.codewords.astype(np.int64).sum(axis=1) > 0).mean())
    assert shares["equal"] == pytest.approx(0.5, abs=0.03)
    assert shares["size"] == pytest.approx(0.25, abs=0.03)
    with pytest.raises(ValueError, match=r"weighting 'layers' is not one of equal, size"):
        build_codebook(networks, K=256, D=8, weighting="layers")


def test_unsupported_layers_are_listed(universal) -> None:
    model = nn.Sequential(
        nn.Embedding(10, 8), nn.Linear(8, 4), nn.LSTM(4, 4), nn.ConvTranspose2d(1, 1, 3)
    )
    with pytest.raises(
        UnsupportedLayerError,
        match=r"3 layer\(s\) with weights: 0 \(Embedding\), 2 \(LSTM\), 3 \(ConvTranspose2d\)",
    ):
        prepare_vq(model, universal)


def test_a_codebook_of_another_d_is_refused(program, digits, tmp_path, zoo) -> None:
    save_network(tmp_path / "net.safetensors", program)
    other = build_codebook({"mlp": zoo["mlp"]}, K=256, D=4)
    with pytest.raises(ArtifactError, match=r"net.safetensors: field 'codebook_sha256'"):
        load_network(tmp_path / "net.safetensors", other)


@pytest.fixture
def checkpoint(compressed, universal, digits, tmp_path) -> Path:
    path = tmp_path / "c.safetensors"
    save_compressed(
        path,
        compressed.model,
        TARGET,
        digits.image_shape,
        universal,
        8,
        "digits",
        digits.calibration(4),
    )
    return path


def test_malformed_checkpoint_names_the_field(checkpoint, universal) -> None:
    path = checkpoint
    edit_as_another_tool(path, lambda metadata: metadata.update(candidates="eight"))
    with pytest.raises(ArtifactError, match=rf"{path}: field 'candidates': cannot parse 'eight'"):
        load_compressed(path, universal)
    edit_as_another_tool(path, lambda metadata: metadata.update(candidates="8", network="vgg"))
    with pytest.raises(ArtifactError, match=r"field 'network': no network 'vgg' in the zoo"):
        load_compressed(path, universal)
    edit_as_another_tool(path, lambda metadata: metadata.update(network="dscnn", version="1"))
    with pytest.raises(
        ArtifactError,
        match=rf"{path}: field 'version': '1' is not '3' or '4' or '5' or '{FORMAT_VERSION}'",
    ):
        load_compressed(path, universal)


def test_edited_checkpoint_is_refused(checkpoint, universal) -> None:
    path = checkpoint
    flip_bit(path, 100)
    with pytest.raises(ArtifactError, match=rf"{path}: field 'payload_sha256'"):
        load_compressed(path, universal)
