"""Export of a compressed network to a network program (:mod:`vq4all.golden.network`).

Activations are 8 bits wide, or 16 (``activation_bits``) for a network whose outputs hang on
finer differences than 256 codes resolve. Activation scales are calibrated on real data (never
evaluation data). The input's scale is its largest magnitude over the calibration images
divided by the largest code (127 for int8). The network output is never clipped either, so that
its argmax stays the float model's: its codes span its calibrated range, widened to reach 0 (a
zero point places real zero). Every other value's range is the fraction of its largest
magnitude (:data:`CLIP_FRACTIONS`) that quantizes its calibration values with the least squared
error, rounding and saturation included: a few outliers then saturate instead of costing every
other value its resolution. A ReLU right after a layer or a residual add is fused into its
requantization. Where a ReLU output feeds a depthwise layer alone, its narrow channels are
first widened to the value's range and the depthwise channels that read them narrowed (range
equalization: the indices stay, only per-channel gains and biases move; see
:func:`_equalize_ranges`). A layer's ReLU output that only feeds other layers (directly or
through pooling and flattening) takes the lowest code as zero point (-128 for int8): its codes
all stand for reals >= 0, twice the resolution of the non-negative half (see
:mod:`vq4all.golden.numerics`). Per output channel, the real multiplier ``alpha[o] * s_cb * s_in /
s_out`` becomes ``mult / 2**shift`` with ``mult`` in ``[2**15, 2**16)`` where the shift range
allows, and the float bias becomes ``round(b[o] / (alpha[o] * s_cb * s_in))`` in accumulator
units, plus the zero points' terms.
"""

from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch's own name
from torch import fx, nn

from vq4all.golden.codebook import Codebook
from vq4all.golden.container import ArtifactError, located
from vq4all.golden.errors import InputError
from vq4all.golden.layer import ConvGeometry, LayerProgram
from vq4all.golden.network import (
    FRACTION_BITS,
    AddOp,
    AffineOp,
    AvgPool2dOp,
    ConcatOp,
    ConstantOp,
    FlattenOp,
    GlobalAvgPoolOp,
    LayerNormOp,
    LayerOp,
    LookupOp,
    MatMulOp,
    MaxPool2dOp,
    MeanOp,
    MulOp,
    NetworkProgram,
    Op,
    PadOp,
    PermuteOp,
    ReluOp,
    ReshapeOp,
    SliceOp,
    SoftmaxOp,
    per_layer_sha256,
    quantize_input,
)
from vq4all.golden.numerics import (
    MULT_MAX,
    SHIFT_MAX,
    SHIFT_MIN,
    accumulator_range,
    activation_range,
    product_max,
)
from vq4all.model.graph import UnsupportedLayerError, describe, fold_batchnorm, trace
from vq4all.model.nodes import elementwise_function, is_shape_query, kind, relu_ceiling
from vq4all.model.vq import VQ_LAYERS, VQConv2d, VQLinear, vq_layers

__all__ = ["export_network", "export_problems", "fixed_point"]


def fixed_point(real: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``mult``, ``shift`` (int32) with ``mult / 2**shift ~= real`` for each non-negative entry.

    Raises ``ValueError`` naming ``where`` for a multiplier too large for the shift range.
    """
    real = np.asarray(real, dtype=np.float64)
    if not np.isfinite(real).all() or (real < 0).any():
        raise InputError(f"{where}: requantization multipliers must be finite and non-negative")
    exponent = np.floor(np.log2(np.where(real > 0, real, 1.0)))
    shift = np.clip(15 - exponent, SHIFT_MIN, SHIFT_MAX).astype(np.int64)
    mult = np.round(real * 2.0**shift).astype(np.int64)
    # Rounding can reach 2**16; one bit less shift keeps it in range.
    over = mult > MULT_MAX
    shift[over] -= 1
    mult[over] = np.round(real[over] * 2.0 ** shift[over]).astype(np.int64)
    if (mult > MULT_MAX).any() or (shift < SHIFT_MIN).any():
        raise InputError(f"{where}: a requantization multiplier of {real.max():.3g} is too large")
    return mult.astype(np.int32), shift.astype(np.int32)


#: Fractions of a value's largest magnitude tried as the top of its range.
CLIP_FRACTIONS = torch.linspace(0.25, 1.0, 31)
#: Values whose squared quantization error decides a clip: an even sample of about this many.
CLIP_SAMPLE = 1 << 18


def _scale(values: _Values, bits: int, clip: bool = True, zero_point: int = 0) -> float:
    """The scale of a value of ``bits``-wide codes from its calibration values: the peak over
    the codes above ``zero_point`` (127 for int8, or 255 for the lowest code as zero point),
    or, with ``clip``, the clip fraction of it whose quantization of their sample has the least
    squared error."""
    low, high = activation_range(bits)
    top = high - zero_point
    if values.peak == 0:
        return 1.0
    if not clip:
        return values.peak / top
    sample = values.sample.to(torch.float64)
    scales = (values.peak * CLIP_FRACTIONS.to(torch.float64) / top)[:, None]
    codes = torch.floor(sample / scales + 0.5).clamp(low - zero_point, top)
    error = (codes * scales - sample).pow(2).mean(dim=1)
    return float(scales[int(error.argmin()), 0])


def _quantizer(values: _Values, kind: str, bits: int) -> tuple[float, int]:
    """The scale and zero point of a value of ``bits``-wide codes from its calibration values.
    ``kind`` is ``"value"`` (symmetric, clipped as :func:`_scale` does), ``"unsigned"`` (a ReLU
    output: the lowest code is the zero point, so that every code stands for a real >= 0) or
    ``"output"`` (the network's: never clipped, so that its argmax stays the model's, and its
    codes spread over the calibrated range, widened to reach 0)."""
    low_code, high_code = activation_range(bits)
    if kind == "unsigned":
        return _scale(values, bits, zero_point=low_code), low_code
    if kind == "output":
        # Real zero needs a code of its own (the zero point), so the range reaches 0: an
        # output that is never negative spans 0 to its largest value with the lowest code as
        # zero point.
        low, high = min(values.low, 0.0), max(values.high, 0.0)
        if low == high:
            return 1.0, 0
        scale = (high - low) / (high_code - low_code)
        return scale, min(high_code, max(low_code, low_code - round(low / scale)))
    return _scale(values, bits), 0


class _Exporter:
    def __init__(self, activation_bits: int) -> None:
        self.bits = activation_bits
        self.layers: list[LayerProgram] = []
        self.codebooks: list[Codebook] = []  # each layer's, in layer order
        self.graph: list[Op] = []

    def emit(self, op: Op) -> int:
        self.graph.append(op)
        return len(self.graph)

    def layer(
        self,
        name: str,
        module: VQLinear | VQConv2d,
        value: tuple[int, float, int],
        shape: tuple[int, ...],
        y: _Values,
        relu: bool,
        output: str,
    ) -> tuple[int, float, int]:
        """Layer ``name`` on ``value`` (index, scale, zero point; of ``shape``) into a value
        calibrated on ``y`` as :func:`_quantizer` does for ``output``; returns the new value.

        A Linear over more than one dimension (a transformer's, over its tokens) runs as the
        1x1 convolution that it is: its features become channels, its other dimensions the
        pixels of one row, with a permute and a reshape on either side."""
        if not isinstance(module, VQ_LAYERS):  # planning a float model's export: no integers
            self.graph.append(None)
            return (len(self.graph), *_quantizer(y, output, self.bits))
        index, s_in, z_in = value
        vq = module.vq
        codebook = vq.source
        weight_unit = vq.alpha.detach().double().numpy() * codebook.scale * s_in
        real_bias = module.bias.detach().double().numpy()
        s_out, z_out = _quantizer(y, output, self.bits)
        # A channel whose weights vanish beside its bias (pruned: all zero, the bias alone)
        # or beside its zero point (a dead channel) would need terms past the accumulator in
        # units of its alpha: its unit grows until they fit in what the largest sums and the
        # input zero point's term (each at most padded_inputs * product_max) leave, less 2**17
        # for the rounding of mult. Its sums, which stood for nothing, then move its output by
        # at most 1% of those terms at 1,280 inputs (every input and codeword entry at its
        # extreme).
        padded_inputs = -(-vq.inputs // codebook.D) * codebook.D
        acc_low, acc_high = accumulator_range(self.bits)
        headroom = acc_high - 2 * padded_inputs * product_max(self.bits) - 2**17
        unit = weight_unit
        if headroom > 0:  # past 65,000 inputs, the program's own check decides
            unit = np.maximum(weight_unit, (np.abs(real_bias) + abs(z_out) * s_out) / headroom)
        mult, shift = fixed_point(unit / s_out, f"layer {name!r}")
        weights = codebook.codewords.astype(np.int64)[vq.indices()]
        weight_sums = weights.reshape(len(weights), -1)[:, : vq.inputs].sum(axis=1)
        bias = np.round(real_bias / unit) - z_in * weight_sums
        if z_out:  # every mult is positive then
            bias += np.round(z_out * 2.0**shift / mult)
        conv = None
        if isinstance(module, VQConv2d):
            conv = ConvGeometry(
                module.in_channels,
                tuple(module.kernel_size),
                tuple(module.stride),
                tuple(module.padding),
                module.groups,
            )
        tokens = shape[:-1]
        if isinstance(module, VQLinear) and tokens:
            conv = ConvGeometry(vq.inputs, (1, 1), (1, 1), (0, 0), 1)
            rank = len(shape)
            index = self.emit(PermuteOp(input=index, dims=(rank - 1, *range(rank - 1))))
            index = self.emit(ReshapeOp(input=index, shape=(vq.inputs, 1, math.prod(tokens))))
        try:
            program = LayerProgram(
                codebook_sha256=codebook.sha256,
                codebook_size=codebook.K,
                codeword_length=codebook.D,
                in_features=vq.inputs,
                indices=vq.indices(),
                bias=np.clip(bias, acc_low, acc_high).astype(np.int64),
                mult=mult,
                shift=shift,
                # With the lowest code as zero point the lower clamp is the ReLU.
                relu=relu and not z_out,
                kind="conv2d" if conv else "linear",
                conv=conv,
                input_scale=s_in,
                output_scale=s_out,
                input_zero_point=z_in,
                output_zero_point=z_out,
                activation_bits=self.bits,
            )
        except ArtifactError as error:  # located at the layer: there is no file yet
            raise located(error, f"layer {name!r}") from None
        self.layers.append(program)
        self.codebooks.append(codebook)
        index = self.emit(LayerOp(input=index, layer=len(self.layers) - 1, name=name))
        if isinstance(module, VQLinear) and tokens:
            index = self.emit(ReshapeOp(input=index, shape=(len(mult), *tokens)))
            index = self.emit(PermuteOp(input=index, dims=(*range(1, len(shape)), 0)))
        return index, s_out, z_out

    def add(
        self, a: tuple[int, float, int], b: tuple[int, float, int], s_out: float, relu: bool
    ) -> tuple[int, float, int]:
        """The residual add of values ``a`` and ``b`` (zero point 0) into scale ``s_out``."""
        (a, s_a, _), (b, s_b, _) = a, b
        ratios = np.array([s_a / s_out, s_b / s_out])
        # One shift for both inputs: the one the larger ratio needs.
        _, (shift,) = fixed_point(ratios.max(keepdims=True), "residual add")
        mult = np.round(ratios * 2.0 ** int(shift)).astype(int)
        add = AddOp(
            inputs=(a, b),
            mult=tuple(int(m) for m in mult),
            shift=int(shift),
            relu=relu,
            scale=s_out,
        )
        return self.emit(add), s_out, 0


#: Calibration images run through the model at once: memory holds one batch's values.
CALIBRATION_BATCH = 16


@dataclass
class _Values:
    """A node's output over all calibration images, as much of it as the export reads: its
    output for the first image (its type and shape, for the structural checks), its extremes,
    each channel's peak (dimension 1), and an even sample of about :data:`CLIP_SAMPLE` of its
    values (every ``stride``-th in the order of the whole output) for the clip search. A value
    that is not one per image (a constant) is read on the first batch alone."""

    first: object
    per_image: bool = False
    stride: int = 1
    seen: int = 0
    low: float = math.inf
    high: float = -math.inf
    channel_peak: torch.Tensor | None = None
    samples: list[torch.Tensor] = field(default_factory=list)

    @property
    def peak(self) -> float:
        return max(abs(self.low), abs(self.high))

    @property
    def sample(self) -> torch.Tensor:
        return torch.cat(self.samples)

    def add(self, y: torch.Tensor) -> None:
        flat = y.detach().flatten()
        # A copy: a view would keep the whole batch's output alive.
        self.samples.append(flat[(-self.seen) % self.stride :: self.stride].clone())
        self.seen += len(flat)
        self.low, self.high = min(self.low, float(flat.min())), max(self.high, float(flat.max()))
        if y.dim() >= 2:
            peak = y.detach().transpose(0, 1).reshape(y.shape[1], -1).amax(dim=1)
            first = self.channel_peak is None
            self.channel_peak = peak if first else torch.maximum(self.channel_peak, peak)


class _Recorder(fx.Interpreter):
    """Runs the traced model on a batch of ``batch`` of the ``images`` calibration images,
    adding each node's output to its :class:`_Values` in ``values``."""

    def __init__(self, module: fx.GraphModule, values: dict, batch: int, images: int) -> None:
        super().__init__(module)
        self.values, self.batch, self.images = values, batch, images

    def run_node(self, node: fx.Node):
        y = super().run_node(node)
        values = self.values.get(node)
        tensor = isinstance(y, torch.Tensor) and y.numel() > 0
        if values is None:
            per_image = (
                tensor and node.op != "get_attr" and y.dim() > 0 and y.shape[0] == self.batch
            )
            first = y[:1].clone() if per_image else y
            values = self.values[node] = _Values(first=first, per_image=per_image)
            if tensor:
                total = y.numel() // self.batch * self.images if per_image else y.numel()
                values.stride = max(1, total // CLIP_SAMPLE)
                values.add(y)
        elif values.per_image:
            values.add(y)
        return y


def _calibrated(traced: fx.GraphModule, calibration: torch.Tensor) -> dict[fx.Node, _Values]:
    """Every node's :class:`_Values` over the ``calibration`` images, run a batch at a time."""
    values: dict[fx.Node, _Values] = {}
    for batch in calibration.split(CALIBRATION_BATCH):
        _Recorder(traced, values, len(batch), len(calibration)).run(batch)
    return values


#: The most that range equalization widens a channel by.
EQUALIZATION_CAP = 16.0


def _fused_relu(node: fx.Node, module_of) -> fx.Node | None:
    """The ReLU that is ``node``'s only user, to fuse into its requantization."""
    users = list(node.users)
    if len(users) == 1 and relu_ceiling(users[0], module_of(users[0])) is not None:
        return users[0]
    return None


def _equalize_ranges(traced: fx.GraphModule, module_of, calibrated: dict) -> bool:
    """Widen the narrow channels of each ReLU (or ReLU6) output that feeds a depthwise layer
    alone, so that every channel spans the value's int8 range; returns whether any did.

    One int8 scale serves all of a value's channels, and BatchNorm leaves some channels a
    hundredth of the others' range: a handful of codes then carry them, and the depthwise
    layer after amplifies their rounding (the first layer of MobileNetV2 alone moves its
    top-1 on 17% of the evaluation crops). Channel ``c`` of the layer before is multiplied by
    ``s_c`` (gain and bias) and the depthwise channels that read it divided by it: the network
    computes the same, up to the ReLU6 ceiling, which ``s_c`` keeps at or above the channel's
    calibrated peak; the indices do not change. ``s_c`` raises the channel's peak to the
    value's (at most 6 under a ReLU6), by at most :data:`EQUALIZATION_CAP`.
    """
    changed = False
    for node in traced.graph.nodes:
        producer = module_of(node)
        relu = _fused_relu(node, module_of) if isinstance(producer, VQ_LAYERS) else None
        if relu is None or len(relu.users) != 1:
            continue
        consumer = module_of(next(iter(relu.users)))
        if not isinstance(consumer, VQConv2d) or consumer.groups != consumer.in_channels:
            continue
        ceiling = relu_ceiling(relu, module_of(relu))
        peak = calibrated[relu].channel_peak.double()
        target = min(ceiling, float(peak.max()))
        widen = torch.where(
            peak > 0, (target / peak.clamp_min(1e-30)).clamp(1.0, EQUALIZATION_CAP), 1.0
        ).to(producer.bias.dtype)
        producer.vq.gain.mul_(widen)
        producer.bias.mul_(widen)
        consumer.vq.gain.div_(widen.repeat_interleave(consumer.vq.shape[0] // len(widen)))
        changed = True
    return changed


@torch.no_grad()
def export_network(
    model: nn.Module,
    codebook: Codebook | None,
    calibration: torch.Tensor,
    dataset: str = "",
    activation_bits: int = 8,
) -> NetworkProgram:
    """The network program of a compressed model (every sub-vector frozen), following its
    dataflow as torch.fx traces it, with activations ``activation_bits`` wide (8 or 16) whose
    scales are calibrated on ``calibration`` images of data set ``dataset``. ``codebook`` is
    the universal codebook that every layer indexes; ``None`` for a per-layer VQ model, whose
    layers' own codebooks the program then carries.

    Raises ``UnsupportedLayerError`` naming the first node with no integer equivalent (its op
    and source line), ``ValueError`` when there are no calibration images, and
    ``ValueError`` (or ``ArtifactError``) for a layer whose integers would not fit.
    """
    if not len(calibration):
        raise InputError("export needs at least one calibration image, got none")
    activation_range(activation_bits)  # a width the contract defines, before any work
    model.eval()
    # A copy: range equalization moves gains between its layers.
    traced = trace(copy.deepcopy(model), VQ_LAYERS)
    modules = dict(traced.named_modules())

    def module_of(node: fx.Node) -> nn.Module | None:
        return modules[node.target] if node.op == "call_module" else None

    calibrated = _calibrated(traced, calibration)
    if _equalize_ranges(traced, module_of, calibrated):
        calibrated = _calibrated(traced, calibration)
    _check_codebooks(traced, codebook)
    exporter = _Exporter(activation_bits)
    input_scale = _walk(traced, module_of, calibrated, exporter)
    codebooks = () if codebook else tuple(exporter.codebooks)
    return NetworkProgram(
        codebook_sha256=codebook.sha256 if codebook else per_layer_sha256(codebooks),
        input_scale=input_scale,
        input_shape=tuple(calibration.shape[1:]),
        layers=exporter.layers,
        graph=exporter.graph,
        dataset=dataset,
        activation_bits=activation_bits,
        codebooks=codebooks,
    )


@torch.no_grad()
def export_problems(model: nn.Module, images: torch.Tensor, activation_bits: int = 8) -> list[str]:
    """Every reason why ``model`` (float, before compression) would not export, one per node,
    each naming the node and its source line: the export's own walk over its graph on a couple
    of ``images``, with its layers' integers left out. Empty when it would export."""
    traced = fold_batchnorm(model)
    modules = dict(traced.named_modules())

    def module_of(node: fx.Node) -> nn.Module | None:
        return modules[node.target] if node.op == "call_module" else None

    problems: list[str] = []
    _walk(traced, module_of, _calibrated(traced, images[:2]), _Exporter(activation_bits), problems)
    return problems


def _is_layer(module: nn.Module) -> bool:
    """A module the accelerator runs: a VQ layer, or, before compression, what becomes one."""
    return isinstance(module, VQ_LAYERS) or type(module) in (nn.Linear, nn.Conv2d)


def _walk(traced, module_of, calibrated, exporter, problems: list[str] | None = None) -> float:
    """Emit the program of ``traced`` into ``exporter``, node by node; returns the input's
    scale. Raises ``UnsupportedLayerError`` for the first node with no integer equivalent, or,
    given a ``problems`` list, adds each one's reason to it and goes on (with the node's input
    standing in for its value; an item of a refused op's tuple is not listed again)."""
    bits = exporter.bits
    input_scale = 1.0
    values = _ProgramValues(exporter, calibrated)
    failed: set[fx.Node] = set()  # nodes that a problem was found at

    def is_tensor(node: fx.Node) -> bool:
        return isinstance(calibrated[node].first, torch.Tensor)

    for node in traced.graph.nodes:
        if node in values:  # a ReLU fused into the op before it
            continue
        module = module_of(node)
        try:
            if values.is_constant(node):  # emitted where an op first reads it
                continue
            what = kind(node, module, is_tensor, _is_layer)
            if what == "input":
                if values:
                    raise UnsupportedLayerError(f"{describe(node)}: a second input")
                if not torch.is_floating_point(calibrated[node].first):
                    raise UnsupportedLayerError(
                        f"{describe(node)}: a {calibrated[node].first.dtype} input (token ids "
                        "and other integer inputs need an embedding that stays on the host)"
                    )
                input_scale = _scale(calibrated[node], bits, clip=False)
                values[node] = (0, input_scale, 0)
            elif what == "output":
                (result,) = node.args
                if not isinstance(result, fx.Node) or values.get(result, (None,))[0] != len(
                    exporter.graph
                ):
                    raise UnsupportedLayerError(
                        f"{describe(node)}: the output must be the last value computed"
                    )
            elif what == "shape":
                continue
            elif what is None:
                raise UnsupportedLayerError(
                    f"{describe(node)} has no integer equivalent in a network program"
                )
            elif what in ("layer", "add"):
                _requantizing(node, module, what, module_of, calibrated, values, exporter)
            else:
                values[node] = _host_op(what, node, module, module_of, calibrated, values, exporter)
        except (UnsupportedLayerError, ArtifactError) as error:
            if problems is None:
                raise
            # An item of a refused op's tuple (sort's values) is that op's, not one more.
            item = node.target is operator.getitem and failed.intersection(node.all_input_nodes)
            if not item:
                problems.append(str(error))
            failed.add(node)
            sources = [source for source in node.all_input_nodes if values.readable(source)]
            if sources:
                values[node] = values[sources[0]]
    return input_scale


class _ProgramValues(dict):
    """Each tensor node's value in the program: its index, scale and zero point. A constant
    (a parameter that a value reads, such as a class token or a position embedding, or what is
    computed from parameters alone) becomes a :class:`ConstantOp` where an op first reads it,
    quantized symmetrically on its own largest magnitude."""

    def __init__(self, exporter: _Exporter, calibrated: dict) -> None:
        super().__init__()
        self.exporter, self.calibrated = exporter, calibrated
        self.constants: set[fx.Node] = set()

    def is_constant(self, node: fx.Node) -> bool:
        """Whether ``node`` is a parameter, or computed from parameters (and sizes) alone."""
        if node.op == "get_attr":
            self.constants.add(node)
        elif node.op == "call_function" or node.op == "call_method":
            inputs = node.all_input_nodes
            constant = [source for source in inputs if source in self.constants]
            if constant and all(source in constant or is_shape_query(source) for source in inputs):
                self.constants.add(node)
        return node in self.constants

    def readable(self, node: fx.Node) -> bool:
        return node in self or node in self.constants

    def __missing__(self, node: fx.Node) -> tuple[int, float, int]:
        if node not in self.constants:
            raise KeyError(node)
        values = self.calibrated[node]
        tensor = values.first
        if values.per_image or (tensor.dim() > 1 and tensor.shape[0] == 1):
            tensor = tensor[0]  # one image's: the same for every image
        tensor = tensor.reshape(tensor.shape or (1,)).detach()
        bits = self.exporter.bits
        peak = float(tensor.abs().max())
        scale = peak / activation_range(bits)[1] if peak > 0 else 1.0
        codes = quantize_input(tensor, scale, 0, bits)
        op = ConstantOp(
            codes=tuple(int(c) for c in codes.flatten()),
            shape=tuple(tensor.shape),
            scale=scale,
            zero_point=0,
        )
        self[node] = (self.exporter.emit(op), scale, 0)
        return self[node]


def _requantizing(node, module, what, module_of, calibrated, values, exporter) -> None:
    """A layer or a residual add, with the ReLU after it fused into its requantization."""
    sources = [arg for arg in node.all_input_nodes if values.readable(arg)]
    relu = _fused_relu(node, module_of)
    y = calibrated[relu if relu is not None else node]
    output = "output" if _is_output(relu or node) else "value"
    if what == "layer":
        (source,) = sources
        if relu is not None and _takes_zero_point(relu, module_of, calibrated):
            output = "unsigned"
        shape = tuple(calibrated[source].first.shape[1:])
        value = exporter.layer(
            node.target, module, values[source], shape, y, relu is not None, output
        )
    else:
        # An add's output keeps zero point 0.
        scale = _scale(y, exporter.bits, output == "value")
        value = exporter.add(*(values[source] for source in sources), scale, relu is not None)
    values[node] = value
    if relu is not None:
        values[relu] = value


def _check_codebooks(model: nn.Module, codebook: Codebook | None) -> None:
    """Raise ``ValueError`` unless every layer indexes ``codebook`` (given), or its own (none)."""
    for name, vq in vq_layers(model).items():
        if codebook is None and not vq.own_codebook:
            raise InputError(f"layer {name!r} indexes a universal codebook; give the codebook")
        if codebook is not None and vq.source.sha256 != codebook.sha256:
            raise InputError(
                f"layer {name!r} was compressed against codebook {vq.source.sha256[:16]}..., not "
                f"{codebook.sha256[:16]}..."
            )


def _is_global_average(node: fx.Node, module, x: torch.Tensor, y: torch.Tensor) -> bool:
    """An average over all of each channel's pixels: adaptive average pooling to 1x1, or a
    mean over dimensions 2 and 3 (what the output shape confirms)."""
    averaging = isinstance(module, nn.AdaptiveAvgPool2d) or node.target in (
        F.adaptive_avg_pool2d,
        torch.mean,
        "mean",
    )
    channels = (x.shape[0], x.shape[1])
    return (
        averaging
        and x.dim() == 4
        and tuple(y.shape) in (channels, (*channels, 1, 1))
        and torch.allclose(y.reshape(channels), x.mean(dim=(2, 3)))
    )


#: Kinds of op that pass their input's zero point on unchanged, and kinds whose integer
#: definition takes any zero point.
_PASSING = {"identity", "reshape", "permute", "slice", "pad", "average", "maxpool"}
_ZERO_POINT_AWARE = {"layer", "shape", "lookup", "mul", "concat", "affine"}


def _takes_zero_point(node: fx.Node, module_of, calibrated) -> bool:
    """Whether every use of ``node``'s value takes a zero point other than 0, directly (a
    layer, a lookup, a product...) or through ops that pass it on (pooling, reshaping): an
    add, a ReLU and the output need zero point 0."""

    def is_tensor(node: fx.Node) -> bool:
        return isinstance(calibrated[node].first, torch.Tensor)

    for user in node.users:
        what = kind(user, module_of(user), is_tensor, _is_layer)
        if what in _ZERO_POINT_AWARE:
            continue
        if what not in _PASSING or not _takes_zero_point(user, module_of, calibrated):
            return False
    return True


def _is_output(node: fx.Node) -> bool:
    """Whether ``node`` is the model's output."""
    return any(user.op == "output" for user in node.users)


def _window(module) -> tuple[type, tuple[int, int], tuple[int, int]] | None:
    """The op, kernel and stride of a max or average pooling module that golden has (no
    padding, no ceil mode, no dilation; an average that counts only its window)."""
    pair = nn.modules.utils._pair
    if isinstance(module, nn.MaxPool2d):
        plain = module.dilation in (1, (1, 1))
        kind = MaxPool2dOp
    elif isinstance(module, nn.AvgPool2d):
        plain = module.divisor_override is None
        kind = AvgPool2dOp
    else:
        return None
    if not plain or pair(module.padding) != (0, 0) or module.ceil_mode:
        return None
    stride = module.stride if module.stride is not None else module.kernel_size
    return kind, pair(module.kernel_size), pair(stride)


def _output_quantizer(node, module_of, calibrated, bits) -> tuple[float, int]:
    """The scale and zero point of a host op's new value: asymmetric over its calibrated
    range where every use takes a zero point, else symmetric (the output's as a layer's)."""
    values = calibrated[node]
    if _is_output(node):
        return _quantizer(values, "output", bits)
    asymmetric = _takes_zero_point(node, module_of, calibrated)
    return _quantizer(values, "output" if asymmetric else "value", bits)


def _dims(node: fx.Node, rank: int) -> list[int]:
    """The batched dimensions a permute or transpose puts first, second..."""
    args = list(node.args[1:])
    if node.target in (torch.transpose, "transpose", torch.ops.aten.transpose.int):
        first, second = (d % rank for d in args[:2])
        dims = list(range(rank))
        dims[first], dims[second] = second, first
        return dims
    dims = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
    return [d % rank for d in dims]


def _slice(node: fx.Node, shape: tuple[int, ...]) -> tuple[int, int, int, int, bool]:
    """The batched dimension, start, stop and step of a slice, select or narrow, and whether
    it drops the dimension (a select)."""
    aten = torch.ops.aten
    args = list(node.args[1:])
    if node.target is aten.select.int:
        dim, index = args
        dim %= len(shape)
        index %= shape[dim]
        return dim, index, index + 1, 1, True
    if node.target is aten.narrow.default:
        dim, start, length = args
        dim %= len(shape)
        start %= shape[dim]
        return dim, start, start + length, 1, False
    dim, start, stop, step = (args + [0, None, None, 1][len(args) :])[:4]
    dim %= len(shape)
    size = shape[dim]
    start = 0 if start is None else (start + size if start < 0 else start)
    stop = size if stop is None else (stop + size if stop < 0 else stop)
    return dim, max(0, min(start, size)), max(0, min(stop, size)), step, False


def _pads(node: fx.Node, module) -> tuple[int, ...]:
    """The ``(before, after)`` pairs of a constant zero padding; raises for another fill."""
    if module is not None:
        pads = module.padding
        return tuple(pads) if isinstance(pads, (tuple, list)) else (pads,) * 4
    pads, *rest = node.args[1:]
    mode = node.kwargs.get("mode", rest[0] if rest else "constant")
    value = node.kwargs.get("value", rest[1] if len(rest) > 1 else None)
    if node.target is torch.ops.aten.constant_pad_nd.default:
        mode, value = "constant", rest[0] if rest else 0
    if mode != "constant" or value not in (None, 0, 0.0):
        raise UnsupportedLayerError(
            f"{describe(node)}: only padding with zeros has an exact integer equivalent "
            f"(mode {mode!r}, value {value!r})"
        )
    return tuple(pads)


def _tabulated(node: fx.Node, module, source: fx.Node, scale: float, zero_point: int, bits: int):
    """The reals of every code of the input (``scale``, ``zero_point``), through ``node``'s
    own function, in float64."""
    low, high = activation_range(bits)
    reals = (torch.arange(low, high + 1, dtype=torch.float64) - zero_point) * scale
    if module is not None:
        return module.double()(reals).float().double()
    args = fx.map_arg(node.args, lambda arg: reals if arg is source else arg)
    kwargs = fx.map_arg(node.kwargs, lambda arg: reals if arg is source else arg)
    if node.op == "call_method":
        return getattr(reals, node.target)(*args[1:], **kwargs)
    return node.target(*args, **kwargs)


def _host_op(what, node, module, module_of, calibrated, values, exporter) -> tuple[int, float, int]:
    """The value (index, scale, zero point) of host op ``node`` of kind ``what``: a new op, or
    its input's value for an identity."""
    bits = exporter.bits
    sources = [arg for arg in node.all_input_nodes if values.readable(arg)]
    source = sources[0] if sources else None
    x = calibrated[source].first if source is not None else None
    y = calibrated[node].first
    index, scale, zero_point = values[source] if source is not None else (0, 1.0, 0)
    if what == "identity":
        return values[source]
    if what == "relu":
        ceiling = relu_ceiling(node, module)
        if ceiling == math.inf or calibrated[source].high <= ceiling:
            if zero_point:
                what = "lookup"  # a ReLU of a value that has no code for zero at zero
            else:
                return exporter.emit(ReluOp(input=index)), scale, zero_point
        else:
            what = "lookup"  # a ReLU6 that clamps inside the value's range
    if what in ("reshape", "permute", "slice") and not (
        calibrated[source].per_image and calibrated[node].per_image
    ):
        raise UnsupportedLayerError(
            f"{describe(node)}: moves values between the images of a batch (the batch must stay "
            "the first dimension)"
        )
    if what == "reshape":
        shape = tuple(y.shape[1:])
        if shape == tuple(x.shape[1:]):
            return values[source]
        op = FlattenOp(input=index) if len(shape) == 1 else ReshapeOp(input=index, shape=shape)
        return exporter.emit(op), scale, zero_point
    if what == "permute":
        dims = _dims(node, x.dim())
        if dims[0] != 0:
            raise UnsupportedLayerError(f"{describe(node)}: moves the batch dimension")
        per_image = tuple(d - 1 for d in dims[1:])
        if per_image == tuple(range(len(per_image))):
            return values[source]
        return exporter.emit(PermuteOp(input=index, dims=per_image)), scale, zero_point
    if what == "slice":
        dim, start, stop, step, drop = _slice(node, tuple(x.shape))
        if dim == 0:
            if (start, stop, step) == (0, x.shape[0], 1) and not drop:
                return values[source]  # a whole batch, as x[:, ...] reads it
            raise UnsupportedLayerError(f"{describe(node)}: selects from the batch")
        if stop <= start:
            raise UnsupportedLayerError(f"{describe(node)}: selects nothing")
        whole = (start, stop, step) == (0, x.shape[dim], 1)
        if not whole:
            op = SliceOp(input=index, dim=dim - 1, start=start, stop=stop, step=step)
            index = exporter.emit(op)
        if drop:
            index = exporter.emit(ReshapeOp(input=index, shape=tuple(y.shape[1:])))
        return index, scale, zero_point
    if what == "pad":
        pads = _pads(node, module)
        if min(pads) < 0:
            raise UnsupportedLayerError(f"{describe(node)}: negative padding (a crop)")
        if not any(pads):
            return values[source]
        return exporter.emit(PadOp(input=index, pads=pads, value=zero_point)), scale, zero_point
    if what == "average" and module is None and not _is_global_average(node, module, x, y):
        return _mean(node, x, y, index, exporter), scale, zero_point
    if what == "maxpool" or (what == "average" and not _is_global_average(node, module, x, y)):
        window = _window(module)
        if window is None:
            raise UnsupportedLayerError(
                f"{describe(node)}: pooling with padding, dilation, ceil mode or a divisor, or "
                "an average over some dimensions only, has no integer equivalent"
            )
        op_kind, kernel, stride = window
        return exporter.emit(op_kind(input=index, kernel=kernel, stride=stride)), scale, zero_point
    if what == "average":
        return exporter.emit(GlobalAvgPoolOp(input=index, keepdim=y.dim() == 4)), scale, zero_point
    s_out, z_out = _output_quantizer(node, module_of, calibrated, bits)
    if what == "lookup":
        reals = _tabulated(node, module, source, scale, zero_point, bits)
        table = quantize_input(reals, s_out, z_out, bits)
        function = elementwise_function(node, module, lambda n: n in values) or "relu"
        op = LookupOp(
            input=index,
            function=function,
            table=tuple(int(code) for code in table),
            scale=s_out,
            zero_point=z_out,
        )
        return exporter.emit(op), s_out, z_out
    if what == "affine":
        gain = (module.weight / torch.sqrt(module.running_var + module.eps)).double().numpy()
        offset = module.bias.double().numpy() - module.running_mean.double().numpy() * gain
        mult, shift = fixed_point(np.abs(gain) * scale / s_out, f"{describe(node)}")
        bias = np.round(offset / s_out * 2.0**shift)
        op = AffineOp(
            input=index,
            input_zero_point=zero_point,
            mult=tuple(int(m) for m in np.sign(gain) * mult),
            bias=tuple(int(b) for b in bias),
            shift=tuple(int(s) for s in shift),
            scale=s_out,
            zero_point=z_out,
        )
        return exporter.emit(op), s_out, z_out
    if what in ("mul", "matmul"):
        (a_index, s_a, z_a), (b_index, s_b, z_b) = (values[arg] for arg in _tensor_args(node))
        (mult,), (shift,) = fixed_point(np.array([s_a * s_b / s_out]), describe(node))
        op = (MulOp if what == "mul" else MatMulOp)(
            inputs=(a_index, b_index),
            input_zero_points=(z_a, z_b),
            mult=int(mult),
            shift=int(shift),
            scale=s_out,
            zero_point=z_out,
        )
        return exporter.emit(op), s_out, z_out
    if what == "concat":
        parts = [values[arg] for arg in node.args[0]]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        dim %= y.dim()
        if dim == 0:
            raise UnsupportedLayerError(f"{describe(node)}: joins batches")
        if len({(s, z) for _, s, z in parts}) == 1:
            s_out, z_out = parts[0][1], parts[0][2]  # one quantization: copied exactly
        ratios = np.array([s / s_out for _, s, _ in parts])
        mult, shift = fixed_point(ratios, describe(node))
        op = ConcatOp(
            inputs=tuple(i for i, _, _ in parts),
            input_zero_points=tuple(z for _, _, z in parts),
            dim=dim - 1,
            mult=tuple(int(m) for m in mult),
            shift=tuple(int(s) for s in shift),
            scale=s_out,
            zero_point=z_out,
        )
        return exporter.emit(op), s_out, z_out
    if what == "softmax":
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        if module is not None:
            dim = module.dim
        if dim is None or dim % x.dim() != x.dim() - 1:
            raise UnsupportedLayerError(f"{describe(node)}: a softmax over another than the last "
                                        "dimension")  # fmt: skip
        low, high = activation_range(bits)
        differences = torch.arange(-(2**bits - 1), 1, dtype=torch.float64)
        exp_table = torch.round(2.0**FRACTION_BITS * torch.exp(scale * differences))
        op = SoftmaxOp(
            input=index,
            exp_table=tuple(int(e) for e in exp_table),
            scale=1.0 / (high - low),
            zero_point=low,
        )
        return exporter.emit(op), 1.0 / (high - low), low
    if what == "layernorm":
        return _layer_norm(node, module, values[source], x, calibrated, (s_out, z_out), exporter)
    raise UnsupportedLayerError(f"{describe(node)} has no integer equivalent in a network program")


def _layer_norm(node, module, value, x, calibrated, output, exporter) -> tuple[int, float, int]:
    """A LayerNorm over the last dimension as a :class:`LayerNormOp`."""
    index, s_in, z_in = value
    s_out, z_out = output
    if module is not None:
        shape, gain, offset, eps = module.normalized_shape, module.weight, module.bias, module.eps
    else:
        args = [*node.args, None, None, None, 1e-5][:5]
        shape, gain, offset, eps = (
            args[1],
            *(calibrated[arg].first if isinstance(arg, fx.Node) else None for arg in args[2:4]),
            node.kwargs.get("eps", args[4]),
        )
    n = x.shape[-1]
    if len(shape) != 1:
        raise UnsupportedLayerError(f"{describe(node)}: a LayerNorm over more than the last "
                                    "dimension")  # fmt: skip
    gain = np.ones(n) if gain is None else gain.detach().double().numpy()
    offset = np.zeros(n) if offset is None else offset.detach().double().numpy()
    mult, shift = fixed_point(np.abs(gain) / (s_out * 2.0**FRACTION_BITS), describe(node))
    op = LayerNormOp(
        input=index,
        input_zero_point=z_in,
        eps_codes=min(round(eps * n * n / (s_in * s_in)), 2**62 - 1),
        mult=tuple(int(m) for m in np.sign(gain) * mult),
        bias=tuple(int(b) for b in np.round(offset / s_out * 2.0**shift)),
        shift=tuple(int(v) for v in shift),
        scale=s_out,
        zero_point=z_out,
    )
    return exporter.emit(op), s_out, z_out


def _mean(node: fx.Node, x, y, index: int, exporter: _Exporter) -> int:
    """A mean over some dimensions of each image (not over the batch) as a :class:`MeanOp`."""
    args = [*node.args, None, False][1:3]
    dims = node.kwargs.get("dim", args[0])
    keepdim = node.kwargs.get("keepdim", args[1])
    if node.target is F.adaptive_avg_pool2d or dims is None:
        raise UnsupportedLayerError(f"{describe(node)}: an average pooling to more than 1x1, "
                                    "or a mean over the batch")  # fmt: skip
    dims = sorted({d % x.dim() for d in ([dims] if isinstance(dims, int) else dims)})
    if 0 in dims:
        raise UnsupportedLayerError(f"{describe(node)}: averages over the batch")
    op = MeanOp(input=index, dims=tuple(d - 1 for d in dims), keepdim=bool(keepdim))
    return exporter.emit(op)


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    """The two operands of a product, in order (``x * x`` reads one value twice)."""
    return [arg for arg in node.args if isinstance(arg, fx.Node)][:2] * (
        2 if sum(isinstance(arg, fx.Node) for arg in node.args) == 1 else 1
    )
