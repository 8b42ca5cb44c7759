"""Models: the U-Net generator, the discriminators and the CTC recognizers, with registries.

Contracts (docs/architecture.md): lines are ``(B,1,H,W)`` in [0, 1], H and W multiples of 16.
"""

from .discriminator import (DISCRIMINATORS, DualModalDiscriminator, PatchDiscriminator,
                            TextBranch, build_discriminator)
from .generator import GENERATORS, UNetGenerator, build_generator
from .recognizer import (CRNNLSTM, RECOGNIZERS, TIME_STRIDE, FrozenRecognizer, GatedCRNN,
                         LineRecognizer, RecognizerOutput, build_recognizer, freeze,
                         greedy_decode, rnn_forward, to_frames, unwrap)

__all__ = [
    "GENERATORS", "UNetGenerator", "build_generator",
    "DISCRIMINATORS", "PatchDiscriminator", "DualModalDiscriminator", "TextBranch",
    "build_discriminator",
    "RECOGNIZERS", "LineRecognizer", "GatedCRNN", "CRNNLSTM", "RecognizerOutput", "TIME_STRIDE",
    "build_recognizer", "greedy_decode", "to_frames", "rnn_forward", "freeze", "unwrap",
    "FrozenRecognizer",
]
