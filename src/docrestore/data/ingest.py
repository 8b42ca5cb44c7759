"""Real archive lines into a manifest: line-image folders, PAGE XML and ALTO pages.

``docrestore ingest PAGES... --out DIR`` reads

- folders of line images with same-stem transcriptions ``name.gt.txt`` or ``name.txt`` (the
  kraken / Calamari convention); the page of a line is its name without a trailing line number
  (``de_6_00_r1l43`` -> ``de_6_00``, ``page_l12`` -> ``page``), else the name itself;
- PAGE XML (2013-07-15 and 2019-07-15 schemas: Transkribus, OCR-D) and ALTO v2-v4 (eScriptorium,
  kraken) files with their page images.

A page's text line is cut along its polygon (PAGE ``Coords``, ALTO ``Shape/Polygon``), or where
only a baseline is given, along the band from ``0.75 h`` above to ``0.25 h`` below the baseline
(``h``: ALTO's line HEIGHT, else the median distance between the page's baselines); an ALTO line
with only a box is cut by its box. Outside the polygon the cut is paper white; a line whose
baseline slants is rotated level (deskewed). Lines not yet transcribed (empty text, common in
eScriptorium exports) are left out and listed in ``DIR/ingest_untranscribed.txt``; they are not
errors.

A page is named by its XML's path under the input folder (``iforal/foral_x/1.xml`` ->
``foral_x-1``; an XML given as a file: its stem), and each record carries its ``set``: the
name of the input folder it came from (``iforal``), so one manifest can hold several collections
and report them apart. Splits are by page, never by line, so no page has lines on both sides of a
train/test border: pages named with ``--test-pages`` / ``--val-pages`` go there, the others are
spread by the shares (``--test-share``, ``--val-share``) in a seeded order, within each set. A
file that cannot be used (an unreadable XML, a missing or oversized image, a line with
coordinates that are not finite numbers or with a polygon outside the image) is named in the
report and in ``DIR/ingest_errors.txt``; everything else is still written, and the command exits
nonzero. Line ids are checked after the file-name sanitising, before a crop is written: a second
line with the id of one already taken (a repeated PAGE id, ``l 2`` beside ``l-2``, one line file
name in two folders) is refused with both sources named, so no text is ever paired with another
line's image. XML is read with defusedxml (no entities, no external references). The result is a
folder the trainer and evaluator read with ``data.manifest``:
``manifest.jsonl`` (``clean: null``), ``charset.txt``, ``dataset.json`` and ``lines/<page>/*.png``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as DET
import numpy as np
from PIL import Image, ImageDraw

from ..files import replacing, write_json_atomic
from . import manifest as M
from .charset import Charset

log = logging.getLogger("docrestore")

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
PAGE_NS = ("http://schema.primaresearch.org/PAGE/gts/pagecontent/2013-07-15",
           "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15")
ALTO_NS = tuple(f"http://www.loc.gov/standards/alto/ns-v{v}#" for v in (2, 3, 4))
PAPER = 255  # what is outside a line's polygon
# What reading one image can raise: a bomb is not an OSError, and a huge page may not fit in memory.
IMAGE_ERRORS = (OSError, ValueError, Image.DecompressionBombError, MemoryError)
LINE_SUFFIX = re.compile(r"([_.-](r\d+)?l(ine)?\d+|[_.-]\d+)$", re.IGNORECASE)


class IngestError(ValueError):
    """One file or line that could not be ingested (the message names it)."""


@dataclass
class TextLine:
    """A line of a page: its polygon or baseline (+ height) in pixels, and its transcription."""

    id: str
    text: str
    polygon: list[tuple[float, float]] = field(default_factory=list)
    baseline: list[tuple[float, float]] = field(default_factory=list)
    height: float = 0.0
    error: str = ""  # why this line cannot be cut (bad coordinates), reported instead of it


@dataclass
class Page:
    source: Path
    image: Path
    name: str
    lines: list[TextLine]


# ------------------------------------------------------------------------------- parsing
def _points(text: str | None, pairs_with_comma: bool) -> list[tuple[float, float]]:
    """PAGE 'x,y x,y ...' or ALTO 'x y x y ...' (v4 may also use commas) as (x, y) floats."""
    if not text or not text.strip():
        return []
    nums = [_number(v, text) for v in re.split(r"[\s,]+", text.strip()) if v]
    if len(nums) % 2:
        raise IngestError(f"odd number of coordinates in {text[:60]!r}")
    return list(zip(nums[0::2], nums[1::2]))


def _number(value: str, where: str) -> float:
    """A coordinate as a finite float; IngestError quoting it otherwise (``nan``, ``ten``)."""
    try:
        x = float(value)
    except ValueError:
        raise IngestError(f"coordinate {value!r} is not a number (in {where[:60]!r}); "
                          "fix or re-export the file") from None
    if not math.isfinite(x):
        raise IngestError(f"coordinate {value!r} is not a finite number (in {where[:60]!r}); "
                          "fix or re-export the file")
    return x


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ns(root: ET.Element) -> str:
    return root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""


def read_page_xml(path: Path, root: ET.Element) -> Page:
    ns = {"p": _ns(root)}
    page = root.find("p:Page", ns)
    if page is None or not page.get("imageFilename"):
        raise IngestError(f"{path}: PAGE XML without Page@imageFilename")
    lines = []
    for i, tl in enumerate(page.iter(f"{{{ns['p']}}}TextLine")):
        coords = tl.find("p:Coords", ns)
        base = tl.find("p:Baseline", ns)
        equivs = tl.findall("p:TextEquiv", ns)  # the line's own, not its words'
        chosen = next((e for e in equivs if e.get("index") == "0"), equivs[0] if equivs else None)
        uni = chosen.find("p:Unicode", ns) if chosen is not None else None
        line = TextLine(id=tl.get("id") or f"l{i}", text=(uni.text or "") if uni is not None else "")
        try:
            line.polygon = _points(coords.get("points") if coords is not None else None, True)
            line.baseline = _points(base.get("points") if base is not None else None, True)
        except IngestError as exc:
            line.error = str(exc)
        lines.append(line)
    return Page(path, path.parent / page.get("imageFilename"), path.stem, lines)


def _alto_scale(root: ET.Element, ns: dict, path: Path, image: Path) -> float:
    """Pixels per ALTO unit: 1 for pixel; mm10 and inch1200 need the image's resolution (dpi)."""
    unit_el = root.find("a:Description/a:MeasurementUnit", ns)
    unit = (unit_el.text or "pixel").strip() if unit_el is not None else "pixel"
    if unit == "pixel":
        return 1.0
    per_inch = {"mm10": 254.0, "inch1200": 1200.0}.get(unit)
    if per_inch is None:
        raise IngestError(f"{path}: unknown ALTO MeasurementUnit {unit!r}; expected pixel, mm10 or inch1200")
    try:
        with Image.open(image) as im:
            dpi = im.info.get("dpi", (0, 0))[0]
    except IMAGE_ERRORS as exc:
        raise IngestError(f"{path}: cannot read its image {image}: {_why(exc)}") from exc
    if not dpi:
        raise IngestError(f"{path}: coordinates in {unit} but the image {image} records no resolution (dpi); "
                          "export the ALTO in pixels or set the image's dpi")
    return float(dpi) / per_inch


def read_alto(path: Path, root: ET.Element) -> Page:
    ns = {"a": _ns(root)}
    fname = root.find("a:Description/a:sourceImageInformation/a:fileName", ns)
    if fname is None or not (fname.text or "").strip():
        raise IngestError(f"{path}: ALTO without Description/sourceImageInformation/fileName (the page image)")
    image = path.parent / fname.text.strip()
    scale = _alto_scale(root, ns, path, image)
    lines = []
    for i, tl in enumerate(root.iter(f"{{{ns['a']}}}TextLine")):
        words = []
        for child in tl:
            name = _local(child.tag)
            if name == "String":
                words.append(child.get("CONTENT", ""))
            elif name == "SP":
                words.append(" ")
        text = re.sub(r" +", " ", "".join(_join_words(words))).strip()
        line_id = tl.get("ID") or f"l{i}"
        try:
            lines.append(_alto_geometry(tl, ns, scale, line_id, text))
        except IngestError as exc:
            lines.append(TextLine(id=line_id, text=text, error=str(exc)))
    return Page(path, image, path.stem, lines)


def _alto_geometry(tl: ET.Element, ns: dict, scale: float, line_id: str, text: str) -> TextLine:
    """An ALTO TextLine's polygon, baseline and height in pixels (IngestError on a bad number)."""
    poly_el = tl.find("a:Shape/a:Polygon", ns)
    polygon = [(x * scale, y * scale) for x, y in _points(poly_el.get("POINTS") if poly_el is not None else None, False)]
    base_attr = tl.get("BASELINE")
    box = [_number(v, f"{k}={v}") if (v := tl.get(k)) else None for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT")]
    baseline: list[tuple[float, float]] = []
    if base_attr:
        pts = _points(base_attr, False) if re.search(r"[\s,]", base_attr.strip()) else []
        if pts:  # v4: a polyline
            baseline = [(x * scale, y * scale) for x, y in pts]
        elif all(v is not None for v in box[:3]):  # older: one y value across the line's box
            y = _number(base_attr, f"BASELINE={base_attr}") * scale
            x0, w = box[0] * scale, box[2] * scale
            baseline = [(x0, y), (x0 + w, y)]
    if not polygon and not baseline and all(v is not None for v in box):
        x, y, w, h = (v * scale for v in box)
        polygon = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    height = box[3] * scale if box[3] else 0.0
    return TextLine(id=line_id, text=text, polygon=polygon, baseline=baseline, height=height)


def _join_words(words: list[str]) -> list[str]:
    """Strings separated by SP elements; adjacent Strings without an SP get a space too (ALTO
    producers differ on writing SP)."""
    out: list[str] = []
    for w in words:
        if w != " " and out and out[-1] != " ":
            out.append(" ")
        out.append(w)
    return out


def read_page(path: str | Path) -> Page:
    """A PAGE XML or ALTO file; IngestError naming the file when it is neither or unreadable."""
    path = Path(path)
    try:  # defusedxml: no entity declarations, no external references (expat's own limits beneath)
        root = DET.parse(path).getroot()
    except defusedxml.DefusedXmlException as exc:
        raise IngestError(f"{path}: refused XML with {exc} (entities or external references); "
                          "export it again without a DTD") from exc
    except (ET.ParseError, OSError, UnicodeError, ValueError) as exc:
        raise IngestError(f"{path}: not readable XML ({exc}); export it again from Transkribus / eScriptorium") from exc
    ns = _ns(root)
    if ns in PAGE_NS or (ns.startswith("http://schema.primaresearch.org/PAGE/") and _local(root.tag) == "PcGts"):
        return read_page_xml(path, root)
    if ns in ALTO_NS or _local(root.tag) == "alto":
        return read_alto(path, root)
    raise IngestError(f"{path}: neither PAGE XML ({', '.join(PAGE_NS)}) nor ALTO v2-v4 (root {root.tag!r})")


# ---------------------------------------------------------------------------------- cutting
def _median_spacing(lines: list[TextLine]) -> float:
    ys = sorted(np.mean([p[1] for p in ln.baseline]) for ln in lines if ln.baseline)
    gaps = [b - a for a, b in zip(ys, ys[1:]) if b - a > 2]
    return float(np.median(gaps)) if gaps else 0.0


def band_polygon(baseline: list[tuple[float, float]], height: float) -> list[tuple[float, float]]:
    """The band 0.75 h above to 0.25 h below a baseline: ascenders above, descenders below."""
    top = [(x, y - 0.75 * height) for x, y in baseline]
    bottom = [(x, y + 0.25 * height) for x, y in reversed(baseline)]
    return top + bottom


def baseline_angle(baseline: list[tuple[float, float]]) -> float:
    """The slant of a baseline in degrees (least-squares line; positive = falling to the right)."""
    if len(baseline) < 2:
        return 0.0
    xs, ys = np.array([p[0] for p in baseline]), np.array([p[1] for p in baseline])
    if np.ptp(xs) < 1:
        return 0.0
    slope = np.polyfit(xs, ys, 1)[0]
    return float(math.degrees(math.atan(slope)))


def cut_line(page: Image.Image, polygon: list[tuple[float, float]], angle: float = 0.0) -> Image.Image:
    """The polygon's region of a grayscale page, paper white outside it, rotated level by
    ``angle`` degrees (the baseline's slant) and trimmed to the polygon."""
    w, h = page.size
    xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
    x0, y0 = max(0, int(math.floor(min(xs)))), max(0, int(math.floor(min(ys))))
    x1, y1 = min(w, int(math.ceil(max(xs))) + 1), min(h, int(math.ceil(max(ys))) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise IngestError("its polygon lies outside the page image "
                          f"({min(xs):.0f},{min(ys):.0f})-({max(xs):.0f},{max(ys):.0f}) vs image {w}x{h}")
    crop = page.crop((x0, y0, x1, y1))
    mask = Image.new("L", crop.size, 0)
    ImageDraw.Draw(mask).polygon([(x - x0, y - y0) for x, y in polygon], fill=255)
    line = Image.composite(crop, Image.new("L", crop.size, PAPER), mask)
    if abs(angle) > 0.2:  # PIL turns counter-clockwise: a line falling to the right turns back by +angle
        line = line.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=PAPER)
        mask = mask.rotate(angle, resample=Image.Resampling.NEAREST, expand=True, fillcolor=0)
        box = mask.getbbox()
        if box:
            line = line.crop(box)
    return line


def _why(exc: BaseException) -> str:
    if isinstance(exc, Image.DecompressionBombError):
        return f"{exc} (over Pillow's pixel limit; split the scan or reduce its resolution)"
    if isinstance(exc, MemoryError):
        return "out of memory while reading it (split the scan or reduce its resolution)"
    return str(exc)


def page_lines(page: Page, line_height: float = 0.0) -> tuple[list[tuple[TextLine, Image.Image]], list[str]]:
    """(line, image) for every usable line of ``page``, and one message per unusable line."""
    try:
        with Image.open(page.image) as im:
            gray = im.convert("L")
    except IMAGE_ERRORS as exc:
        raise IngestError(f"{page.source}: cannot read its page image {page.image}: {_why(exc)}") from exc
    spacing = _median_spacing(page.lines)
    out, errors = [], []
    for ln in page.lines:
        where = f"{page.source} line {ln.id}"
        if ln.error:
            errors.append(f"{where}: {ln.error}; not written")
            continue
        if not ln.text.strip():  # not yet transcribed: usual in exports, counted by ingest, not an error
            continue
        height = ln.height or line_height or spacing or 0.0
        polygon = ln.polygon
        if len(polygon) < 3:
            if len(ln.baseline) >= 2 and height > 0:
                polygon = band_polygon(ln.baseline, height)
            else:
                errors.append(f"{where}: no polygon and no baseline with a known height; not written")
                continue
        try:
            out.append((ln, cut_line(gray, polygon, baseline_angle(ln.baseline))))
        except IngestError as exc:
            errors.append(f"{where}: {exc}")
    return out, errors


# ------------------------------------------------------------------------------ line folders
def page_of(stem: str) -> str:
    """The page a line image belongs to, from its name (see the module docstring)."""
    base = LINE_SUFFIX.sub("", stem)
    return base or stem


def transcription_of(image: Path) -> Path | None:
    for cand in (image.with_suffix(".gt.txt"), image.with_suffix(".txt")):
        if cand.is_file():
            return cand
    return None


# ---------------------------------------------------------------------------------- splits
def assign_splits(pages: list[str], test_pages: list[str], val_pages: list[str], test_share: float,
                  val_share: float, seed: int) -> dict[str, str]:
    """{page: split}: named pages first, the others by the shares in a seeded order (at least one
    test page when there are two or more pages and a positive test share; likewise val with three)."""
    unknown = [p for p in test_pages + val_pages if p not in pages]
    if unknown:
        raise IngestError(f"--test-pages/--val-pages name page(s) {unknown} that are not among the "
                          f"ingested pages {sorted(pages)}")
    out = {p: "test" for p in test_pages}
    out.update({p: "val" for p in val_pages})
    rest = sorted(p for p in pages if p not in out)
    random.Random(seed).shuffle(rest)
    n = len(pages)
    n_test = 0 if test_pages else max(1 if n >= 2 and test_share > 0 else 0, round(test_share * n))
    n_val = 0 if val_pages else max(1 if n >= 3 and val_share > 0 else 0, round(val_share * n))
    n_test, n_val = min(n_test, len(rest)), min(n_val, max(0, len(rest) - n_test - 1))
    for i, p in enumerate(rest):
        out[p] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


# --------------------------------------------------------------------------------- ingest
def set_name(raw: str) -> str:
    """The set (collection) of an input: a folder's own name, a file's folder's name."""
    p = Path(raw).resolve()
    return _safe((p if p.is_dir() else p.parent).name)


def page_name(xml: Path, root: Path | None) -> str:
    """A page's name: its path under the input folder without the suffix (``foral_x/1.xml`` ->
    ``foral_x-1``), so pages of one name in sibling folders (``1.xml`` in every charter of a set)
    stay apart; an XML given as a file is named by its stem."""
    if root is None:
        return _safe(xml.stem)
    rel = xml.relative_to(root).with_suffix("")
    return _safe("-".join(rel.parts))


def _collect(inputs: list[str]) -> tuple[list[tuple[Path, Path | None, str]], list[tuple[Path, str]], list[str]]:
    """(XML files with their input folder and set, line images with a transcription and their set,
    errors) from files and folders."""
    xmls, lines, errors = [], [], []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            files = [p]
        else:
            errors.append(f"{p}: no such file or folder")
            continue
        group = set_name(raw)
        for f in files:
            if f.suffix.lower() == ".xml":
                xmls.append((f, p if p.is_dir() else None, group))
            elif f.suffix.lower() in IMAGE_EXTS and transcription_of(f) is not None:
                lines.append((f, group))
            elif p.is_file() and f.suffix.lower() in IMAGE_EXTS:
                errors.append(f"{f}: a line image without {f.stem}.gt.txt or {f.stem}.txt beside it; not written")
    return xmls, lines, errors


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "x"


class _Lines:
    """The line crops written so far, keyed by their sanitised id: a second line with a taken id is
    refused before anything is written, so a record's text and image always belong together."""

    def __init__(self, out: Path):
        self.out, self.items, self.taken = out, [], {}  # taken: case-folded id -> its source

    def add(self, page: str, line: str, image: Image.Image, text: str, source: str, errors: list[str]) -> None:
        rid = f"{page}/{line}"
        key = rid.casefold()  # l1 and L1 would share one file on a case-insensitive file system
        if key in self.taken:
            errors.append(f"{source}: line id {rid!r} appears twice (also {self.taken[key]}); this one is "
                          "not written, the first is kept; give the lines distinct ids")
            return
        self.taken[key] = source
        dest = self.out / "lines" / page / f"{line}.png"
        with replacing(dest) as tmp:  # a kill mid-save never leaves half a crop under its name
            image.save(tmp, format="PNG")
        self.items.append((page, line, dest, text, image.size))


def _ingest_xml(xml: Path, root: Path | None, lines: _Lines, sources: dict[str, str], line_height: float,
                errors: list[str], untranscribed: list[str]) -> str:
    """Cut the lines of one PAGE/ALTO file; returns the page's name."""
    page = read_page(xml)
    cuts, line_errors = page_lines(page, line_height)
    errors += line_errors
    untranscribed += [f"{xml} line {ln.id}" for ln in page.lines if not ln.error and not ln.text.strip()]
    name = page_name(xml, root)
    if name in sources:
        name = _safe(f"{name}-{hashlib.sha1(str(xml).encode()).hexdigest()[:6]}")
    sources[name] = str(xml)
    for ln, img in cuts:
        lines.add(name, _safe(ln.id), img, ln.text.strip(), f"{xml} line {ln.id}", errors)
    return name


def _ingest_line_image(img_path: Path, lines: _Lines, sources: dict[str, str], errors: list[str]) -> str:
    text_path = transcription_of(img_path)
    try:
        text = text_path.read_text(encoding="utf-8").strip()
        with Image.open(img_path) as im:
            gray = im.convert("L")
    except (*IMAGE_ERRORS, UnicodeError) as exc:
        raise IngestError(f"{img_path}: cannot read it or its transcription {text_path}: {_why(exc)}") from exc
    if not text:
        raise IngestError(f"{img_path}: its transcription {text_path} is empty; not written")
    stem = img_path.name[: -len(img_path.suffix)]
    page = _safe(page_of(stem))
    sources.setdefault(page, str(img_path.parent))
    lines.add(page, _safe(stem), gray, " ".join(text.split()), str(img_path), errors)
    return page


def ingest(inputs: list[str], out: str | Path, *, test_pages: list[str] = (), val_pages: list[str] = (),
           test_share: float = 0.2, val_share: float = 0.1, seed: int = 0, line_height: float = 0.0) -> dict:
    """Write the manifest folder ``out`` from ``inputs``; returns a summary with the errors.

    One file's failure, whatever it is, is named in the errors and the others are still ingested;
    the manifest (or its absence, when no line is usable) always agrees with ``dataset.json``."""
    out = Path(out)
    xmls, line_images, errors = _collect(list(inputs))
    # A misspelt --test-pages name is said before any crop is written (the pages follow from the
    # file names: an XML file's path under its input folder, a line image's name without its line number).
    named = {page_name(x, root) for x, root, _ in xmls} | {_safe(page_of(f.name[: -len(f.suffix)]))
                                                          for f, _ in line_images}
    unknown = [n for n in list(test_pages) + list(val_pages) if n not in named]
    if unknown:
        raise IngestError(f"--test-pages/--val-pages name page(s) {unknown} that are not among the "
                          f"pages of the inputs {sorted(named)}; nothing was written")
    (out / "lines").mkdir(parents=True, exist_ok=True)
    lines = _Lines(out)
    sources: dict[str, str] = {}
    set_of: dict[str, str] = {}  # page -> set (the input it came from)
    untranscribed: list[str] = []
    for f, root, group in [(x, root, g) for x, root, g in xmls] + [(x, None, g) for x, g in line_images]:
        try:
            if f.suffix.lower() == ".xml":
                page = _ingest_xml(f, root, lines, sources, line_height, errors, untranscribed)
            else:
                page = _ingest_line_image(f, lines, sources, errors)
            set_of.setdefault(page, group)
        except IngestError as exc:
            errors.append(str(exc))
        except Exception as exc:  # an input no rule above foresaw: name it, go on with the others
            log.debug("ingest of %s failed", f, exc_info=True)
            errors.append(f"{f}: unexpected {type(exc).__name__}: {exc}; not written")
    pages = sorted({p for p, *_ in lines.items})
    split_of = splits_by_set(pages, set_of, list(test_pages), list(val_pages), test_share, val_share, seed)
    records = [{"id": f"{page}/{line_id}", "split": split_of[page], "degraded": str(dest.relative_to(out)),
                "clean": None, "text": text, "page": page, "set": set_of.get(page, ""),
                "source": sources.get(page, ""), "height": h, "width": w}
               for page, line_id, dest, text, (w, h) in lines.items]
    if records:
        M.write_manifest(out / M.MANIFEST, records)
        Charset.from_texts(r["text"] for r in records).to_file(out / M.CHARSET)
    else:  # an earlier run's manifest must not outlive a dataset.json that says 0 lines
        (out / M.MANIFEST).unlink(missing_ok=True)
        (out / M.CHARSET).unlink(missing_ok=True)
    counts = M.split_counts(records)
    pages_by_split = {s: sorted({r["page"] for r in records if r["split"] == s}) for s in M.SPLITS}
    (out / "ingest_errors.txt").write_text("".join(e + "\n" for e in errors), encoding="utf-8")
    (out / "ingest_untranscribed.txt").write_text("".join(e + "\n" for e in untranscribed), encoding="utf-8")
    sets = set_summary(records)
    meta = {"kind": "real_lines", "counts": counts, "pages": pages_by_split, "errors": len(errors),
            "untranscribed": len(untranscribed), "sets": sets,
            "inputs": [str(i) for i in inputs], "seed": seed, "test_share": test_share,
            "val_share": val_share, "complete": True,
            "hash": hashlib.sha256((out / M.MANIFEST).read_bytes()).hexdigest()[:16] if records else ""}
    write_json_atomic(out / M.META, meta, sort_keys=True)
    return {"manifest": str(out / M.MANIFEST) if records else "", "counts": counts, "pages": pages_by_split,
            "errors": errors, "untranscribed": untranscribed, "sets": sets}


def splits_by_set(pages: list[str], set_of: dict[str, str], test_pages: list[str], val_pages: list[str],
                  test_share: float, val_share: float, seed: int) -> dict[str, str]:
    """{page: split}, the shares applied within each set, so every set has its own train, val and
    test pages (one draw over all pages could leave a small set without test pages). Named test
    (val) pages replace the test (val) share everywhere, as with one set."""
    if not pages:
        return {}
    assign_splits(pages, test_pages, val_pages, 0.0, 0.0, seed)  # names every unknown page at once
    test_share = 0.0 if test_pages else test_share
    val_share = 0.0 if val_pages else val_share
    out: dict[str, str] = {}
    for group in sorted({set_of.get(p, "") for p in pages}):
        mine = [p for p in pages if set_of.get(p, "") == group]
        out.update(assign_splits(mine, [p for p in test_pages if p in mine], [p for p in val_pages if p in mine],
                                 test_share, val_share, seed))
    return out


def set_summary(records: list[dict]) -> dict[str, dict]:
    """Per set: pages and lines per split, characters, and the charset (as one sorted string)."""
    out: dict[str, dict] = {}
    for group in sorted({r.get("set", "") for r in records}):
        mine = [r for r in records if r.get("set", "") == group]
        out[group] = {"lines": M.split_counts(mine),
                      "pages": {s: len({r["page"] for r in mine if r["split"] == s}) for s in M.SPLITS},
                      "characters": sum(len(r["text"]) for r in mine),
                      "charset": "".join(sorted(set("".join(r["text"] for r in mine))))}
    return out


def main_cli(args) -> int:
    """`docrestore ingest`: print what was written and every error; 1 when anything failed, 2 when
    the command itself is wrong (nothing written)."""
    try:
        summary = ingest(args.inputs, args.out, test_pages=_names(args.test_pages), val_pages=_names(args.val_pages),
                         test_share=args.test_share, val_share=args.val_share, seed=args.seed,
                         line_height=args.line_height)
    except IngestError as exc:
        print(f"docrestore ingest: error: {exc}", file=sys.stderr)
        return 2
    for e in summary["errors"]:
        print(f"docrestore ingest: error: {e}")
    if summary["untranscribed"]:
        print(f"{len(summary['untranscribed'])} lines without a transcription were left out (not an error; "
              f"listed in {Path(args.out) / 'ingest_untranscribed.txt'})")
    for group, st in summary["sets"].items():
        print(f"set {group or '-'}: lines {st['lines']}, pages {st['pages']}, {st['characters']} characters, "
              f"{len(st['charset'])} distinct: {st['charset']}")
    if summary["manifest"]:
        print(f"wrote {summary['manifest']}: {summary['counts']} lines; pages {summary['pages']}")
        print(f"use it with data.manifest={summary['manifest']}")
    else:
        print("docrestore ingest: no line was written")
    return 1 if summary["errors"] or not summary["manifest"] else 0


def _names(text: str) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]
