"""Artifact round trips, and a clear error naming the file and field for every bad input."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from tests.files import edit_as_another_tool, flip_bit, rewrite_header
from vq4all.golden.codebook import Codebook, load_codebook, save_codebook
from vq4all.golden.container import FORMAT_VERSION, ArtifactError
from vq4all.golden.fileio import make_directory, write_atomically
from vq4all.golden.layer import ConvGeometry, LayerProgram, load_layer, save_layer
from vq4all.golden.synthetic import random_codebook, random_layer


@pytest.fixture
def layer(codebook, rng) -> LayerProgram:
    return random_layer(codebook, 12, 37, relu=True, rng=rng)


def test_codebook_round_trip(tmp_path, codebook) -> None:
    save_codebook(tmp_path / "cb.safetensors", codebook)
    loaded = load_codebook(tmp_path / "cb.safetensors")
    assert np.array_equal(loaded.codewords, codebook.codewords)
    assert loaded.sha256 == codebook.sha256
    assert loaded.provenance == codebook.provenance
    assert loaded.scale == codebook.scale


def test_codebook_hash_depends_on_content_and_shape(codebook) -> None:
    changed = codebook.codewords.copy()
    changed[7, 3] ^= 1
    assert Codebook(changed, codebook.scale).sha256 != codebook.sha256
    reshaped = codebook.codewords.reshape(512, 4)
    assert Codebook(reshaped, codebook.scale).sha256 != codebook.sha256


def test_layer_round_trip(tmp_path, codebook, layer) -> None:
    save_layer(tmp_path / "l.safetensors", layer)
    loaded = load_layer(tmp_path / "l.safetensors", codebook)
    for name in ("indices", "bias", "mult", "shift"):
        assert np.array_equal(getattr(loaded, name), getattr(layer, name))
    assert (loaded.relu, loaded.in_features, loaded.kind) == (True, 37, "linear")


def test_conv_layer_round_trip(tmp_path, codebook, rng) -> None:
    base = random_layer(codebook, 6, 27, relu=False, rng=rng)
    conv = dataclasses.replace(base, kind="conv2d", conv=ConvGeometry(3, (3, 3), (2, 2), (1, 1), 1))
    save_layer(tmp_path / "c.safetensors", conv)
    assert load_layer(tmp_path / "c.safetensors").conv == conv.conv


def test_the_same_artifact_is_the_same_bytes(tmp_path, layer) -> None:
    save_layer(tmp_path / "a.safetensors", layer)
    save_layer(tmp_path / "b.safetensors", layer)
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_zero_points_round_trip_and_must_be_int8(tmp_path, layer) -> None:
    shifted = dataclasses.replace(layer, input_zero_point=-128, output_zero_point=-128)
    save_layer(tmp_path / "z.safetensors", shifted)
    loaded = load_layer(tmp_path / "z.safetensors")
    assert (loaded.input_zero_point, loaded.output_zero_point) == (-128, -128)
    for value in (128, -129, 1.5, True):
        with pytest.raises(ArtifactError, match=rf"field 'input_zero_point': {value!r} is not"):
            dataclasses.replace(layer, input_zero_point=value)
    path = tmp_path / "bad.safetensors"
    save_layer(path, layer)
    edit_as_another_tool(path, lambda metadata: metadata.update(output_zero_point="200"))
    with pytest.raises(ArtifactError, match=rf"{path}: field 'output_zero_point': 200 is not"):
        load_layer(path)


def _write_as_another_tool(path, layer: LayerProgram, **arrays: np.ndarray) -> None:
    """Write ``layer`` with some arrays replaced, bypassing validation but with a correct
    payload hash: a well-formed file whose content is wrong."""
    save_layer(path, layer)
    edit_as_another_tool(path, lambda metadata: None, **arrays)


def test_index_out_of_range_names_file_and_field(tmp_path, codebook, layer) -> None:
    indices = layer.indices.copy()
    indices[3, 2] = codebook.K
    with pytest.raises(
        ArtifactError, match=r"<memory>: field 'indices': index 256 is out of range"
    ):
        dataclasses.replace(layer, indices=indices)
    path = tmp_path / "l.safetensors"
    indices[3, 2] = 999
    _write_as_another_tool(path, layer, indices=indices)
    with pytest.raises(ArtifactError, match=rf"{path}: field 'indices': index 999 is out of range"):
        load_layer(path)


def test_wrong_dtype_and_shape_in_a_file(tmp_path, layer) -> None:
    path = tmp_path / "l.safetensors"
    _write_as_another_tool(path, layer, bias=layer.bias.astype(np.int32))
    with pytest.raises(
        ArtifactError, match=rf"{path}: field 'bias': dtype is int32, expected int64"
    ):
        load_layer(path)
    _write_as_another_tool(path, layer, shift=layer.shift[:-1])
    with pytest.raises(
        ArtifactError, match=rf"{path}: field 'shift': shape \(11,\) does not match"
    ):
        load_layer(path)


def test_mismatched_codebook_hash(tmp_path, layer) -> None:
    save_layer(tmp_path / "l.safetensors", layer)
    other = random_codebook(256, 8, seed=1)
    with pytest.raises(
        ArtifactError, match=r"l.safetensors: field 'codebook_sha256': .* does not match"
    ):
        load_layer(tmp_path / "l.safetensors", other)


def test_wrong_dtype(tmp_path, layer) -> None:
    with pytest.raises(ArtifactError, match=r"field 'bias': dtype is int32, expected int64"):
        dataclasses.replace(layer, bias=layer.bias.astype(np.int32))
    save_layer(tmp_path / "l.safetensors", layer)
    rewrite_header(tmp_path / "l.safetensors", lambda h: h["shift"].update(dtype="U32"))
    with pytest.raises(ArtifactError, match=r"l.safetensors: field 'payload_sha256'"):
        load_layer(tmp_path / "l.safetensors")


def test_shapes_that_do_not_add_up(layer) -> None:
    with pytest.raises(
        ArtifactError, match=r"field 'indices': shape \(12, 5\) does not add up: N=50"
    ):
        dataclasses.replace(layer, in_features=50)
    with pytest.raises(ArtifactError, match=r"field 'mult': shape \(11,\) does not match M=12"):
        dataclasses.replace(layer, mult=layer.mult[:11])
    with pytest.raises(
        ArtifactError, match=r"field 'conv': 3/1 channels x kernel \(3, 3\) = 27 inputs"
    ):
        dataclasses.replace(layer, kind="conv2d", conv=ConvGeometry(3, (3, 3)))


def test_accumulator_overflow_and_requant_ranges(layer) -> None:
    bias = layer.bias.copy()
    bias[4] = 2**31 - 1
    with pytest.raises(
        ArtifactError, match=r"field 'bias': channel 4: .* can overflow the 32-bit accumulator"
    ):
        dataclasses.replace(layer, bias=bias)
    # int16 activations have a 40-bit accumulator: room for that bias, not for 2**39 - 1.
    dataclasses.replace(layer, bias=bias, activation_bits=16)
    bias[4] = 2**39 - 1
    with pytest.raises(
        ArtifactError,
        match=r"field 'bias': channel 4: \|bias\| \+ 40 \* 128 \* 32768 = .* can overflow the "
        r"40-bit accumulator",
    ):
        dataclasses.replace(layer, bias=bias, activation_bits=16)
    with pytest.raises(ArtifactError, match=r"field 'shift': value 0 is out of range \[1, 48\]"):
        dataclasses.replace(layer, shift=np.zeros_like(layer.shift))
    with pytest.raises(ArtifactError, match=r"field 'mult': value 65536 is out of range"):
        dataclasses.replace(layer, mult=np.full_like(layer.mult, 65536))


def test_activation_widths_and_their_zero_points(tmp_path, layer) -> None:
    wide = dataclasses.replace(layer, activation_bits=16, input_zero_point=-32768)
    save_layer(tmp_path / "wide.safetensors", wide)
    assert load_layer(tmp_path / "wide.safetensors").activation_bits == 16
    with pytest.raises(
        ArtifactError, match=r"field 'input_zero_point': -32768 is not a 8-bit activation value"
    ):
        dataclasses.replace(wide, activation_bits=8)
    with pytest.raises(ArtifactError, match=r"field 'activation_bits': 12 is not one of \(8, 16\)"):
        dataclasses.replace(layer, activation_bits=12)
    path = tmp_path / "l.safetensors"
    save_layer(path, layer)
    edit_as_another_tool(path, lambda metadata: metadata.update(activation_bits="sixteen"))
    with pytest.raises(
        ArtifactError, match=rf"{path}: field 'activation_bits': cannot parse 'sixteen'"
    ):
        load_layer(path)
    # Layers of version 3 had no width and an int32 bias: they are refused by version.
    edit_as_another_tool(path, lambda metadata: metadata.update(version="3"))
    with pytest.raises(ArtifactError, match=rf"{path}: field 'version': '3' is not '4'"):
        load_layer(path)


def test_nan_codebook_scale(codebook) -> None:
    with pytest.raises(ArtifactError, match=r"field 'scale': nan is not a positive finite number"):
        Codebook(codebook.codewords, float("nan"))


@pytest.mark.parametrize("cut", [4, 100, -10], ids=["header-length", "header", "data"])
def test_truncated_file(tmp_path, layer, cut) -> None:
    path = tmp_path / "l.safetensors"
    save_layer(path, layer)
    raw = path.read_bytes()
    path.write_bytes(raw[:cut])
    with pytest.raises(ArtifactError, match=rf"{path}: not a readable safetensors file"):
        load_layer(path)


def test_corrupted_codebook_bytes(tmp_path, codebook) -> None:
    path = tmp_path / "cb.safetensors"
    save_codebook(path, codebook)
    flip_bit(path, 5)
    with pytest.raises(ArtifactError, match=rf"{path}: field 'payload_sha256': .* \(corrupted"):
        load_codebook(path)


def test_codewords_that_do_not_match_their_identity(tmp_path, codebook) -> None:
    """A tool that changed the codewords and re-signed the file still cannot pass them off as
    the codebook that programs name."""
    path = tmp_path / "cb.safetensors"
    save_codebook(path, codebook)
    changed = codebook.codewords.copy()
    changed[5, 0] ^= 1
    edit_as_another_tool(path, lambda metadata: None, codewords=changed)
    with pytest.raises(ArtifactError, match=rf"{path}: field 'sha256': .* \(corrupted\)"):
        load_codebook(path)


def test_corrupted_layer_bytes(tmp_path, layer) -> None:
    path = tmp_path / "l.safetensors"
    save_layer(path, layer)
    flip_bit(path, 3)
    with pytest.raises(ArtifactError, match=rf"{path}: field 'payload_sha256'"):
        load_layer(path)


def test_a_codebook_is_not_a_layer(tmp_path, codebook) -> None:
    save_codebook(tmp_path / "cb.safetensors", codebook)
    with pytest.raises(
        ArtifactError, match=r"field 'format': 'vq4all.codebook' is not 'vq4all.layer'"
    ):
        load_layer(tmp_path / "cb.safetensors")


def test_failed_write_leaves_nothing(tmp_path, codebook, monkeypatch) -> None:
    import vq4all.golden.fileio

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(vq4all.golden.fileio.os, "replace", explode)
    with pytest.raises(OSError, match="disk full"):
        save_codebook(tmp_path / "cb.safetensors", codebook)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("in_features", "36"), ("relu", "false"), ("input_scale", "0.5"), ("kind", "conv2d")],
)
def test_every_field_that_changes_the_result_is_hashed(tmp_path, layer, field, value) -> None:
    """An edit by hand of a field that changes what is computed (36 instead of 37 inputs is
    still 5 indices per row) does not load."""
    path = tmp_path / "l.safetensors"
    save_layer(path, layer)
    rewrite_header(path, lambda header: header["__metadata__"].update({field: value}))
    with pytest.raises(ArtifactError, match=rf"{path}: field 'payload_sha256': .* edited"):
        load_layer(path)


def test_codebook_scale_and_provenance_are_hashed(tmp_path, codebook) -> None:
    path = tmp_path / "cb.safetensors"
    for field, value in (("scale", "0.5"), ("provenance", "{}")):
        save_codebook(path, codebook)
        edit = {field: value}
        rewrite_header(path, lambda header, edit=edit: header["__metadata__"].update(edit))
        with pytest.raises(ArtifactError, match=rf"{path}: field 'payload_sha256'"):
            load_codebook(path)


def test_another_format_version_is_named(tmp_path, codebook) -> None:
    path = tmp_path / "cb.safetensors"
    save_codebook(path, codebook)
    edit_as_another_tool(path, lambda metadata: metadata.update(version="1"))
    with pytest.raises(
        ArtifactError,
        match=rf"{path}: field 'version': '1' is not '3' or '4' or '5' or '{FORMAT_VERSION}'",
    ):
        load_codebook(path)


def test_writing_into_a_missing_directory_or_onto_a_directory(tmp_path) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        write_atomically(tmp_path / "nowhere" / "cb.safetensors", b"x")
    assert missing.value.filename == str(tmp_path / "nowhere")
    with pytest.raises(IsADirectoryError) as directory:
        write_atomically(tmp_path, b"x")
    assert directory.value.filename == str(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError) as not_directory:
        make_directory(tmp_path / "file" / "out")
    assert not_directory.value.filename == str(tmp_path / "file")
    assert sorted(os.listdir(tmp_path)) == ["file"]
