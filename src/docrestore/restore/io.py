"""Reading users' page and line images, and writing restored ones.

Everything the restorer sees is a grayscale ``float32`` array ``(H, W)`` in [0, 1], ink dark on
light paper (the generator's contract). :func:`read_page` turns whatever a scanner or a camera
wrote into that form and keeps what an archive needs to know about the file (:class:`PageInfo`:
resolution, bit depth, ICC profile); :func:`write_image` writes the result as a grayscale PNG,
8-bit or 16-bit, carrying that resolution (and a gray ICC profile) on.

Why always PNG: it is lossless (JPEG would add block artefacts to a restored page), holds 16-bit
gray and a resolution (pHYs), and every tool reads it.

Output names (:func:`output_name`): the input's path relative to the folder it was found in (just
its file name for a file given by name), with ``.png`` appended: ``scans/vol1/folio_12.tif`` found
in ``scans/`` becomes ``<out>/vol1/folio_12.tif.png``, ``page.png`` becomes ``page.png.png``.
Appending keeps the whole input name, so two files of one folder can never get the same output
and a name never depends on what else is in the folder (``page.png`` and ``page.jpg`` side by
side give ``page.png.png`` and ``page.jpg.png``, alone or together). Each page of a multi-page
TIFF is an input of its own, numbered from 1: ``vol.tif`` with three pages gives
``vol.tif.p001.png`` ... ``vol.tif.p003.png`` (a one-page TIFF stays ``vol.tif.png``).

An output is its PNG and its JSON sidecar together (:func:`existing_output`): a PNG without its
sidecar (a run stopped between the two writes) is made again, and a file of that name that
docrestore did not write (the PNG carries a ``Software: docrestore`` text chunk, the sidecar a
``docrestore`` record naming it) is left alone unless ``--overwrite``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

# ITU-R BT.601 luma, as PIL's convert("L") uses, but computed in float (no 8-bit rounding).
_LUMA = (0.299, 0.587, 0.114)
SOFTWARE = "docrestore"  # the PNG text chunk that marks an output as written by docrestore
SIDECAR_KIND = "docrestore restore sidecar"  # the sidecar's own mark


class ImageReadError(Exception):
    """An input file that cannot be read as an image; names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


@dataclass
class PageInfo:
    """What an archive needs to know about an input file besides its pixels.

    ``mode``: PIL's mode of the file (e.g. ``I;16``, ``L``, ``RGB``); ``bits``: bits per sample
    of the gray image the restorer would give back (16 for 16-bit and 32-bit float files, 1 for
    bilevel, else 8); ``dpi``: ``(x, y)`` resolution in dots per inch or None when the file has
    none; ``icc``: the embedded ICC profile (bytes) or None; ``format``: PIL's format name."""

    mode: str = "L"
    bits: int = 8
    dpi: tuple[float, float] | None = None
    icc: bytes | None = None
    format: str = ""

    @property
    def icc_space(self) -> str | None:
        """The ICC profile's data colour space (``GRAY``, ``RGB``, ``CMYK``), from its header."""
        if not self.icc or len(self.icc) < 20:
            return None
        return self.icc[16:20].decode("ascii", "replace").strip()


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _page_info(img: Image.Image) -> PageInfo:
    dpi = img.info.get("dpi")
    if img.format == "TIFF" and 282 not in getattr(img, "tag_v2", {}):
        dpi = None  # no XResolution tag: Pillow says 1 dpi, the truth is "unknown"
    if dpi is not None:
        try:
            dpi = (float(dpi[0]), float(dpi[1]))
            # PNG stores pixels per metre: 400 dpi comes back as 399.9992; round what is that close.
            dpi = tuple(float(round(d)) if abs(d - round(d)) < 0.01 else d for d in dpi)
            dpi = dpi if all(np.isfinite(d) and d > 0 for d in dpi) else None
        except (TypeError, ValueError, IndexError):
            dpi = None
    bits = 16 if img.mode in _SIXTEEN_BIT_MODES else 1 if img.mode == "1" else 8
    return PageInfo(mode=img.mode, bits=bits, dpi=dpi, icc=img.info.get("icc_profile") or None,
                    format=img.format or "")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as a grayscale ``float32`` array ``(H, W)`` in [0, 1] (see
    :func:`read_page`, which also returns the file's :class:`PageInfo`)."""
    return read_page(path)[0]


def read_page(path: str | Path, frame: int = 0) -> tuple[np.ndarray, PageInfo]:
    """Read an image file as a grayscale ``float32`` array ``(H, W)`` in [0, 1] and its
    :class:`PageInfo` (resolution, bit depth, ICC profile).

    Handles 1-bit, 8-bit grayscale (L), grayscale+alpha (LA), palette (P), RGB, RGBA, CMYK,
    16-bit grayscale (I;16 / I) and 32-bit float (F) images in PNG, JPEG, TIFF (page ``frame``,
    counted from 0, of a multi-page file) and BMP files. Memory: about 10 bytes a pixel beside
    Pillow's copy (float32 throughout; a 100-megapixel page needed 2.8 GB in float64). The EXIF orientation is applied (a phone photo stored sideways comes out upright);
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
                img.seek(frame)  # one page of a multi-page TIFF
                img.load()  # force the full decode so a truncated file fails here, not later
                info = _page_info(img)
                img = ImageOps.exif_transpose(img)
                return _to_gray_float(img), info
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image file PIL can decode (corrupt, or another format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"{exc}; raise PIL.Image.MAX_IMAGE_PIXELS if the page is "
                                   "genuine") from None
    except EOFError:
        if frame:
            raise ImageReadError(path, f"it has no page {frame + 1}") from None
        raise ImageReadError(path, "the image data is corrupt or truncated (EOF)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        # PIL reports truncated/corrupt data as OSError ("image file is truncated"), SyntaxError
        # (bad PNG chunk) or ValueError/EOFError depending on the decoder.
        raise ImageReadError(path, f"the image data is corrupt or truncated ({exc})") from None


def _to_gray_float(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode to ``float32`` gray in [0, 1], in place wherever it can: a page of
    100 megapixels must not need gigabytes of float64 intermediates."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grayscale (PNG/TIFF). PIL gives 'I' (int32) for some 16-bit files, so 'I' is
        # read on the 16-bit scale too.
        a = np.asarray(img).astype(np.float32)
        a /= 65535.0
    elif mode == "F":
        a = np.array(img, dtype=np.float32)
        top = np.nanmax(a) if a.size else 0.0
        # Float TIFFs come as [0, 1], [0, 255] or [0, 65535]; pick the scale from the data.
        if top > 1.0:
            a /= 255.0 if top <= 255.0 else 65535.0
    elif mode in ("1", "L"):
        a = _unit(np.asarray(img.convert("L") if mode == "1" else img))
    elif mode == "LA" or mode == "La":
        la = np.asarray(img.convert("LA"))
        a = _over_white(_unit(la[..., 0]), _unit(la[..., 1]))
    elif mode in ("RGB", "CMYK", "YCbCr", "LAB", "HSV"):
        a = _luma(np.asarray(img.convert("RGB")))
    elif mode in ("RGBA", "RGBa", "PA", "P"):
        # Palette images may carry transparency; RGBA conversion keeps it.
        rgba = np.asarray(img.convert("RGBA"))
        a = _over_white(_luma(rgba), _unit(rgba[..., 3]))
    else:
        a = _unit(np.asarray(img.convert("L")))
    if a.ndim != 2:
        raise ValueError(f"unexpected array shape {a.shape} for PIL mode {mode}")
    if not np.isfinite(a).all():
        raise ValueError("the image holds NaN or infinite values")
    return np.clip(a, 0.0, 1.0, out=a)


def _unit(channel: np.ndarray) -> np.ndarray:
    """8-bit values as float32 in [0, 1]."""
    out = channel.astype(np.float32)
    out /= 255.0
    return out


def _luma(rgb: np.ndarray, rows: int = 256) -> np.ndarray:
    """BT.601 luma of 8-bit RGB(A) as float32 in [0, 1], a band of rows at a time (no full-page
    temporary)."""
    out = np.empty(rgb.shape[:2], np.float32)
    for top in range(0, rgb.shape[0], rows):
        band = rgb[top:top + rows]
        o = out[top:top + rows]
        np.multiply(band[..., 0], np.float32(_LUMA[0] / 255.0), out=o, dtype=np.float32)
        for c in (1, 2):
            o += np.multiply(band[..., c], np.float32(_LUMA[c] / 255.0), dtype=np.float32)
    return out


def _over_white(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite over white paper: a transparent pixel is background, not ink (in place)."""
    gray -= 1.0
    gray *= alpha
    gray += 1.0
    return gray


def write_image(path: str | Path, image: np.ndarray, bits: int = 8,
                dpi: tuple[float, float] | None = None, icc: bytes | None = None) -> Path:
    """Write a gray ``(H, W)`` array in [0, 1] as a grayscale PNG, atomically.

    ``bits``: 8 (values rounded to 0..255) or 16 (0..65535). ``dpi``: the resolution to record
    (PNG pHYs), e.g. the input's, since the output has the input's size. ``icc``: an ICC profile
    to embed; only a gray one fits a gray PNG (ValueError otherwise). Values are clipped to
    [0, 1]. Parent folders are created. The file is written next to its destination under a
    temporary name and renamed, so a killed run never leaves a half-written page under the final
    name. ``path`` must end in ``.png``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"write_image writes PNG files; name the output <stem>.png, not {path.name}")
    if bits not in (8, 16):
        raise ValueError(f"write_image writes 8-bit or 16-bit gray, not {bits}-bit")
    if icc is not None and PageInfo(icc=icc).icc_space != "GRAY":
        raise ValueError(f"a gray PNG can only carry a GRAY ICC profile, not {PageInfo(icc=icc).icc_space}")
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"write_image expects a gray (H, W) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"refusing to write {path.name}: the image holds NaN or infinite values")
    top = 255.0 if bits == 8 else 65535.0
    ints = np.round(np.clip(a.astype(np.float64), 0.0, 1.0) * top).astype(np.uint8 if bits == 8 else np.uint16)
    marker = PngImagePlugin.PngInfo()
    marker.add_text("Software", SOFTWARE)  # how a rerun tells its own outputs from a user's files
    extra = {"pnginfo": marker}
    if dpi is not None:
        extra["dpi"] = tuple(float(d) for d in dpi)
    if icc is not None:
        extra["icc_profile"] = icc
    # uint8 -> mode L, uint16 -> I;16
    return _atomic(path, lambda tmp: Image.fromarray(ints).save(tmp, format="PNG", **extra))


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (temporary name, then rename), creating parent folders."""
    return _atomic(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _atomic(path: Path, write) -> Path:
    """``write(tmp)`` beside ``path`` under a temporary name, then rename: a killed run never
    leaves a half-written file under the final name."""
    from ..files import replacing

    with replacing(path) as tmp:
        write(tmp)
    return path


@dataclass(frozen=True)
class PageInput:
    """One image to restore: where it is (``path``) and where it sits relative to the input it
    was found in (``rel``: the file name for a file given by name, the path inside the folder
    for a folder), which the output mirrors. ``frame``: the page of a multi-page TIFF (from 1;
    0 for a file of one page), of ``frames``."""

    path: Path
    rel: PurePath
    frame: int = 0
    frames: int = 1

    @property
    def output(self) -> PurePath:
        return output_name(self.rel, self.frame)

    @property
    def sidecar(self) -> PurePath:
        return sidecar_name(self.rel, self.frame)


@dataclass
class Inputs:
    """What :func:`find_inputs` found: ``pages`` to restore and ``skipped`` ``(path, why)``."""

    pages: list[PageInput] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _page_suffix(frame: int) -> str:
    return f".p{frame:03d}" if frame else ""


def output_name(rel: PurePath, frame: int = 0) -> PurePath:
    """The output path (relative to ``--out``) for an input at ``rel``: the same folders and the
    whole file name with ``.png`` appended (``vol1/folio.tif`` -> ``vol1/folio.tif.png``), and
    page ``frame`` of a multi-page TIFF numbered (``vol.tif.p002.png``). Stable: it depends on
    this input alone, never on the other files."""
    return rel.with_name(rel.name + _page_suffix(frame) + ".png")


def sidecar_name(rel: PurePath, frame: int = 0) -> PurePath:
    """The JSON record beside an output: the input's name with ``.json`` appended
    (``vol1/folio.tif`` -> ``vol1/folio.tif.json``, beside ``folio.tif.png``; ``vol.tif.p002.json``
    for a page of a multi-page TIFF)."""
    return rel.with_name(rel.name + _page_suffix(frame) + ".json")


def page_count(path: Path) -> int:
    """How many pages a TIFF holds (1 for other files, and for a file that cannot be read: the
    reader says why when its turn comes)."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return max(1, int(getattr(img, "n_frames", 1)))
    except Exception:  # noqa: BLE001 - any unreadable file counts as one page, named later
        return 1


def existing_output(target: Path, sidecar: Path) -> str:
    """What stands where an output would go: ``"none"``; ``"complete"`` (docrestore's PNG and its
    sidecar); ``"incomplete"`` (docrestore's PNG or sidecar without the other: made again); or,
    for a file docrestore did not write, a sentence naming it."""
    side_ours = _our_sidecar(sidecar, target.name)
    if sidecar.exists() and not side_ours:
        return f"{sidecar} exists and is not a docrestore sidecar"
    if not target.exists():
        return "incomplete" if side_ours else "none"
    if side_ours:
        return "complete"
    if _our_png(target):
        return "incomplete"
    return f"{target} exists and was not written by docrestore"


def _our_sidecar(path: Path, output: str) -> bool:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and (record.get("kind") == SIDECAR_KIND or "docrestore" in record) and \
        (record.get("output") or {}).get("file") == output


def _our_png(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            return getattr(img, "text", {}).get("Software") == SOFTWARE
    except Exception:  # noqa: BLE001 - unreadable: not something docrestore wrote
        return False


def find_inputs(inputs: Iterable[str | Path], recursive: bool = False) -> Inputs:
    """Expand files and folders into the pages to restore and the files that are skipped.

    A folder contributes its image files (extensions in :data:`IMAGE_EXTENSIONS`, any case),
    sorted by path; with ``recursive`` its sub-folders too (the output mirrors them), each real
    folder once (a link to a folder already walked, e.g. to the folder itself, is skipped and
    named), otherwise a sub-folder is skipped and named. Everything else in a folder (other extensions, hidden files
    such as macOS ``._page.png`` resource forks) is skipped and named with the reason. A file
    named explicitly is taken whatever its extension, so the reader can say why it fails.
    Duplicates are dropped, the order of ``inputs`` is kept.

    Raises ``FileNotFoundError`` naming the first input that does not exist.
    """
    found = Inputs()
    seen: set[Path] = set()

    def add(p: Path, rel: PurePath) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            n = page_count(p)
            if n == 1:
                found.pages.append(PageInput(p, rel))
            else:  # every page of a multi-page TIFF, numbered from 1
                found.pages += [PageInput(p, rel, k, n) for k in range(1, n + 1)]

    visited: set[Path] = set()  # real folders walked: a link back to one would loop forever

    def walk(root: Path, folder: Path) -> None:
        visited.add(folder.resolve())
        for child in sorted(folder.iterdir(), key=lambda c: c.name):
            rel = child.relative_to(root)
            if child.name.startswith("."):
                found.skipped.append((child, "hidden"))
            elif child.is_dir():
                if recursive and child.resolve() in visited:
                    found.skipped.append((child, f"a link to {child.resolve()}, a folder already walked"))
                elif recursive:
                    walk(root, child)
                else:
                    found.skipped.append((child, "a sub-folder (--recursive restores sub-folders)"))
            elif not child.is_file():
                found.skipped.append((child, "not a regular file"))
            elif child.suffix.lower() not in IMAGE_EXTENSIONS:
                found.skipped.append((child, f"not an image extension ({' '.join(IMAGE_EXTENSIONS)})"))
            else:
                add(child, rel)

    for item in inputs:
        p = Path(item).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"input {str(item)!r} does not exist; give image files or "
                                    "folders of them")
        if p.is_dir():
            walk(p, p)
        else:
            add(p, PurePath(p.name))
    return found


def output_clashes(pages: Iterable[PageInput]) -> list[tuple[Path, Path, PurePath]]:
    """Pairs of inputs that would be written to the same output (the same relative path found
    in two inputs, e.g. ``vol1/001.tif`` and ``vol2/001.tif`` given as two folders), compared
    case-insensitively as macOS and Windows file systems do: ``(first, second, output)``."""
    owner: dict[str, PageInput] = {}
    clashes = []
    for page in pages:
        key = str(page.output).lower()
        if key in owner:
            clashes.append((owner[key].path, page.path, page.output))
        else:
            owner[key] = page
    return clashes


def find_images(inputs: Iterable[str | Path], recursive: bool = False) -> list[Path]:
    """The image files :func:`find_inputs` would restore, as paths (a multi-page file once)."""
    return list(dict.fromkeys(page.path for page in find_inputs(inputs, recursive).pages))
