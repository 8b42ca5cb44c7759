"""Real degraded pages paired with binary ground truth (DIBCO and the like).

Two folder layouts are read:

- ``dibco``: ``<SET>_<ID>_source.<ext>`` (the degraded scan) beside ``<SET>_<ID>_target.<ext>``
  (the ground truth) in one folder, as in ``../shared/data/dibco`` (``DIBCO2009_H01_source.png``);
  the set is the part before the first ``_``.
- ``folders``: ``imgs/`` and ``gt/`` with matching file stems, either in the root itself (one set,
  named after the root folder) or in one sub-folder per set (``<root>/<SET>/imgs``, ``<root>/<SET>/gt``).

Images may be png, tif, bmp or jpg. The ground truth may be 0/255, 0/1 or any other two levels at
any bit depth; ink is the darker level. A bad pair (missing partner, unreadable file, sizes that
differ, ground truth with more than two levels) raises :class:`PageDataError` naming the files:
nothing is skipped silently.

Pages are held in memory once read (a DIBCO page is about a megapixel);
:class:`PatchDataset` cuts random training patches from them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import config as C

PAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")
_DIBCO_NAME = re.compile(r"^(?P<set>[^_]+)_(?P<id>.+)_(?P<role>source|target)$", re.IGNORECASE)


class PageDataError(ValueError):
    """A page folder or page pair that cannot be used; names the files and what to do."""


@dataclass
class PagePair:
    """One page: where its files are and, once loaded, the scan and the ground-truth ink mask."""

    set: str
    id: str
    source: Path
    target: Path
    image: np.ndarray | None = None  # (H, W) float32 in [0, 1], ink dark
    ink: np.ndarray | None = None  # (H, W) bool, True = ink
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.set}_{self.id}"

    @property
    def clean(self) -> np.ndarray:
        """The ground truth as a grey target image: 0 = ink, 1 = paper."""
        return (~self.ink).astype(np.float32)

    def load(self) -> "PagePair":
        if self.image is None:
            self.image, self.ink, self.digest = load_pair(self.source, self.target)
        return self


def default_root() -> Path:
    """``../shared/data/dibco`` next to the project root (where the shared data lives)."""
    return C.PROJECT_ROOT.parent / "shared" / "data" / "dibco"


def resolve_root(root: str) -> Path:
    return default_root() if root in ("", "auto") else C.resolve_path(root)


def data_hint() -> str:
    """One line: where the DIBCO pages come from and how to point at them."""
    return (f"DIBCO page pairs not found at {default_root()}: the pages of the DIBCO 2009-2017 contests "
            "(collected in the public repository Leedeng/SauvolaNet, folder Dataset/) go there, or give "
            "their folder with `make paper-figures DIBCO=PATH` (config key pages.root=PATH)")


# --------------------------------------------------------------------------------- discovery
def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PAGE_EXTENSIONS)


def _by_stem(files: list[Path], where: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in files:
        if p.stem in out:
            raise PageDataError(f"two images share the stem {p.stem!r} in {where}: {out[p.stem].name} and "
                                f"{p.name}; keep one")
        out[p.stem] = p
    return out


def _missing_partner(what: str, path: Path, partner: str) -> PageDataError:
    return PageDataError(f"{what} {path} has no {partner}; add it or move the file out of the page folder")


def _dibco_pairs(root: Path) -> list[PagePair]:
    sources: dict[tuple[str, str], Path] = {}
    targets: dict[tuple[str, str], Path] = {}
    for p in _images(root):
        m = _DIBCO_NAME.match(p.stem)
        if not m:
            continue
        table = sources if m["role"].lower() == "source" else targets
        key = (m["set"], m["id"])
        if key in table:
            raise PageDataError(f"two files for {m['set']}_{m['id']} ({m['role']}) in {root}: "
                                f"{table[key].name} and {p.name}; keep one")
        table[key] = p
    for key, p in sources.items():
        if key not in targets:
            raise _missing_partner("the scan", p, f"ground truth ({key[0]}_{key[1]}_target.png)")
    for key, p in targets.items():
        if key not in sources:
            raise _missing_partner("the ground truth", p, f"scan ({key[0]}_{key[1]}_source.png)")
    return [PagePair(s, i, sources[(s, i)], targets[(s, i)]) for s, i in sorted(sources)]


def _folder_pairs(folder: Path, set_name: str) -> list[PagePair]:
    imgs = _by_stem(_images(folder / "imgs"), folder / "imgs")
    gts = _by_stem(_images(folder / "gt"), folder / "gt")
    for stem, p in imgs.items():
        if stem not in gts:
            raise _missing_partner("the scan", p, f"ground truth in {folder / 'gt'} (same stem {stem!r})")
    for stem, p in gts.items():
        if stem not in imgs:
            raise _missing_partner("the ground truth", p, f"scan in {folder / 'imgs'} (same stem {stem!r})")
    return [PagePair(set_name, stem, imgs[stem], gts[stem]) for stem in sorted(imgs)]


def _has_folders(folder: Path) -> bool:
    return (folder / "imgs").is_dir() and (folder / "gt").is_dir()


def find_pairs(root: str | Path, layout: str = "auto") -> list[PagePair]:
    """Every page pair under ``root`` (not loaded yet), sorted by set and id."""
    root = Path(root)
    if not root.is_dir():
        raise PageDataError(f"page folder {root} does not exist. " + data_hint())
    if layout == "auto":
        subsets = [d for d in sorted(root.iterdir()) if d.is_dir() and _has_folders(d)]
        layout = "folders" if _has_folders(root) or subsets else "dibco"
    if layout == "dibco":
        pairs = _dibco_pairs(root)
    elif layout == "folders":
        if _has_folders(root):
            pairs = _folder_pairs(root, root.name)
        else:
            pairs = [p for d in sorted(root.iterdir()) if d.is_dir() and _has_folders(d)
                     for p in _folder_pairs(d, d.name)]
    else:
        raise PageDataError(f"pages.layout must be auto, dibco or folders, got {layout!r}")
    if not pairs:
        raise PageDataError(f"no page pairs in {root} (layout {layout}): expected <SET>_<ID>_source.png with "
                            "<SET>_<ID>_target.png, or imgs/ and gt/ folders with matching stems")
    return pairs


# ----------------------------------------------------------------------------------- loading
def read_ground_truth(path: Path) -> np.ndarray:
    """A ground-truth image as a bool ink mask (the darker of its two levels), at any bit depth."""
    from ..restore.io import ImageReadError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGB", "RGBA", "P", "LA", "CMYK"):
                img = img.convert("L")
            a = np.asarray(img)
    except FileNotFoundError:
        raise PageDataError(f"cannot read the ground truth {path}: file not found") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise PageDataError(f"cannot read the ground truth {path}: {ImageReadError(path, str(exc)).reason}; "
                            "replace the file") from None
    if a.ndim != 2:
        raise PageDataError(f"the ground truth {path} has shape {a.shape}; it must be one grey channel")
    levels = np.unique(a)
    if len(levels) > 2:
        shown = ", ".join(str(v) for v in levels[:6]) + (", ..." if len(levels) > 6 else "")
        raise PageDataError(f"the ground truth {path} is not binary: {len(levels)} grey levels ({shown}); "
                            "binarise it (ink one value, paper another) or check that it is the ground truth")
    if len(levels) == 1:  # one level: a blank page (paper) unless that level is black
        return np.full(a.shape, bool(levels[0] == 0))
    return a == levels[0]


def load_pair(source: Path, target: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(scan as float32 grey, ground-truth ink mask, content digest); a bad pair raises PageDataError."""
    from ..restore.io import ImageReadError, read_image

    try:
        image = read_image(source)
    except ImageReadError as exc:
        raise PageDataError(f"cannot read the scan {source}: {exc.reason}") from None
    ink = read_ground_truth(target)
    if image.shape != ink.shape:
        raise PageDataError(f"the scan {source} is {image.shape[1]}x{image.shape[0]} but its ground truth "
                            f"{target} is {ink.shape[1]}x{ink.shape[0]} (width x height); they must match "
                            "pixel for pixel")
    return image, ink, pair_digest(source, target)


def pair_digest(source: Path, target: Path) -> str:
    """A page pair's content digest: its two files' bytes (what :attr:`PageSplits.data_hash` is made of)."""
    return hashlib.sha256(Path(source).read_bytes() + Path(target).read_bytes()).hexdigest()[:16]


# ----------------------------------------------------------------------------------- splits
@dataclass
class PageSplits:
    root: Path
    train: list[PagePair]
    val: list[PagePair]
    test: list[PagePair]

    @property
    def data_hash(self) -> str:
        h = hashlib.sha256()
        for p in self.train + self.val + self.test:
            h.update(f"{p.name}:{p.digest};".encode())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        return {"root": str(self.root), "train": [p.name for p in self.train],
                "val": [p.name for p in self.val], "test": [p.name for p in self.test]}


def validation_pages(by_set: dict[str, list[PagePair]], sets: list[str], n: int) -> list[PagePair]:
    """The last page of each of the first ``n`` sets (cycling when there are fewer sets)."""
    val: list[PagePair] = []
    k = 0
    while len(val) < n:
        pool = [p for p in by_set[sets[k % len(sets)]] if p not in val]
        if pool:
            val.append(pool[-1])
        k += 1
    return val


def split_pages(pairs: list[PagePair], train_sets: list[str], test_sets: list[str], val_pages: int,
                test_pages: int = 0, load: bool = True) -> PageSplits:
    """Training, validation and test pages by set name. Validation pages are taken out of the
    training sets (the last page of each of the first ``val_pages`` sets, cycling when there are
    fewer sets), so the test sets are never seen before the final evaluation."""
    available = sorted({p.set for p in pairs})
    for key, sets in (("pages.train_sets", train_sets), ("pages.test_sets", test_sets)):
        unknown = [s for s in sets if s not in available]
        if unknown:
            raise PageDataError(f"{key} names {unknown}, which the page folder does not hold; its sets: {available}")
        if not sets:
            raise PageDataError(f"{key} is empty; choose from {available}")
    both = sorted(set(train_sets) & set(test_sets))
    if both:
        raise PageDataError(f"{both} is in both pages.train_sets and pages.test_sets; a test set must be unseen")
    by_set = {s: [p for p in pairs if p.set == s] for s in train_sets}
    train_all = [p for s in train_sets for p in by_set[s]]
    if val_pages >= len(train_all):
        raise PageDataError(f"pages.val_pages={val_pages} leaves no training page ({len(train_all)} pages in "
                            f"{train_sets}); lower it")
    val = validation_pages(by_set, train_sets, val_pages)
    train = [p for p in train_all if p not in val]
    test = [p for s in test_sets for p in pairs if p.set == s]
    if test_pages > 0:
        test = test[:test_pages]
    if load:
        for p in train + val + test:
            p.load()
    return PageSplits(Path(pairs[0].source).parent, train, val, test)


def open_pages(cfg: C.Config, load: bool = True) -> PageSplits:
    pc = cfg.pages
    root = resolve_root(pc.root)
    splits = split_pages(find_pairs(root, pc.layout), pc.train_sets, pc.test_sets, pc.val_pages,
                         pc.test_pages, load=load)
    splits.root = root
    return splits


def patch_size(cfg: C.Config) -> tuple[int, int]:
    pc = cfg.pages
    h = pc.patch_height or cfg.data.height
    w = pc.patch_width or cfg.data.width
    for name, side in (("pages.patch_height", h), ("pages.patch_width", w)):
        if side % 16:
            raise C.ConfigError(f"'{name}' = {side} must be a multiple of 16 (the U-Net halves it four times)")
    return h, w


# ---------------------------------------------------------------------------------- patches
class PatchDataset(torch.utils.data.Dataset):
    """Random ``height`` x ``width`` crops of the training pages with random horizontal and
    vertical flips. Item ``i`` is always the same crop (its own RNG seeded by (seed, i)), so a
    resumed run sees the patches an uninterrupted one would. Pages smaller than a patch are
    padded with paper. Items follow the line contract: ``has_clean`` True, no transcription."""

    def __init__(self, pages: list[PagePair], height: int, width: int, per_page: int, seed: int = 0,
                 flips: bool = True):
        if not pages:
            raise PageDataError("no training pages: check pages.train_sets and pages.val_pages")
        self.pages = [p.load() for p in pages]
        self.height, self.width, self.per_page, self.seed, self.flips = height, width, per_page, seed, flips

    def __len__(self) -> int:
        return len(self.pages) * self.per_page

    def crop(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        page = self.pages[index // self.per_page]
        rng = np.random.default_rng([self.seed, index])
        img, clean = page.image, page.clean
        h, w = img.shape
        ph, pw = max(h, self.height), max(w, self.width)
        if (ph, pw) != (h, w):
            img = np.pad(img, ((0, ph - h), (0, pw - w)), constant_values=1.0)
            clean = np.pad(clean, ((0, ph - h), (0, pw - w)), constant_values=1.0)
        y = int(rng.integers(0, ph - self.height + 1))
        x = int(rng.integers(0, pw - self.width + 1))
        a = img[y:y + self.height, x:x + self.width]
        b = clean[y:y + self.height, x:x + self.width]
        if self.flips and rng.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        if self.flips and rng.random() < 0.5:
            a, b = a[::-1], b[::-1]
        return np.ascontiguousarray(a), np.ascontiguousarray(b), f"{page.name}@{y},{x}"

    def __getitem__(self, index: int) -> dict:
        a, b, name = self.crop(index)
        return {"degraded": torch.from_numpy(a).unsqueeze(0), "clean": torch.from_numpy(b).unsqueeze(0),
                "has_clean": True, "text": "", "target": torch.zeros(0, dtype=torch.long), "id": name}
