"""Reading users' page and line images, and writing restored ones.

Everything the restorer sees is a grayscale ``float32`` array ``(H, W)`` in [0, 1], ink dark on
light paper (the generator's contract). :func:`read_image` turns whatever a scanner or a camera
wrote into that form; :func:`write_image` writes the result as an 8-bit grayscale PNG.

Why always PNG: it is lossless (JPEG would add block artefacts to a restored page) and every tool
reads it; an input ``folio_12.tif`` becomes ``folio_12.png`` in the output folder.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

# ITU-R BT.601 luma, as PIL's convert("L") uses, but computed in float (no 8-bit rounding).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


class ImageReadError(Exception):
    """An input file that cannot be read as an image; names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as a grayscale ``float32`` array ``(H, W)`` in [0, 1].

    Handles 1-bit, 8-bit grayscale (L), grayscale+alpha (LA), palette (P), RGB, RGBA, CMYK,
    16-bit grayscale (I;16 / I) and 32-bit float (F) images in PNG, JPEG, TIFF (first frame) and
    BMP files. The EXIF orientation is applied (a phone photo stored sideways comes out upright);
    transparent pixels are composited over white paper; colour is reduced to BT.601 luma.

    Raises :class:`ImageReadError` for a missing, empty, truncated or non-image file.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "file not found; check the path")
    if not path.is_file():
        raise ImageReadError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "the file is empty (0 bytes); the scan or copy did not finish")
    try:
        with warnings.catch_warnings():
            # A huge scan is a DecompressionBombWarning below 2x the limit; it is a real page.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.seek(0)  # first frame of a multi-page TIFF
                img.load()  # force the full decode so a truncated file fails here, not later
                img = ImageOps.exif_transpose(img)
                return _to_gray_float(img)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image file PIL can decode (corrupt, or another format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"{exc}; raise PIL.Image.MAX_IMAGE_PIXELS if the page is "
                                   "genuine") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # PIL reports truncated/corrupt data as OSError ("image file is truncated"), SyntaxError
        # (bad PNG chunk) or ValueError/EOFError depending on the decoder.
        raise ImageReadError(path, f"the image data is corrupt or truncated ({exc})") from None


def _to_gray_float(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode to ``float32`` gray in [0, 1]."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grayscale (PNG/TIFF). PIL gives 'I' (int32) for some 16-bit files, so 'I' is
        # read on the 16-bit scale too.
        a = np.asarray(img).astype(np.float64) / 65535.0
    elif mode == "F":
        a = np.asarray(img, dtype=np.float64)
        top = np.nanmax(a) if a.size else 0.0
        # Float TIFFs come as [0, 1], [0, 255] or [0, 65535]; pick the scale from the data.
        a = a if top <= 1.0 else a / 255.0 if top <= 255.0 else a / 65535.0
    elif mode in ("1", "L"):
        a = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    elif mode == "LA" or mode == "La":
        la = np.asarray(img.convert("LA"), dtype=np.float64) / 255.0
        a = _over_white(la[..., 0], la[..., 1])
    elif mode in ("RGB", "CMYK", "YCbCr", "LAB", "HSV"):
        a = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0 @ _LUMA
    elif mode in ("RGBA", "RGBa", "PA", "P"):
        # Palette images may carry transparency; RGBA conversion keeps it.
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64) / 255.0
        a = _over_white(rgba[..., :3] @ _LUMA, rgba[..., 3])
    else:
        a = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    if a.ndim != 2:
        raise ValueError(f"unexpected array shape {a.shape} for PIL mode {mode}")
    if not np.isfinite(a).all():
        raise ValueError("the image holds NaN or infinite values")
    return np.clip(a, 0.0, 1.0).astype(np.float32)


def _over_white(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite over white paper: a transparent pixel is background, not ink."""
    return gray * alpha + (1.0 - alpha)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a gray ``(H, W)`` array in [0, 1] as an 8-bit grayscale PNG, atomically.

    Values are clipped to [0, 1] and rounded to 0..255. Parent folders are created. The file is
    written next to its destination under a temporary name and renamed, so a killed run never
    leaves a half-written page under the final name. ``path`` must end in ``.png``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"write_image writes PNG files; name the output <stem>.png, not {path.name}")
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"write_image expects a gray (H, W) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"refusing to write {path.name}: the image holds NaN or infinite values")
    u8 = np.round(np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        Image.fromarray(u8).save(tmp, format="PNG")  # uint8 (H, W) is mode L
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def find_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders into the list of image files to restore.

    A folder contributes its image files (extensions in :data:`IMAGE_EXTENSIONS`, any case),
    sorted by name, one level deep (sub-folders are not searched) and without hidden files
    (e.g. macOS ``._page.png`` resource forks, which are not images). A file named explicitly is
    taken whatever its extension, so the reader can say why it fails. Duplicates are dropped,
    the order of ``inputs`` is kept.

    Raises ``FileNotFoundError`` naming the first input that does not exist.
    """
    found: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            found.append(p)

    for item in inputs:
        p = Path(item).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"input {str(item)!r} does not exist; give image files or "
                                    "folders of them")
        if p.is_dir():
            for child in sorted(p.iterdir(), key=lambda c: c.name):
                if (child.is_file() and not child.name.startswith(".")
                        and child.suffix.lower() in IMAGE_EXTENSIONS):
                    add(child)
        else:
            add(p)
    return found
