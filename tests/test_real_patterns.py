"""Patterns that real networks of other authors are written in, each in a small network
trained on digits in seconds: captured by torch.export, compressed, exported with the host ops
they need, and run whole on the RTL, bit-exact and in the model's cycles; and a network that
would not export, refused before compression starts."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import vq4all
from tests.programs import AudioNet, EfficientBlock, write_model_file
from vq4all.cli import main
from vq4all.golden.codebook import save_codebook
from vq4all.golden.network import load_network, predictions, run_network, save_network
from vq4all.model.compress import CompressConfig
from vq4all.model.export import export_network
from vq4all.model.graph import UnsupportedLayerError, fold_batchnorm, stages
from vq4all.model.program import capture
from vq4all.model.vq import frozen_at_nearest
from vq4all.model.workloads.vit import TinyViT
from vq4all.model.workloads.zoo import evaluate, train_float

QUICK = CompressConfig(epochs=4)


def _trained(network: type[nn.Module], digits, epochs: int = 8) -> nn.Module:
    torch.manual_seed(0)
    return train_float(network(), digits, epochs=epochs, progress=False)


def _simulated(program, codebook, images: torch.Tensor, tmp_path) -> dict:
    """``vq4all simulate``'s report of ``program`` on ``images``, from files."""
    save_codebook(tmp_path / "codebook.safetensors", codebook)
    save_network(tmp_path / "net.safetensors", program)
    np.save(tmp_path / "test.npy", images.numpy())
    out = tmp_path / "run"
    argv = ["simulate", "--network", str(tmp_path / "net.safetensors"), "--codebook",
            str(tmp_path / "codebook.safetensors"), "--data", str(tmp_path / "test.npy"),
            "--images", str(len(images)), "--quiet", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == report["images_bit_exact"] == len(images)
    assert len(report["layers"]) == len(program.layers)
    assert all(row["cycles"] == row["model_cycles"] for row in report["layers"])
    assert report["rtl_predictions_equal_golden"]
    return report


@pytest.mark.parametrize(
    ("network", "ops"),
    [
        (EfficientBlock, {"pad", "lookup", "mul", "affine", "globalavgpool"}),
        (AudioNet, {"slice", "reshape", "affine"}),
    ],
)
@pytest.mark.verilator
@pytest.mark.slow
def test_a_network_of_real_patterns_runs_whole_on_the_rtl(
    network, ops, codebook, digits, tmp_path
) -> None:
    model = _trained(network, digits)
    result = vq4all.compress(model, codebook, digits.train_x, progress=False, config=QUICK)
    program = vq4all.export(result, codebook)
    assert ops <= {op.op for op in program.graph}
    # Golden's integers follow the float VQ model they were exported from.
    float_vq = result.model(digits.test_x).argmax(1).numpy()
    golden = predictions(codebook, program, digits.test_x)
    assert (golden == float_vq).mean() >= 0.9
    _simulated(program, codebook, digits.test_x[:3], tmp_path)


@pytest.mark.verilator
@pytest.mark.slow
def test_a_vision_transformer_runs_whole_on_the_rtl(codebook, digits, tmp_path) -> None:
    """Patch embedding, a class token, position embeddings, multi-head attention (softmax and
    two matrix products of activations), LayerNorm and GELU MLPs."""
    model = _trained(TinyViT, digits, epochs=60)
    assert evaluate(model, digits.test_x, digits.test_y) >= 95
    result = vq4all.compress(model, codebook, digits.train_x, progress=False, config=QUICK)
    program = vq4all.export(result, codebook)
    assert {"constant", "concat", "layernorm", "softmax", "matmul", "lookup"} <= {
        op.op for op in program.graph
    }
    float_vq = result.model(digits.test_x).argmax(1).numpy()
    golden = predictions(codebook, program, digits.test_x)
    assert (golden == float_vq).mean() >= 0.97
    _simulated(program, codebook, digits.test_x[:20], tmp_path)


def test_torch_export_sees_through_python_structure(digits) -> None:
    """A Conv2d subclass is its convolution, ``if embed:`` the branch taken, ``x.size(0)`` the
    batch: the stages that distillation compares are cut between the layers."""
    audio = _trained(AudioNet, digits)
    with pytest.raises(UnsupportedLayerError, match="cannot be traced by torch.fx"):
        fold_batchnorm(audio)  # torch.fx cannot follow the branch
    captured = capture(audio, digits.train_x[:4])
    x = digits.test_x[:5]
    assert torch.allclose(captured(x), audio(x), atol=1e-5)
    assert len(stages(fold_batchnorm(captured))) == 3
    efficient = capture(_trained(EfficientBlock, digits), digits.train_x[:4])
    kinds = {type(module).__name__ for module in efficient.modules()}
    assert "SameConv2d" not in kinds and "Conv2d" in kinds


class _SizeKeepsInputAlive(nn.Module):
    """Reads the input's size at the end, through torch.fx: the input stays alive."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(64, 64) for _ in range(7))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        y = x.flatten(1)
        for layer in self.layers:
            y = torch.relu(layer(y))
        return self.head(y).view(x.size(0), -1)


def test_stages_that_collapse_name_the_value_that_keeps_them_together() -> None:
    model = _SizeKeepsInputAlive()
    with pytest.warns(UserWarning, match=r"1 distillation stage\(s\) for 8 layers .* node 'x'"):
        stages(fold_batchnorm(model))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # captured, the size is the batch: no warning
        assert len(stages(fold_batchnorm(capture(model, torch.zeros(2, 1, 8, 8))))) == 8


def test_a_network_that_would_not_export_is_refused_before_compression(
    tmp_path, codebook, digits, capsys
) -> None:
    """Every node without an integer equivalent is listed, with its source line, in seconds."""
    source = (
        "class Sorting(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(64, 64)\n        self.head = nn.Linear(64, 10)\n\n"
        "    def forward(self, x):\n        y = torch.sort(self.fc(x.flatten(1))).values\n"
        "        y = torch.cumsum(y, 1)\n        return self.head(y)\n"
    )
    spec = write_model_file(tmp_path / "net.py", source, "Sorting")
    save_codebook(tmp_path / "codebook.safetensors", codebook)
    np.save(tmp_path / "train.npy", digits.train_x[:64].numpy())
    out = tmp_path / "c.safetensors"
    start = time.monotonic()
    argv = ["compress", "--network", spec, "--codebook", str(tmp_path / "codebook.safetensors"),
            "--data", str(tmp_path / "train.npy"), "-o", str(out)]  # fmt: skip
    assert main(argv) == 2
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--no-export-check" in err
    lines = (tmp_path / "net.py").read_text().splitlines()
    for call in ("torch.sort", "torch.cumsum"):
        number = next(n for n, line in enumerate(lines, 1) if call in line)
        assert f"{tmp_path / 'net.py'}:{number}" in err
    assert not out.exists()


def test_a_result_saves_and_loads_bit_for_bit(branchy, codebook, digits, tmp_path) -> None:
    """``vq4all.save`` writes the checkpoint that ``vq4all.load`` and ``vq4all export`` read
    alone: the same model, state and report; ``save_program`` what ``simulate`` runs."""
    result = vq4all.compress(branchy, codebook, digits.train_x, progress=False, config=QUICK)
    path = tmp_path / "result.safetensors"
    vq4all.save(result, path)
    loaded = vq4all.load(path)
    assert loaded.report == result.report
    assert loaded.codebook.sha256 == codebook.sha256
    state, again = result.model.state_dict(), loaded.model.state_dict()
    assert state.keys() == again.keys()
    assert all(torch.equal(state[name], again[name]) for name in state)
    x = digits.test_x[:16]
    assert torch.equal(loaded.model(x), result.model(x))
    vq4all.save_program(vq4all.export(loaded, codebook), tmp_path / "loaded.safetensors")
    vq4all.save_program(vq4all.export(result, codebook), tmp_path / "original.safetensors")
    exported = (tmp_path / "original.safetensors").read_bytes()
    assert (tmp_path / "loaded.safetensors").read_bytes() == exported
    load_network(tmp_path / "loaded.safetensors", codebook)  # what simulate reads
    save_codebook(tmp_path / "codebook.safetensors", codebook)
    assert main(["export", "--compressed", str(path), "--codebook",
                 str(tmp_path / "codebook.safetensors"), "-o",
                 str(tmp_path / "cli.safetensors")]) == 0  # fmt: skip
    assert (tmp_path / "cli.safetensors").read_bytes() == exported


class _Sigmoid(nn.Module):
    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return torch.sigmoid(self.classifier(x))


class _Embedding(nn.Module):
    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(x) * 3.0


def test_held_out_scores_fit_what_the_output_is(branchy, codebook, digits) -> None:
    held_out = digits.test_x[:64]
    sigmoid = vq4all.compress(_Sigmoid(branchy), codebook, digits.train_x, held_out=held_out,
                              progress=False, config=QUICK)  # fmt: skip
    assert sigmoid.report.metric == "probabilities"
    assert set(sigmoid.report.held_out) == {"relative_error", "cosine"}
    assert 0 < sigmoid.report.held_out["relative_error"] < 1
    assert "held out (probabilities): relative error" in sigmoid.report.format()
    embedding = vq4all.compress(_Embedding(branchy), codebook, digits.train_x, held_out=held_out,
                                progress=False, config=QUICK, metric="embedding")  # fmt: skip
    assert set(embedding.report.held_out) == {"cosine"}
    with torch.no_grad():
        reference, compressed = _Embedding(branchy)(held_out), embedding.model(held_out)
    cosine = torch.nn.functional.cosine_similarity(reference.double(), compressed.double())
    assert embedding.report.held_out["cosine"] == pytest.approx(float(cosine.mean()))
    logits = vq4all.compress(branchy, codebook, digits.train_x, held_out=held_out,
                             progress=False, config=QUICK)  # fmt: skip
    assert logits.report.metric == "logits" and "top1_agreement" in logits.report.held_out


class _EveryHostOp(nn.Module):
    """One of each host op between two layers, on 8x8 digits."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8)
        self.norm.running_mean.uniform_(-0.5, 0.5)
        self.norm.running_var.uniform_(0.5, 2.0)
        self.mix = nn.LayerNorm(6)
        self.token = nn.Parameter(torch.randn(1, 8, 1, 7))
        self.head = nn.Linear(8 * 7 * 7, 10)

    def forward(self, x):
        y = self.norm(torch.relu(self.conv(torch.nn.functional.pad(x, (1, 0, 0, 0)))))
        y = torch.tanh(y * 0.5 + 1.0) * torch.sigmoid(y.mean((2, 3), keepdim=True))
        y = torch.cat([self.token.expand(y.shape[0], -1, -1, -1), y[:, :, 1:, :]], dim=2)
        y = torch.softmax(self.mix(y.permute(0, 1, 3, 2)), dim=-1).transpose(2, 3)
        y = torch.cat([y, y.mean(2, keepdim=True)], dim=2)
        return self.head(y.reshape(y.shape[0], -1))


@pytest.mark.parametrize("bits", [8, 16])
def test_each_host_op_follows_the_float_op(codebook, digits, bits) -> None:
    """Golden's integers of every host op track the float model they were exported from:
    the output, dequantized, within a few per cent at 8 bits and 1% at 16."""
    torch.manual_seed(0)
    model = frozen_at_nearest(capture(_EveryHostOp().eval(), digits.train_x[:4]), codebook)
    program = export_network(model, codebook, digits.train_x[:256], activation_bits=bits)
    kinds = {op.op for op in program.graph}
    assert {"pad", "affine", "lookup", "mul", "concat", "constant", "slice", "permute",
            "layernorm", "softmax", "globalavgpool", "mean"} <= kinds  # fmt: skip
    x = digits.test_x[:64]
    with torch.no_grad():
        reference = model(x).double()
    codes = run_network(codebook, program, x).double()
    output = program.layers[-1]
    dequantized = (codes - output.output_zero_point) * output.output_scale
    error = float((dequantized - reference).norm() / reference.norm())
    # Eleven requantizations in a row at 8 bits, each within half a code; at 16, nothing left.
    assert error < (0.08 if bits == 8 else 0.01)
