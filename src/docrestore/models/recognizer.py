"""Line recognizers (CTC) with named intermediate features ("taps").

Both recognizers share one contract: ``R(x, taps=()) -> RecognizerOutput(logits, features)``
with ``x`` a batch of lines ``(B,1,H,W)`` in [0, 1] (ink dark on light paper), ``logits`` the raw
per-frame class scores ``(T,B,C)`` (class 0 is the CTC blank) and ``features`` the requested
taps. They normalise their input themselves, so every caller (pretraining, the CTC loss in the
GAN, the feature loss, the dual-modal discriminator, evaluation) feeds them the same way.

Time runs along the width: the CNN keeps the image as (B,C,H,W), halves the width twice
(T = W/4 frames: 64 for 256 px, 256 for 1024 px, at least 2*max_chars+1 for the CTC of the
profiles' lines) and the feature map is turned into a sequence with a real ``permute``
(:func:`to_frames`). The ERB code fed its recognizer a ``Reshape`` of the generator output, which
reinterprets memory instead of transposing and scrambles the line; a permute does not.

Tap layouts: ``"cnn1".."cnn5"`` (and ``"cnn_last"``, an alias of the last) are ``(B,C,H',W')``;
``"rnn"`` is ``(T,B,2*rnn_hidden)``. ``tap_channels`` gives each tap's channel count.

A third architecture, ``"conv_ctc"`` (:class:`ConvCTC`), has no recurrent layer at all: residual
conv blocks and dilated 1-D convolutions over the frames. It is the second held-out reader, so a
conclusion never rests on one reader family (both CRNNs share the CNN-then-RNN design).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from ..config import RecognizerConfig
from .generator import scaled_channels

TIME_STRIDE = 4  # input pixels per output frame along the width


class RecognizerOutput(NamedTuple):
    logits: torch.Tensor                 # (T,B,C) raw scores; log_softmax over C for CTC
    features: dict[str, torch.Tensor]    # {tap: tensor}, only the taps asked for


def to_frames(features: torch.Tensor) -> torch.Tensor:
    """(B,C,H,W) feature map -> (T=W, B, C*H) frame sequence, width as time.

    A real transpose: frame ``t`` of line ``b`` is ``features[b, :, :, t]`` flattened. Never
    ``view``/``reshape`` the (B,C,H,W) tensor straight to (W,...): that reinterprets memory and
    mixes columns (the bug of the ERB code).
    """
    b, c, h, w = features.shape
    return features.permute(3, 0, 1, 2).reshape(w, b, c * h)


def rnn_forward(rnn: nn.RNNBase, seq: torch.Tensor) -> torch.Tensor:
    """Run a recurrent layer on ``seq`` and return its outputs, in float32 even under autocast
    (small layers, and the CTC that follows wants precise scores).

    cuDNN cannot backpropagate through an RNN in eval mode, yet a frozen recognizer (eval) must
    pass gradients to the restored image; PyTorch's native kernels can, so they run when a
    gradient will be needed (cuDNN still reads clean or detached lines).
    """
    with torch.autocast(device_type=seq.device.type, enabled=False):
        seq = seq.float()
        needs_grad = torch.is_grad_enabled() and (
            seq.requires_grad or any(p.requires_grad for p in rnn.parameters()))
        if not rnn.training and needs_grad:
            with torch.backends.cudnn.flags(enabled=False):
                return rnn(seq)[0]
        return rnn(seq)[0]


class GatedConv2d(nn.Module):
    """HTR-Flor's FullGatedConv2D: a conv with 2*C outputs split in halves, ``h * sigmoid(g)``."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(channels, 2 * channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, g = self.conv(x).chunk(2, dim=1)
        return h * torch.sigmoid(g)


class GatedBlock(nn.Sequential):
    """HTR-Flor block: conv (strided where the map shrinks) -> PReLU -> BatchNorm -> gated conv."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int]):
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
            nn.PReLU(cout),
            nn.BatchNorm2d(cout),
            GatedConv2d(cout),
        )


class PlainBlock(nn.Sequential):
    """conv -> BatchNorm -> ReLU, then max-pool where the map shrinks."""

    def __init__(self, cin: int, cout: int, pool: tuple[int, int] | None):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        if pool is not None:
            layers.append(nn.MaxPool2d(pool))
        super().__init__(*layers)


class LineRecognizer(nn.Module):
    """Shared forward of the CRNNs: CNN blocks -> height pooling -> frames -> RNN -> linear.

    Subclasses set ``self.blocks`` (an ``nn.ModuleList`` of 5 blocks that together divide the
    width by 4 and the height by 8), ``block_channels`` and ``self.rnn`` (bidirectional,
    ``batch_first=False``).
    """

    TAPS: tuple[str, ...] = ("cnn1", "cnn2", "cnn3", "cnn4", "cnn5", "cnn_last", "rnn")
    FRAME_HEIGHT = 2  # rows kept after height pooling; flattened into each frame's features

    def __init__(self, cfg: RecognizerConfig, num_classes: int, height: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must count the CTC blank plus at least one character, "
                             f"got {num_classes}; pass len(charset) (blank included)")
        if height < 16 or height % 16:
            raise ValueError(f"line height must be a multiple of 16 (at least 16), got {height}; "
                             "set data.height accordingly")
        self.num_classes = num_classes
        self.height = height
        self.rnn_hidden = cfg.rnn_hidden

    # Subclasses call this after building self.blocks and before self.rnn.
    def _finish(self, cfg: RecognizerConfig, block_channels: Sequence[int], rnn_cls) -> None:
        self.block_channels = tuple(block_channels)
        # Collapse whatever height is left to FRAME_HEIGHT rows (max keeps the strongest stroke
        # response), so the frame size does not depend on the line height.
        self.height_pool = nn.AdaptiveMaxPool2d((self.FRAME_HEIGHT, None))
        self.dropout = nn.Dropout(cfg.dropout)
        self.rnn = rnn_cls(self.block_channels[-1] * self.FRAME_HEIGHT, cfg.rnn_hidden,
                           num_layers=cfg.rnn_layers, bidirectional=True)
        self.classifier = nn.Linear(2 * cfg.rnn_hidden, self.num_classes)
        self.tap_channels = {f"cnn{i + 1}": c for i, c in enumerate(self.block_channels)}
        self.tap_channels["cnn_last"] = self.block_channels[-1]
        self.tap_channels["rnn"] = 2 * cfg.rnn_hidden

    SEQUENCE_TAP = "rnn"  # the tap of the per-frame sequence layer's output

    def sequence(self, seq: torch.Tensor) -> torch.Tensor:
        """The per-frame sequence model, (T,B,F) -> (T,B,2*rnn_hidden): the recurrent layers."""
        return rnn_forward(self.rnn, seq)

    @staticmethod
    def normalize(x: torch.Tensor) -> torch.Tensor:
        """[0, 1] -> [-1, 1]; done inside the model so that every caller feeds it alike."""
        return (x - 0.5) / 0.5

    def _check_taps(self, taps: Sequence[str]) -> None:
        unknown = [t for t in taps if t not in self.TAPS]
        if unknown:
            raise ValueError(f"unknown recognizer tap(s) {unknown}; {type(self).__name__}.TAPS = "
                             f"{list(self.TAPS)}")

    def forward(self, x: torch.Tensor, taps: Sequence[str] = ()) -> RecognizerOutput:
        if isinstance(taps, str):
            taps = (taps,)
        self._check_taps(taps)
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[-1] % TIME_STRIDE:
            raise ValueError(f"{type(self).__name__} expects lines (B,1,H,W) in [0,1] with W a "
                             f"multiple of {TIME_STRIDE}, got {tuple(x.shape)}")
        wanted = set(taps)
        features: dict[str, torch.Tensor] = {}
        h = self.normalize(x)
        last = len(self.blocks)
        for i, block in enumerate(self.blocks, start=1):
            h = block(h)
            if f"cnn{i}" in wanted:
                features[f"cnn{i}"] = h
            if i == last and "cnn_last" in wanted:
                features["cnn_last"] = h
        seq = to_frames(self.height_pool(h))            # (T,B,F), T = W/4
        seq = self.sequence(self.dropout(seq))          # (T,B,2*hidden)
        if self.SEQUENCE_TAP in wanted:
            features[self.SEQUENCE_TAP] = seq
        with torch.autocast(device_type=seq.device.type, enabled=False):
            logits = self.classifier(seq)               # float32 scores for the CTC
        return RecognizerOutput(logits, features)


class GatedCRNN(LineRecognizer):
    """"crnn": the HTR-Flor design used by ERB, gated convolutions + BiGRU.

    Five gated blocks with HTR-Flor's filters 16-32-40-48-56 (x ``cfg.width``; Flor's sixth,
    ungated 64-filter conv is folded into the fifth block), strides (2,2), 1, (2,2), 1, (2,1)
    on (height, width): width / 4, height / 8. Then ``cfg.rnn_layers`` BiGRU(``rnn_hidden``)
    layers (ERB: 2 x 128) and a linear layer to the classes.
    """

    BASE_CHANNELS = (16, 32, 40, 48, 56)
    STRIDES = ((2, 2), (1, 1), (2, 2), (1, 1), (2, 1))

    def __init__(self, cfg: RecognizerConfig, num_classes: int, height: int):
        super().__init__(cfg, num_classes, height)
        ch = [scaled_channels(c, cfg.width) for c in self.BASE_CHANNELS]
        cins = [1] + ch[:-1]
        self.blocks = nn.ModuleList(GatedBlock(ci, co, s) for ci, co, s in zip(cins, ch, self.STRIDES))
        self._finish(cfg, ch, nn.GRU)


class CRNNLSTM(LineRecognizer):
    """"crnn_lstm": plain conv-BN-ReLU blocks + BiLSTM, the held-out reader's architecture.

    A different design from the loss recognizer on purpose (no gates, max-pooling, LSTM), so that
    the reader used for the paper's CER/WER is not the network the losses were optimised against.
    Filters 16-32-64-64-96 (x ``cfg.width``); 2x2 pools after blocks 1 and 2, a (2,1) pool after
    block 3: width / 4, height / 8.
    """

    BASE_CHANNELS = (16, 32, 64, 64, 96)
    POOLS = ((2, 2), (2, 2), (2, 1), None, None)

    def __init__(self, cfg: RecognizerConfig, num_classes: int, height: int):
        super().__init__(cfg, num_classes, height)
        ch = [scaled_channels(c, cfg.width) for c in self.BASE_CHANNELS]
        cins = [1] + ch[:-1]
        self.blocks = nn.ModuleList(PlainBlock(ci, co, p) for ci, co, p in zip(cins, ch, self.POOLS))
        self._finish(cfg, ch, nn.LSTM)


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a (1x1 where channels change) shortcut, ReLU, then max-pool
    where the map shrinks (ResNet's basic block)."""

    def __init__(self, cin: int, cout: int, pool: tuple[int, int] | None):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(cout))
        self.shortcut = (nn.Identity() if cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)))
        self.pool = nn.MaxPool2d(pool) if pool is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.body(x) + self.shortcut(x)))


class TemporalConv(nn.Module):
    """A residual dilated 1-D convolution over the frames (time), (B,C,T) -> (B,C,T)."""

    def __init__(self, channels: int, dilation: int, kernel_size: int = 5):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=dilation * (kernel_size // 2),
                              dilation=dilation)
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.norm(self.conv(x)))


class ConvCTC(LineRecognizer):
    """"conv_ctc": a fully convolutional CTC reader, no recurrent layer.

    A conv stem and four residual blocks (filters 16-32-48-64-96 x ``cfg.width``; 2x2 pools after
    blocks 1 and 2, a (2,1) pool after block 3: width / 4, height / 8), then a 1x1 projection of each frame to
    ``2 * rnn_hidden`` channels and ``rnn_layers + 1`` residual temporal convolutions (kernel 5,
    dilations 1, 2, 4, ...: a receptive field of dozens of frames, the context a BiLSTM gives),
    and a linear layer to the classes. A design of another family than both CRNNs: a conclusion
    that holds under this reader and under the CRNN reader does not rest on one architecture.
    """

    BASE_CHANNELS = (16, 32, 48, 64, 96)
    POOLS = ((2, 2), (2, 2), (2, 1), None, None)
    TAPS = ("cnn1", "cnn2", "cnn3", "cnn4", "cnn5", "cnn_last", "tcn")
    SEQUENCE_TAP = "tcn"

    def __init__(self, cfg: RecognizerConfig, num_classes: int, height: int):
        super().__init__(cfg, num_classes, height)
        ch = [scaled_channels(c, cfg.width) for c in self.BASE_CHANNELS]
        cins = [1] + ch[:-1]
        # a plain stem at full resolution (a residual block there would double the reader's cost)
        self.blocks = nn.ModuleList([PlainBlock(1, ch[0], self.POOLS[0])] + [
            ResidualBlock(ci, co, p) for ci, co, p in zip(cins[1:], ch[1:], self.POOLS[1:])])
        self.block_channels = tuple(ch)
        self.height_pool = nn.AdaptiveMaxPool2d((self.FRAME_HEIGHT, None))
        self.dropout = nn.Dropout(cfg.dropout)
        hidden = 2 * cfg.rnn_hidden
        self.project = nn.Conv1d(ch[-1] * self.FRAME_HEIGHT, hidden, 1)
        self.temporal = nn.Sequential(*(TemporalConv(hidden, 2 ** i) for i in range(cfg.rnn_layers + 1)))
        self.classifier = nn.Linear(hidden, self.num_classes)
        self.tap_channels = {f"cnn{i + 1}": c for i, c in enumerate(ch)}
        self.tap_channels["cnn_last"] = ch[-1]
        self.tap_channels["tcn"] = hidden

    def sequence(self, seq: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=seq.device.type, enabled=False):
            x = seq.float().permute(1, 2, 0)                  # (B,F,T)
            return self.temporal(self.project(x)).permute(2, 0, 1)  # (T,B,2*hidden)


RECOGNIZERS: dict[str, type[LineRecognizer]] = {"crnn": GatedCRNN, "crnn_lstm": CRNNLSTM, "conv_ctc": ConvCTC}


def build_recognizer(cfg: RecognizerConfig, num_classes: int, height: int) -> LineRecognizer:
    """The recognizer named by ``cfg.name``; ``num_classes`` = len(charset) including the blank."""
    if cfg.name not in RECOGNIZERS:
        raise ValueError(f"unknown recognizer {cfg.name!r}; known: {sorted(RECOGNIZERS)}")
    return RECOGNIZERS[cfg.name](cfg, num_classes, height)


def greedy_decode(logits: torch.Tensor, charset) -> list[str]:
    """Best-path CTC decoding of ``(T,B,C)`` scores: argmax per frame, collapse repeats, drop the
    blank (0). ``charset`` is anything with ``decode(ids) -> str`` (e.g. ``data.charset.Charset``)."""
    if logits.dim() != 3:
        raise ValueError(f"greedy_decode expects logits (T,B,C), got shape {tuple(logits.shape)}")
    best = logits.argmax(dim=2).t().cpu()  # (B,T)
    texts = []
    for row in best.tolist():
        ids, prev = [], 0
        for k in row:
            if k != prev and k != 0:
                ids.append(k)
            prev = k
        texts.append(charset.decode(ids))
    return texts


class FrozenRecognizer(nn.Module):
    """A recognizer that stays in eval mode with no trainable parameters.

    ``train()`` on this wrapper (or on a parent module holding it) keeps the inner model in eval
    mode, so BatchNorm statistics and dropout never change. Gradients still flow through it to
    its input. Attributes of the inner model (``TAPS``, ``tap_channels``, ``num_classes`` ...)
    are reachable on the wrapper.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        for p in model.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenRecognizer":
        return super().train(False)

    def forward(self, x: torch.Tensor, taps: Sequence[str] = ()) -> RecognizerOutput:
        return self.model(x, taps)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules", {})
            if "model" in modules:
                return getattr(modules["model"], name)
            raise


def freeze(module: nn.Module) -> FrozenRecognizer:
    """Freeze ``module`` in place (eval mode, ``requires_grad=False``) and return it wrapped in a
    :class:`FrozenRecognizer` (a wrapper is returned as is).

    In place on purpose: the recognizer's weights are shared, not copied. If the same recognizer
    is also trained (scenarios S1/S2), give the frozen user a ``copy.deepcopy`` of it instead.
    """
    if isinstance(module, FrozenRecognizer):
        return module
    return FrozenRecognizer(module)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain recognizer inside a :class:`FrozenRecognizer` (or ``module`` itself)."""
    return module.model if isinstance(module, FrozenRecognizer) else module
