"""A network of the user's own: traced stages and BatchNorm folding on any model, the public
API and its report, data-free calibration, resumable runs, model files and data files, and the
errors that bad ones get."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
import safetensors.numpy
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import vq4all
from tests.programs import write_model_file
from vq4all.cli import main
from vq4all.model import compress as compress_module
from vq4all.model.baselines import uniform_rows
from vq4all.model.compress import CompressConfig, compress
from vq4all.model.datafree import DataFreeConfig, bn_statistics_images
from vq4all.model.export import export_network
from vq4all.model.graph import UnsupportedLayerError, fold_batchnorm, stages
from vq4all.model.metrics import fidelity
from vq4all.model.user import load_images, load_model, load_weights
from vq4all.model.vq import frozen_at_nearest, vq_layers

#: A short schedule: these tests check the mechanism, not the accuracy.
QUICK = CompressConfig(epochs=4)
SMALL_DATA_FREE = DataFreeConfig(count=16, steps=20, batch=16)


def test_stages_cut_at_residual_joins_and_compose_to_the_model(branchy) -> None:
    folded = fold_batchnorm(branchy)
    parts = stages(folded)
    # stem + ReLU6 | both branches to the residual join, pooling, view, dropout | head
    names = [sorted(name for name, _ in part.named_children()) for part in parts]
    assert names == [["stem"], ["drop", "left", "pool", "right"], ["head"]]
    x = torch.randn(4, 1, 8, 8)
    y = x
    for part in parts:
        y = part(y)
    assert torch.equal(y, folded(x))


def test_batchnorm_folds_in_any_model_and_keeps_layer_names(branchy) -> None:
    folded = fold_batchnorm(branchy)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert "stem" in dict(folded.named_modules())
    x = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(folded(x), branchy(x), atol=1e-5)


class _NormAfterPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.pool, self.norm = nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.norm(self.pool(self.conv(x)))


def test_a_batchnorm_that_cannot_fold_stays_for_the_export() -> None:
    model = _NormAfterPool().eval()
    model.norm.running_mean.uniform_()
    folded = fold_batchnorm(model)
    assert isinstance(folded.get_submodule("norm"), nn.BatchNorm2d)
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(folded(x), model(x))


def test_the_api_compresses_with_a_dataloader_and_reports(branchy, codebook, digits) -> None:
    loader = DataLoader(TensorDataset(digits.train_x, digits.train_y), batch_size=100)
    result = vq4all.compress(
        branchy, codebook, loader, held_out=[(digits.test_x, digits.test_y)], config=QUICK,
        progress=False,
    )  # fmt: skip
    report = result.report
    assert [layer.name for layer in report.layers] == ["stem", "left", "right", "head"]
    assert report.weights == 1 * 8 * 9 + 8 * 8 * 9 + 8 * 8 + 10 * 8
    index_bits = sum(layer.frozen.numel() for layer in vq_layers(result.model).values()) * 8
    scale_bits = 32 * (8 + 8 + 8 + 10)
    assert report.bits_per_weight == (index_bits + scale_bits) / report.weights
    assert set(report.held_out) == {"top1_agreement", "top5_overlap", "kl", "accuracy",
                                    "float_accuracy"}  # fmt: skip
    assert "1300 given images with labels" in report.format()
    assert all(bool(layer.frozen.all()) for layer in vq_layers(result.model).values())
    program = vq4all.export(result, codebook)
    assert [op.name for op in program.graph if hasattr(op, "name")] == [
        "stem", "left", "right", "head"
    ]  # fmt: skip


def test_without_data_the_images_come_from_batchnorm_statistics(
    branchy, codebook, digits, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("VQ4ALL_CACHE", str(tmp_path))
    result = vq4all.compress(
        branchy, codebook, None, digits.train_x[:1], config=QUICK, data_free=SMALL_DATA_FREE,
        progress=False,
    )  # fmt: skip
    assert result.calibration.shape == (16, 1, 8, 8)
    assert "16 images synthesised from BatchNorm statistics" in result.report.format()
    program = vq4all.export(result, codebook)
    assert len(program.layers) == 4
    # Cached by model hash: the second call reads the same images back.
    (cached,) = tmp_path.glob("datafree-*.safetensors")
    again = bn_statistics_images(branchy, (1, 8, 8), SMALL_DATA_FREE, progress=False)
    assert torch.equal(again, result.calibration)
    assert cached.exists()


def test_synthesised_images_match_the_batchnorm_statistics(branchy, tmp_path, monkeypatch):
    monkeypatch.setenv("VQ4ALL_CACHE", str(tmp_path))
    images = bn_statistics_images(branchy, (1, 8, 8), SMALL_DATA_FREE, progress=False)
    with torch.no_grad():
        feature = branchy.stem(images)
        noise = branchy.stem(torch.randn_like(images))
    norm = branchy.norm

    def error(x):
        return float((x.mean(dim=(0, 2, 3)) - norm.running_mean).norm())

    assert error(feature) < 0.5 * error(noise)


def test_data_free_needs_batchnorm(codebook, digits) -> None:
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(UnsupportedLayerError, match="has no BatchNorm2d.*give calibration data"):
        vq4all.compress(plain, codebook, None, digits.train_x[:1], progress=False)


class _WithBilinear(nn.Module):
    """A layer with weights and no GEMM form for the codebook."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 16)
        self.mix = nn.Bilinear(16, 16, 10)

    def forward(self, x):
        h = torch.relu(self.fc(torch.flatten(x, 1)))
        return self.mix(h, h)


def test_layers_without_a_gemm_form_are_listed_or_kept_in_int8(codebook, digits) -> None:
    model = _WithBilinear().eval()
    with pytest.raises(UnsupportedLayerError, match=r"1 layer\(s\) have no GEMM form for the "
                       r"codebook: mix \(Bilinear\); keep them in int8"):  # fmt: skip
        vq4all.compress(model, codebook, digits.train_x, progress=False)
    result = vq4all.compress(
        model, codebook, digits.train_x, config=QUICK, keep_unsupported=True, progress=False
    )
    kept = [layer for layer in result.report.layers if layer.storage == "int8"]
    assert [(layer.name, layer.kind, layer.weights) for layer in kept] == [
        ("mix", "Bilinear", 10 * 16 * 16)
    ]
    assert kept[0].bits == 10 * 16 * 16 * 8 + 10 * 32
    rows = uniform_rows(model.mix.weight.detach().reshape(10, -1).double(), 8).float()
    assert torch.equal(result.model.get_submodule("mix").weight.reshape(10, -1), rows)
    assert "kept int8: mix (Bilinear, 2,560 weights)" in result.report.format()
    # Stage by stage and tuned end to end, the kept layer does not train either.
    blockwise = CompressConfig(schedule="blockwise", block_steps=10, tune_steps=10)
    result = vq4all.compress(
        model, codebook, digits.train_x, config=blockwise, keep_unsupported=True, progress=False
    )
    mix = result.model.get_submodule("mix")
    assert torch.equal(mix.weight.reshape(10, -1), rows) and torch.equal(mix.bias, model.mix.bias)


def test_tuning_after_the_stages_fits_the_output_and_keeps_the_indices(
    branchy, codebook, digits
) -> None:
    stagewise = CompressConfig(schedule="blockwise", block_steps=30)
    results = [
        compress(branchy, codebook, digits.train_x, config=config, progress=False)
        for config in (stagewise, dataclasses.replace(stagewise, tune_steps=150))
    ]
    plain, tuned = (result.model for result in results)
    for name, layer in vq_layers(plain).items():
        assert torch.equal(layer.choice, vq_layers(tuned)[name].choice), name
    assert results[1].steps == results[0].steps + 150
    x = digits.test_x  # never seen in training
    kl = [fidelity(branchy, model, x)["kl"] for model in (plain, tuned)]
    assert kl[1] < kl[0], kl


def test_blockwise_stages_distil_on_as_many_images_as_their_cache_holds(
    branchy, codebook, digits, monkeypatch
) -> None:
    # Branchy's stages on 1x8x8 images: stem 64 -> 512 values, the branches 512 -> 8 (after
    # pooling), head 8 -> 10. Float and compressed inputs and outputs, float32: 2 * 4 bytes
    # per value. The cache holds the stem's values for 200 images.
    per_image = [2 * 4 * (64 + 512), 2 * 4 * (512 + 8), 2 * 4 * (8 + 10)]
    config = CompressConfig(
        schedule="blockwise", block_steps=20, cache_gib=200 * per_image[0] / 2**30
    )
    drawn = []
    original = compress_module._train

    def recording(network, module, batches, *args):
        taken = list(batches)
        drawn.append(int(torch.cat(taken).max()))
        return original(network, module, iter(taken), *args)

    monkeypatch.setattr(compress_module, "_train", recording)
    result = compress(branchy, codebook, digits.train_x, config=config, progress=False)
    held = [min(len(digits.train_x), 200 * per_image[0] // size) for size in per_image]
    assert held[:2] == [200, 221] and held[2] == len(digits.train_x)
    # 20 batches of 64 indices below each stage's count reach near its top.
    for most, count in zip(drawn, held, strict=True):
        assert count - 30 <= most < count, (drawn, held)
    assert all(layer.frozen.all() for layer in vq_layers(result.model).values())


def test_steps_by_size_give_the_larger_stages_more_steps(
    branchy, codebook, digits, monkeypatch
) -> None:
    # Sub-vectors of D=8: the stem 8 channels x ceil(9 / 8) = 16, the branches 8 x ceil(72 / 8)
    # + 8 x 1 = 80, the head 10 x 1 = 10; the mean stage 106 / 3. With 20 steps for it, the
    # branches take round(20 * 80 * 3 / 106) = 45, and the smaller stages no fewer than 20.
    planned = []
    original = compress_module._train

    def recording(network, module, batches, *args):
        taken = list(batches)
        planned.append(len(taken))
        return original(network, module, iter(taken), *args)

    monkeypatch.setattr(compress_module, "_train", recording)
    config = CompressConfig(schedule="blockwise", block_steps=20)
    for by_size, expected in ((False, [20, 20, 20]), (True, [20, 45, 20])):
        planned.clear()
        replaced = dataclasses.replace(config, steps_by_size=by_size)
        compress(branchy, codebook, digits.train_x, config=replaced, progress=False)
        assert planned == expected, by_size


def test_soft_targets_distil_the_output_from_the_float_model_not_the_labels(
    branchy, codebook, digits
) -> None:
    generator = torch.Generator().manual_seed(1)
    wrong = [torch.randint(10, (len(digits.train_x),), generator=generator) for _ in range(2)]
    config = CompressConfig(schedule="blockwise", block_steps=20)

    def output(labels, soft: bool) -> torch.Tensor:
        replaced = dataclasses.replace(config, soft_targets=soft)
        result = compress(branchy, codebook, digits.train_x, labels, replaced, progress=False)
        with torch.no_grad():
            return result.model(digits.test_x)

    # Cross-entropy follows the labels given; the KL from the float output ignores them.
    assert not torch.equal(output(wrong[0], False), output(wrong[1], False))
    assert torch.equal(output(wrong[0], True), output(wrong[1], True))


@pytest.mark.parametrize(
    ("config", "other"),
    [
        (
            CompressConfig(schedule="blockwise", block_steps=20),
            CompressConfig(schedule="blockwise", block_steps=10),
        ),
        (CompressConfig(epochs=4), CompressConfig(epochs=5)),
    ],
    ids=["blockwise", "joint"],
)
def test_an_interrupted_run_resumes_where_it_stopped(
    branchy, codebook, digits, tmp_path, monkeypatch, config, other
) -> None:
    """Stopped after its second stage (blockwise) or epoch (joint), a run started again goes
    on from there and ends with the uninterrupted run's model, bit for bit."""
    whole = compress(branchy, codebook, digits.train_x, config=config, progress=False)
    resume = tmp_path / "run.resume"
    original = compress_module._save_resume

    def interrupted(*args, **kwargs):
        original(*args, **kwargs)
        if torch.load(resume, weights_only=True)["done"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(compress_module, "_save_resume", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compress(branchy, codebook, digits.train_x, config=config, progress=False, resume=resume)
    monkeypatch.setattr(compress_module, "_save_resume", original)
    saved_steps = torch.load(resume, weights_only=True)["steps"]
    taken = []
    train = compress_module._train

    def counted(*args, **kwargs):
        taken.append(train(*args, **kwargs))
        return taken[-1]

    monkeypatch.setattr(compress_module, "_train", counted)
    resumed = compress(
        branchy, codebook, digits.train_x, config=config, progress=False, resume=resume
    )
    # It trained only the steps after those saved.
    assert 0 < saved_steps and sum(taken) == whole.steps - saved_steps
    assert (resumed.steps, resumed.frozen_by_pnc) == (whole.steps, whole.frozen_by_pnc)
    expected = whole.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    with pytest.raises(ValueError, match=r"run.resume: field 'key': left by a run of another"):
        compress(branchy, codebook, digits.train_x, config=other, progress=False, resume=resume)


def test_model_files_and_their_errors(model_file) -> None:
    model = load_weights(load_model(f"{model_file}/net.py:make"), model_file / "net.pt")
    assert type(model).__name__ == "Branchy"
    with pytest.raises(ValueError, match=r"net.py: has no factory 'build'"):
        load_model(f"{model_file}/net.py:build")
    with pytest.raises(FileNotFoundError, match=r"nowhere.py: no such model file"):
        load_model(f"{model_file}/nowhere.py:make")
    torch.save({"stem.weight": torch.zeros(1)}, model_file / "bad.pt")
    with pytest.raises(ValueError, match=r"bad.pt: does not fit the model: "):
        load_weights(model, model_file / "bad.pt")


def test_data_files_and_their_errors(tmp_path) -> None:
    images = np.random.default_rng(0).standard_normal((6, 1, 8, 8)).astype(np.float32)
    labels = np.arange(6)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    x, y = load_images(tmp_path / "d.npz", (1, 8, 8))
    assert np.array_equal(x.numpy(), images) and y.tolist() == list(range(6))
    safetensors.numpy.save_file({"x": images}, str(tmp_path / "d.safetensors"))
    x, y = load_images(tmp_path / "d.safetensors")
    assert x.shape == (6, 1, 8, 8) and y is None
    np.save(tmp_path / "flat.npy", images.reshape(6, 64))
    with pytest.raises(ValueError, match=r"flat.npy: field 'images': float32 \[6, 64\] is not"):
        load_images(tmp_path / "flat.npy")
    bad = images.copy()
    bad[2, 0, 3, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match=r"nan.npy: field 'images': contains NaN or inf"):
        load_images(tmp_path / "nan.npy")
    np.savez(tmp_path / "short.npz", images=images, labels=labels[:4])
    with pytest.raises(ValueError, match=r"short.npz: field 'labels': int64 \[4\] is not one"):
        load_images(tmp_path / "short.npz")
    np.savez(tmp_path / "keys.npz", pictures=images, labels=labels)
    with pytest.raises(ValueError, match=r"keys.npz: field 'images': missing"):
        load_images(tmp_path / "keys.npz")
    with pytest.raises(ValueError, match=r"d.npz: field 'images': \[1, 8, 8\] does not match"):
        load_images(tmp_path / "d.npz", (3, 8, 8))


def test_a_folder_of_images_is_resized_and_normalised(tmp_path) -> None:
    from PIL import Image

    for index in range(3):
        pixels = np.full((20, 30, 3), 60 * index, dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{index}.png")
    x, y = load_images(tmp_path, (3, 8, 8), ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    assert x.shape == (3, 3, 8, 8) and y is None
    assert torch.allclose(x[1], torch.full((3, 8, 8), (60 / 255 - 0.5) / 0.25))


def test_the_cli_refuses_a_layer_without_gemm_form_and_writes_nothing(
    tmp_path, codebook, capsys
) -> None:
    from vq4all.golden.codebook import save_codebook

    save_codebook(tmp_path / "cb.safetensors", codebook)
    tagger = write_model_file(
        tmp_path / "rnn.py",
        "class Tagger(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.rnn = nn.LSTM(8, 8)\n        self.out = nn.Linear(8, 10)\n\n"
        "    def forward(self, x):\n"
        "        return self.out(self.rnn(x.flatten(2).transpose(0, 1))[0][-1])\n",
        "Tagger",
    )
    np.save(tmp_path / "d.npy", np.zeros((4, 1, 8, 8), np.float32))
    code = main(
        ["compress", "--codebook", str(tmp_path / "cb.safetensors"), "--network",
         tagger, "--data", str(tmp_path / "d.npy"),
         "-o", str(tmp_path / "c.safetensors")]
    )  # fmt: skip
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert "1 layer(s) have no GEMM form for the codebook: rnn (LSTM)" in error
    assert not (tmp_path / "c.safetensors").exists()


def test_a_checkpoint_names_its_model_file(model_file, codebook, digits, tmp_path) -> None:
    from vq4all.golden.codebook import save_codebook
    from vq4all.golden.container import artifact_metadata

    save_codebook(tmp_path / "cb.safetensors", codebook)
    np.savez(tmp_path / "d.npz", images=digits.train_x.numpy(), labels=digits.train_y.numpy())
    argv = ["compress", "--codebook", str(tmp_path / "cb.safetensors"), "--network",
            f"{model_file}/net.py:make", "--weights", str(model_file / "net.pt"), "--data",
            str(tmp_path / "d.npz"), "--epochs", "3",
            "-o", str(tmp_path / "c.safetensors")]  # fmt: skip
    assert main(argv) == 0
    metadata = artifact_metadata(tmp_path / "c.safetensors")
    assert metadata["network"] == f"{model_file}/net.py:make"
    assert json.loads(metadata["input_shape"]) == [1, 8, 8] and metadata["dataset"] == ""
    assert not (tmp_path / "c.safetensors.resume").exists()


def _save_programs(branchy, directory) -> dict[str, str]:
    """Branchy saved as a user may have it: a torch.export file and a TorchScript file."""
    example = (torch.zeros(2, 1, 8, 8),)
    torch.export.save(torch.export.export(branchy, example), directory / "net.pt2")
    with warnings.catch_warnings():  # deprecated in torch, and still what users have
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(branchy), directory / "net.ts")
    return {"torch.export": str(directory / "net.pt2"), "torchscript": str(directory / "net.ts")}


def test_torch_export_and_torchscript_files_are_the_same_network(
    branchy, codebook, digits, tmp_path
) -> None:
    for kind, path in _save_programs(branchy, tmp_path).items():
        model = load_model(path, (1, 8, 8))
        assert dict(model.state_dict()).keys() == branchy.state_dict().keys(), kind
        with torch.no_grad():
            assert torch.equal(model(digits.test_x), branchy(digits.test_x)), kind
        # Layers are modules again, so that they fold, compress and export as the original.
        assert [type(m).__name__ for m in fold_batchnorm(model).children()] == [
            "Conv2d", "Conv2d", "Conv2d", "MaxPool2d", "Linear"
        ], kind  # fmt: skip
    with pytest.raises(ValueError, match=r"net.ts: a TorchScript model needs its input shape"):
        load_model(str(tmp_path / "net.ts"))
    torch.save(branchy.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match=r"weights.pt: holds neither a torch.export program nor"):
        load_model(str(tmp_path / "weights.pt"))

    # An op with no integer form stays an ATen call, which the export names with its source.
    class Sorter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return torch.sort(self.fc(torch.flatten(x, 1)), dim=1).values

    example = (torch.zeros(2, 1, 8, 8),)
    torch.export.save(torch.export.export(Sorter().eval(), example), tmp_path / "sorter.pt2")
    sorter = frozen_at_nearest(load_model(str(tmp_path / "sorter.pt2")), codebook)
    line = Sorter.forward.__code__.co_firstlineno + 1
    with pytest.raises(
        UnsupportedLayerError,
        match=rf"node 'sort' \(call_function sort.default\) at .*test_user.py:{line} has no",
    ):
        export_network(sorter, codebook, digits.test_x[:8])
    (tmp_path / "junk.pt2").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"junk.pt2: not a torch.export or TorchScript file"):
        load_model(str(tmp_path / "junk.pt2"))


def test_the_cli_compresses_and_exports_program_files_as_the_python_model(
    branchy, model_file, codebook, digits, tmp_path
) -> None:
    """The same network as a Python file, a torch.export file and a TorchScript file:
    compressed and exported through the CLI, all three give the same program, bit for bit."""
    from vq4all.golden.codebook import save_codebook
    from vq4all.golden.container import artifact_metadata
    from vq4all.golden.network import LayerOp, load_network

    save_codebook(tmp_path / "cb.safetensors", codebook)
    few = slice(0, 256)  # the mechanism, not the accuracy
    np.savez(
        tmp_path / "d.npz", images=digits.train_x[few].numpy(), labels=digits.train_y[few].numpy()
    )
    specs = {"python": f"{model_file}/net.py:make"} | _save_programs(branchy, tmp_path)
    programs = {}
    for kind, spec in specs.items():
        checkpoint, program = tmp_path / f"{kind}.safetensors", tmp_path / f"{kind}.program"
        argv = [
            "compress",
            "--codebook",
            str(tmp_path / "cb.safetensors"),
            "--network",
            spec,
            "--data",
            str(tmp_path / "d.npz"),
            "--epochs",
            "2",
            "-o",
            str(checkpoint),
        ]
        if kind == "python":
            argv += ["--weights", str(model_file / "net.pt")]  # fmt: skip
        assert main(argv) == 0, kind
        assert artifact_metadata(checkpoint)["network"] == spec
        assert main(["export", "--codebook", str(tmp_path / "cb.safetensors"), "--compressed",
                     str(checkpoint), "-o", str(program)]) == 0  # fmt: skip
        programs[kind] = artifact_metadata(program)["payload_sha256"]  # tensors and fields
    names = [op.name for op in load_network(program).graph if isinstance(op, LayerOp)]
    assert names == ["stem", "left", "right", "head"]
    assert programs["torch.export"] == programs["python"] == programs["torchscript"]


def test_a_codebook_is_built_from_model_files_too(branchy, model_file, tmp_path, capsys) -> None:
    from vq4all.golden.codebook import load_codebook

    programs = _save_programs(branchy, tmp_path)
    sources = [f"{model_file}/net.py:make", programs["torch.export"], programs["torchscript"]]
    output = tmp_path / "cb.safetensors"
    argv = ["codebook", "--sources", ",".join(sources), "--input-shape", "1,8,8",
            "--K", "256", "--D", "4", "-o", str(output)]  # fmt: skip
    assert main(argv) == 0
    provenance = load_codebook(output).provenance
    assert sorted(provenance["sources"]) == sorted(sources)
    # The same network three times: the same sub-vectors of the same layers from each.
    assert len({json.dumps(layers) for layers in provenance["sources"].values()}) == 1
    assert "stem" in provenance["sources"][sources[0]]
    missing = str(tmp_path / "gone.pt2")
    argv[2] = f"{sources[1]},{missing}"
    argv[-1] = str(tmp_path / "none.safetensors")
    assert main(argv) == 2
    assert "gone.pt2" in capsys.readouterr().err
    assert not (tmp_path / "none.safetensors").exists()
