"""The C++ harness (sim/harness.cpp) that runs whole layer runs for the network driver: exact
against golden, the model's cycles, repeats, and every way a run can go wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.programs import write_digits_program
from vq4all.golden.codebook import load_codebook
from vq4all.golden.layer import run_layer
from vq4all.golden.network import load_network
from vq4all.golden.synthetic import random_activations
from vq4all.sim.arch.cycles import layer_cycles
from vq4all.sim.rtl.build import SimulationError
from vq4all.sim.rtl.encode import LayerBeats
from vq4all.sim.rtl.harness import Harness
from vq4all.sim.rtl.host import hang_budget
from vq4all.sim.rtl.network import accelerator_for

pytestmark = [pytest.mark.verilator]

BUILD_ROOT = Path(__file__).resolve().parents[1] / "build" / "sim"


@pytest.fixture(scope="module")
def layer(tmp_path_factory, seed):
    """A running harness, and the hidden layer of the digits program as beats with an input."""
    directory = tmp_path_factory.mktemp("harness")
    path = write_digits_program(directory, seed)
    codebook = load_codebook(directory / "codebook.safetensors")
    program = load_network(path)
    params = accelerator_for(program, codebook)
    beats = LayerBeats(params, program.layers[0], codebook, name="hidden")
    x = random_activations(np.random.default_rng(seed), (64,))
    with Harness.build(params, codebook, root=BUILD_ROOT) as harness:
        yield harness, beats, x


def test_a_layer_run_is_golden_in_the_model_cycles(layer) -> None:
    harness, beats, x = layer
    result = harness.run_layer(beats, x)
    assert np.array_equal(result.expected, run_layer(beats.codebook, beats.program, x[None])[0])
    assert result.matches
    assert result.cycles == layer_cycles(harness.params, beats.run)
    # Golden given by the caller is what the outputs are compared with.
    wrong = result.expected.copy()
    wrong[0] ^= 1
    assert not harness.run_layer(beats, x, wrong).matches


def test_repeats_run_back_to_back(layer) -> None:
    harness, beats, x = layer
    once = harness.run(beats.input_words(x), beats.output_beats, hang_budget(beats))
    thrice = harness.run(beats.input_words(x), beats.output_beats, hang_budget(beats), repeats=3)
    assert once.cycles == thrice.cycles == layer_cycles(harness.params, beats.run)
    assert thrice.simulated_cycles > 2 * once.cycles
    assert np.array_equal(thrice.outputs, np.tile(once.outputs, (3, 1)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("fewer outputs", "an output beat more than the layer has"),
        ("more outputs", "hung"),
        ("extra quant beat", "the layer produced all outputs before consuming all inputs"),
        ("missing act beat", "hung"),
    ],
)
def test_a_run_that_goes_wrong_says_how(layer, change, message) -> None:
    harness, beats, x = layer
    words, outputs = beats.input_words(x), beats.output_beats
    if change == "fewer outputs":
        outputs -= 1
    elif change == "more outputs":
        outputs += 1
    elif change == "extra quant beat":
        words["quant"] = np.concatenate([words["quant"], words["quant"][:1]])
    else:
        words["act"] = words["act"][:-1]
    with pytest.raises(SimulationError, match=message):
        harness.run(words, outputs, hang_budget(beats))
    # The harness is left ready for the next run.
    assert harness.run_layer(beats, x).matches
