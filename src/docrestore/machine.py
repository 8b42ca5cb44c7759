"""The machine a result is made on, recorded in every ledger entry beside its commit: training's
floating-point kernels differ between CPUs and library versions, so two machines may give two
results from one commit."""

from __future__ import annotations

import platform
from pathlib import Path


def machine_info() -> dict:
    """The machine a result is made on: CPU, the numpy SIMD extensions in use, thread count and
    the versions of the numeric libraries (floating-point kernels differ between them)."""
    import numpy as np
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    simd = []
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats  # numpy >= 2

        simd = sorted(k for k, v in feats.items() if v and k.startswith(("AVX512F", "AVX2", "FMA3", "ASIMD")))
    except ImportError:  # pragma: no cover - older numpy
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    return {"cpu": cpu, "arch": platform.machine(), "simd": simd, "torch_threads": torch.get_num_threads(),
            "gpu": gpu, "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "os": f"{platform.system()} {platform.release()}"}
