"""`docrestore ingest`: PAGE XML, ALTO and line folders made here -> a manifest the trainer reads."""

from __future__ import annotations

import hashlib
import json
import math
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from docrestore import cli
from docrestore.data import ingest as I
from docrestore.data import manifest as M
from docrestore.data.charset import Charset
from docrestore.data.dataset import LineDataset

PAGE_2019 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
PAGE_2013 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2013-07-15"


def page_image(path, w=600, h=400):
    """A light page with dark bars as "ink": one at y 40-70 (x 50-550), a sloped one along
    y = 150 + 0.1 (x - 50) (x 50-450) and one at y 250-280 (x 100-300)."""
    img = Image.new("L", (w, h), 225)
    d = ImageDraw.Draw(img)
    d.rectangle([50, 40, 550, 70], fill=20)
    d.polygon([(50, 130), (450, 170), (450, 200), (50, 160)], fill=20)  # slants 0.1 -> 5.7 degrees
    d.rectangle([100, 250, 300, 280], fill=20)
    img.save(path)
    return path


def pts(points, sep=","):
    return " ".join(f"{x}{sep}{y}" for x, y in points)


def write_page_xml(path, image, ns=PAGE_2019):
    lines = [
        ("l1", "Uwer frowen", pts([(45, 35), (555, 35), (555, 75), (45, 75)]), pts([(45, 70), (555, 70)])),
        ("l2", "schick ich", pts([(45, 125), (455, 165), (455, 205), (45, 165)]), pts([(45, 160), (455, 200)])),
        ("l3", "", pts([(95, 245), (305, 245), (305, 285), (95, 285)]), ""),                  # no text
        ("l4", "outside", pts([(900, 900), (950, 900), (950, 950), (900, 950)]), ""),        # off the page
    ]
    body = ""
    for lid, text, coords, base in lines:
        baseline = f'<Baseline points="{base}"/>' if base else ""
        body += (f'<TextLine id="{lid}"><Coords points="{coords}"/>{baseline}'
                 f'<Word id="{lid}w"><TextEquiv><Unicode>word</Unicode></TextEquiv></Word>'
                 f'<TextEquiv index="1"><Unicode>other reading</Unicode></TextEquiv>'
                 f'<TextEquiv index="0"><Unicode>{text}</Unicode></TextEquiv></TextLine>')
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?><PcGts xmlns="{ns}"><Page imageFilename="{image.name}" '
                    f'imageWidth="600" imageHeight="400"><TextRegion id="r1">{body}</TextRegion></Page></PcGts>',
                    encoding="utf-8")
    return path


def write_alto(path, image, version=4):
    ns = f"http://www.loc.gov/standards/alto/ns-v{version}#"
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><alto xmlns="{ns}"><Description><MeasurementUnit>pixel'
        f'</MeasurementUnit><sourceImageInformation><fileName>{image.name}</fileName></sourceImageInformation>'
        f'</Description><Layout><Page WIDTH="600" HEIGHT="400"><PrintSpace><TextBlock ID="b1">'
        # a polygon
        f'<TextLine ID="a1" HPOS="45" VPOS="35" WIDTH="510" HEIGHT="40" BASELINE="{pts([(45, 70), (555, 70)], " ")}">'
        f'<Shape><Polygon POINTS="{pts([(45, 35), (555, 35), (555, 75), (45, 75)], " ")}"/></Shape>'
        f'<String CONTENT="ein"/><SP/><String CONTENT="stückly"/></TextLine>'
        # only a baseline (+ HEIGHT): the band 0.75 h above, 0.25 h below; no SP between the Strings
        f'<TextLine ID="a2" HPOS="95" VPOS="245" WIDTH="210" HEIGHT="40" BASELINE="{pts([(95, 280), (305, 280)], " ")}">'
        f'<String CONTENT="von"/><String CONTENT="einem"/></TextLine>'
        f'</TextBlock></PrintSpace></Page></Layout></alto>', encoding="utf-8")
    return path


def test_page_xml_lines_are_cut_by_polygon_deskewed_and_errors_named(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    image = page_image(src / "p1.png")
    page = I.read_page(write_page_xml(src / "p1.xml", image))
    assert [ln.text for ln in page.lines] == ["Uwer frowen", "schick ich", "", "outside"]  # index 0, not words
    cuts, errors = I.page_lines(page)
    assert [ln.id for ln, _ in cuts] == ["l1", "l2"]
    assert not any("l3" in e for e in errors)  # untranscribed: left out, not an error (ingest counts it)
    assert any("l4" in e and "outside the page image" in e for e in errors)
    l1 = np.asarray(cuts[0][1])
    assert l1.shape == (41, 511) and l1[10:30, 10:500].max() < 60  # the bar, whole
    # The sloped line is turned level: its ink rows are the same at both ends.
    assert I.baseline_angle(page.lines[1].baseline) == pytest.approx(math.degrees(math.atan(40 / 410)), abs=0.01)
    l2 = np.asarray(cuts[1][1]).astype(float)
    w = l2.shape[1]
    left, right = l2[:, int(0.2 * w)] < 100, l2[:, int(0.8 * w)] < 100
    assert left.sum() > 10 and abs(np.argmax(left) - np.argmax(right)) <= 3
    assert l2.shape[0] < 70  # level: about the band's height, not the slanted box's 80 px
    # Outside the polygon is paper white (255); the page's own paper (225) inside it is kept.
    assert (l2 == I.PAPER).sum() > 100 and (l2 == 225).sum() > 100


def test_alto_polygon_and_baseline_only_lines(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    image = page_image(src / "p2.png")
    page = I.read_page(write_alto(src / "p2.xml", image))
    assert [ln.text for ln in page.lines] == ["ein stückly", "von einem"]
    cuts, errors = I.page_lines(page)
    assert not errors and len(cuts) == 2
    band = np.asarray(cuts[1][1])
    assert band.shape == (41, 211)  # 0.75 * 40 above (250) to 0.25 * 40 below (290) the baseline at 280
    assert band[:5, 10:200].max() < 60 and band[-5:].min() == 225  # ink from the top, paper below 280


@pytest.mark.parametrize("version", [2, 3])
def test_older_alto_with_a_number_baseline(tmp_path, version):
    src = tmp_path / "src"
    src.mkdir()
    image = page_image(src / "p.png")
    xml = write_alto(src / "p.xml", image, version)
    xml.write_text(xml.read_text().replace(f'BASELINE="{pts([(95, 280), (305, 280)], " ")}"', 'BASELINE="280"'))
    cuts, errors = I.page_lines(I.read_page(xml))
    assert not errors and np.asarray(cuts[1][1]).shape == (41, 211)


def test_ingest_cli_writes_a_manifest_split_by_page_and_exits_nonzero_on_errors(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    write_page_xml(src / "p1.xml", page_image(src / "p1.png"), ns=PAGE_2013)
    write_alto(src / "p2.xml", page_image(src / "p2.png"))
    (src / "broken.xml").write_text("<PcGts><Page", encoding="utf-8")
    lines = tmp_path / "lines"
    lines.mkdir()
    for stem, text in (("de_6_00_r1l43", "Uwer frowen"), ("de_6_00_r1l44", "schick"), ("la_6_01_r1l2", "ein")):
        Image.fromarray(np.full((30, 200), 200, np.uint8)).save(lines / f"{stem}.png")
        (lines / f"{stem}.gt.txt" if stem.startswith("la") else lines / f"{stem}.txt").write_text(text + "\n")
    out = tmp_path / "out"
    code = cli.main(["ingest", str(src), str(lines), "--out", str(out), "--test-pages", "p2",
                     "--val-pages", "la_6_01"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "broken.xml" in printed and "not readable XML" in printed
    assert "1 lines without a transcription were left out" in printed
    assert (out / "ingest_untranscribed.txt").read_text().strip().endswith("p1.xml line l3")
    records = M.validate_manifest(out / "manifest.jsonl")
    by_id = {r["id"]: r for r in records}
    assert by_id["p1/l1"]["text"] == "Uwer frowen" and by_id["p2/a1"]["text"] == "ein stückly"
    assert by_id["de_6_00/de_6_00_r1l43"]["text"] == "Uwer frowen"
    assert all(r["clean"] is None for r in records)
    # Every page's lines sit in one split.
    split_of_page = {}
    for r in records:
        assert split_of_page.setdefault(r["page"], r["split"]) == r["split"]
    assert split_of_page["p2"] == "test" and split_of_page["la_6_01"] == "val"
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["errors"] == 2 and meta["untranscribed"] == 1  # broken.xml and l4 (off the page)
    assert "broken.xml" in (out / "ingest_errors.txt").read_text()
    # The trainer's dataset reads it.
    charset = Charset.from_file(out / "charset.txt")
    assert "ü" in charset.chars
    ds = LineDataset(out / "manifest.jsonl", "test", 32, 256, charset)
    assert len(ds) == 2 and not ds[0]["has_clean"]


def test_page_of_line_names():
    assert I.page_of("de_6_00_r1l43") == "de_6_00"
    assert I.page_of("page_l12") == "page" and I.page_of("scan-0003_7") == "scan-0003"
    assert I.page_of("single") == "single"


def test_splits_by_page(tmp_path):
    pages = [f"p{i}" for i in range(10)]
    split = I.assign_splits(pages, [], [], 0.2, 0.1, seed=0)
    assert sorted(split.values()).count("test") == 2 and list(split.values()).count("val") == 1
    assert split == I.assign_splits(pages, [], [], 0.2, 0.1, seed=0)
    with pytest.raises(I.IngestError, match="nope"):
        I.assign_splits(pages, ["nope"], [], 0.2, 0.1, seed=0)


def write_escriptorium_alto(path, image):
    """An ALTO v4 page shaped like the CREMMA exports: xsi schema, Tags, block polygons, TAGREFS,
    polyline BASELINE, Strings with boxes, an untranscribed line (empty CONTENT), NFD text."""
    ns = "http://www.loc.gov/standards/alto/ns-v4#"
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<alto xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
        f'      xmlns="{ns}"\n      xsi:schemaLocation="{ns} http://www.loc.gov/standards/alto/v4/alto-4-2.xsd">\n'
        f'  <Description>\n    <MeasurementUnit>pixel</MeasurementUnit>\n    <sourceImageInformation>\n'
        f'      <fileName>{image.name}</fileName>\n      <fileIdentifier>https://example.org/iiif/f1</fileIdentifier>\n'
        f'    </sourceImageInformation>\n  </Description>\n  <Tags>\n'
        f'    <OtherTag ID="BT1" LABEL="MainZone" DESCRIPTION="block type MainZone"/>\n'
        f'    <OtherTag ID="LT1" LABEL="DefaultLine" DESCRIPTION="line type DefaultLine"/>\n  </Tags>\n'
        f'  <Layout>\n    <Page WIDTH="600" HEIGHT="400" PHYSICAL_IMG_NR="0" ID="eSc_dummypage_">\n'
        f'      <PrintSpace HPOS="0" VPOS="0" WIDTH="600" HEIGHT="400">\n'
        f'        <TextBlock HPOS="40" VPOS="30" WIDTH="520" HEIGHT="260" ID="eSc_textblock_1" TAGREFS="BT1">\n'
        f'          <Shape><Polygon POINTS="40 30 560 30 560 290 40 290"/></Shape>\n'
        f'          <TextLine ID="eSc_line_a" TAGREFS="LT1" BASELINE="45 70 555 70" HPOS="45" VPOS="35" WIDTH="510" HEIGHT="40">\n'
        f'            <Shape><Polygon POINTS="45 35 555 35 555 75 45 75"/></Shape>\n'
        f'            <String CONTENT="Monsieur ie vous e\u0301cris" HPOS="45" VPOS="35" WIDTH="510" HEIGHT="40"></String>\n'
        f'          </TextLine>\n'
        f'          <TextLine ID="eSc_line_b" TAGREFS="LT1" BASELINE="100 280 300 280" HPOS="95" VPOS="245" WIDTH="210" HEIGHT="40">\n'
        f'            <Shape><Polygon POINTS="95 245 305 245 305 285 95 285"/></Shape>\n'
        f'            <String CONTENT="" HPOS="95" VPOS="245" WIDTH="210" HEIGHT="40"></String>\n'
        f'          </TextLine>\n        </TextBlock>\n      </PrintSpace>\n    </Page>\n  </Layout>\n</alto>\n',
        encoding="utf-8")
    return path


def write_escriptorium_page(path, image, text):
    """A PAGE 2019 page shaped like the iForal exports: Metadata, `custom` attributes, a
    TextEquiv without index, a two-point Baseline."""
    path.write_text(
        f"<?xml version='1.0' encoding='utf-8'?>\n<PcGts xmlns=\"{PAGE_2019}\" "
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="{PAGE_2019} '
        f'{PAGE_2019}/pagecontent.xsd">\n  <Metadata>\n\t<Creator>escriptorium</Creator>\n'
        f'\t<Created>2024-02-01T19:07:35+00:00</Created>\n  </Metadata>\n'
        f'  <Page imageFilename="{image.name}" imageWidth="600" imageHeight="400">\n'
        f'    <TextRegion id="eSc_textblock_1" custom="structure {{type:text;}}">\n'
        f'      <Coords points="40,30 560,30 560,290 40,290" />\n'
        f'      <TextLine id="eSc_line_1" custom="structure {{type:default;}}">\n'
        f'        <Coords points="45,35 555,35 555,75 45,75" />\n        <Baseline points="45,70 555,70" />\n'
        f'        <TextEquiv>\n          <Unicode>{text}</Unicode>\n        </TextEquiv>\n'
        f'      </TextLine>\n    </TextRegion>\n  </Page>\n</PcGts>\n', encoding="utf-8")
    return path


def test_escriptorium_sets_in_one_manifest_named_by_folder_and_split_per_set(tmp_path, capsys):
    """Two sets shaped like the shared HTR exports (ALTO v4 letters; PAGE 2019 charters whose
    pages are all called 1.xml): one manifest, pages named by their folder, every set split on its
    own, untranscribed lines counted but no error, exact (NFD) texts."""
    alto_set, page_set = tmp_path / "cremma", tmp_path / "charters"
    for i, doc in enumerate(("letters-a", "letters-b", "letters-c")):
        (alto_set / doc).mkdir(parents=True)
        image = page_image(alto_set / doc / f"f{i}.jpg")
        write_escriptorium_alto(alto_set / doc / f"f{i}.xml", image)
    for charter in ("foral_a_1217", "foral_b_1222", "foral_c_1255"):
        (page_set / charter).mkdir(parents=True)
        write_escriptorium_page(page_set / charter / "1.xml", page_image(page_set / charter / "1.jpg"),
                                f"n nne sce \u204a {charter}")
    out = tmp_path / "out"
    code = cli.main(["ingest", str(alto_set), str(page_set), "--out", str(out), "--test-share", "0.34"])
    printed = capsys.readouterr().out
    assert code == 0 and "error:" not in printed
    assert "3 lines without a transcription were left out" in printed
    records = M.validate_manifest(out / "manifest.jsonl")
    by_page = {r["page"]: r for r in records}
    assert sorted(by_page) == ["foral_a_1217-1", "foral_b_1222-1", "foral_c_1255-1",
                               "letters-a-f0", "letters-b-f1", "letters-c-f2"]
    assert by_page["foral_b_1222-1"]["text"] == "n nne sce \u204a foral_b_1222"
    assert by_page["letters-a-f0"]["text"] == "Monsieur ie vous e\u0301cris"  # NFD kept as published
    assert {r["set"] for r in records} == {"cremma", "charters"}
    for group in ("cremma", "charters"):  # each set has its own test page
        assert {r["split"] for r in records if r["set"] == group} >= {"train", "test"}
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["errors"] == 0 and meta["untranscribed"] == 3
    assert meta["sets"]["charters"]["lines"]["train"] + meta["sets"]["charters"]["lines"]["test"] \
        + meta["sets"]["charters"]["lines"]["val"] == 3
    assert "\u204a" in meta["sets"]["charters"]["charset"] and "\u0301" in meta["sets"]["cremma"]["charset"]


# ------------------------------------------------------------------ hostile and odd exports
def _page_xml(path, image_name, lines):
    """A PAGE file with (id, text, points) lines."""
    body = "".join(f'<TextLine id="{lid}"><Coords points="{coords}"/><TextEquiv><Unicode>{text}</Unicode>'
                   f'</TextEquiv></TextLine>' for lid, text, coords in lines)
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?><PcGts xmlns="{PAGE_2019}"><Page imageFilename='
                    f'"{image_name}"><TextRegion id="r1">{body}</TextRegion></Page></PcGts>', encoding="utf-8")
    return path


BAR1 = pts([(45, 35), (555, 35), (555, 75), (45, 75)])    # the dark bar at y 40-70
BAR3 = pts([(95, 245), (305, 245), (305, 285), (95, 285)])  # the dark bar at y 250-280


@pytest.mark.parametrize("first_id, second_id", [("l1", "l1"), ("l 2", "l-2"), ("l/2", "l 2")])
def test_a_duplicate_line_id_never_pairs_a_text_with_another_lines_image(tmp_path, first_id, second_id):
    """Two lines whose ids are one after sanitising: the kept record is the first line with its own
    crop, the second is refused naming both, and nothing is overwritten."""
    src = tmp_path / "src"
    src.mkdir()
    page_image(src / "p.png")
    _page_xml(src / "p.xml", "p.png", [(first_id, "FIRST", BAR1), (second_id, "SECOND", BAR3)])
    summary = I.ingest([str(src)], tmp_path / "out")
    records = M.read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert [(r["id"], r["text"]) for r in records] == [(f"p/{I._safe(first_id)}", "FIRST")]
    crop = np.asarray(Image.open(tmp_path / "out" / records[0]["degraded"]))
    assert crop.shape == (41, 511)  # the first line's bar (510 wide), not the second's (210)
    dup = [e for e in summary["errors"] if "twice" in e]
    assert len(dup) == 1 and f"p.xml line {first_id}" in dup[0] and f"p.xml line {second_id}" in dup[0]


def test_the_same_line_file_in_two_folders_is_refused_naming_both(tmp_path):
    for folder, text in (("a", "FIRST"), ("b", "SECOND")):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((30, 100 if folder == "a" else 200), 200, np.uint8)).save(tmp_path / folder / "pg_l1.png")
        (tmp_path / folder / "pg_l1.gt.txt").write_text(text)
    summary = I.ingest([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path / "out")
    records = M.read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert [r["text"] for r in records] == ["FIRST"] and records[0]["width"] == 100
    assert Image.open(tmp_path / "out" / records[0]["degraded"]).size == (100, 30)
    assert any("twice" in e and str(tmp_path / "a") in e and str(tmp_path / "b") in e for e in summary["errors"])


@pytest.mark.parametrize("bad", [
    ("page", 'points="a,b c,d e,f"', "not a number"),
    ("page", 'points="nan,1 5,nan 9,9"', "not a finite number"),
    ("alto", 'HPOS="ten"', "not a number"),
])
def test_bad_coordinates_are_named_and_the_rest_is_ingested(tmp_path, bad):
    kind, attr, message = bad
    src = tmp_path / "src"
    src.mkdir()
    image = page_image(src / "good.png")
    if kind == "page":
        xml = _page_xml(src / "bad.xml", image.name, [("x1", "good line", BAR1), ("x2", "bad line", "PLACEHOLDER")])
        xml.write_text(xml.read_text().replace('points="PLACEHOLDER"', attr))
    else:
        xml = write_alto(src / "bad.xml", image)
        xml.write_text(xml.read_text().replace('HPOS="95"', attr).replace('BASELINE="95 280 305 280"', 'BASELINE="280"'))
    write_page_xml(src / "good.xml", image)
    summary = I.ingest([str(src)], tmp_path / "out")
    ids = {r["id"] for r in M.read_manifest(tmp_path / "out" / "manifest.jsonl")}
    assert {"good/l1", "good/l2"} <= ids
    named = [e for e in summary["errors"] if "bad.xml" in e]
    assert named and message in named[0], summary["errors"]
    assert "bad.xml" in (tmp_path / "out" / "ingest_errors.txt").read_text()
    if kind == "page":
        assert "bad/x1" in ids and "bad/x2" not in ids  # one bad line, not the whole page


def test_a_page_image_over_the_pixel_limit_fails_alone(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    write_page_xml(src / "p1.xml", page_image(src / "p1.png"))
    Image.new("L", (800, 800), 255).save(src / "big.png")
    _page_xml(src / "big.xml", "big.png", [("b1", "big", BAR1)])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 250_000)  # 600x400 reads, 800x800 is over twice: a bomb
    summary = I.ingest([str(src)], tmp_path / "out")
    assert any("big.xml" in e and "big.png" in e for e in summary["errors"])
    assert {"p1/l1", "p1/l2"} <= {r["id"] for r in M.read_manifest(tmp_path / "out" / "manifest.jsonl")}


def test_a_rerun_with_no_usable_line_leaves_no_old_manifest(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_page_xml(src / "p1.xml", page_image(src / "p1.png"))
    out = tmp_path / "out"
    assert I.ingest([str(src)], out)["manifest"]
    (src / "p1.xml").write_text("<PcGts><Page", encoding="utf-8")
    summary = I.ingest([str(src)], out)
    meta = json.loads((out / "dataset.json").read_text())
    assert not summary["manifest"] and sum(meta["counts"].values()) == 0
    assert not (out / "manifest.jsonl").exists() and not (out / "charset.txt").exists()


def test_entity_expansion_is_refused_as_a_bad_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    page_image(src / "p.png")
    (src / "p.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE PcGts [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        f'<PcGts xmlns="{PAGE_2019}"><Page imageFilename="p.png"><TextRegion id="r"><TextLine id="l1">'
        f'<Coords points="{BAR1}"/><TextEquiv><Unicode>&b;</Unicode></TextEquiv></TextLine></TextRegion>'
        '</Page></PcGts>', encoding="utf-8")
    with pytest.raises(I.IngestError, match="p.xml.*entit"):
        I.read_page(src / "p.xml")


# ------------------------------------------------------------------------------- fuzz
ODD_TEXT = ["ſeer", "gheſchreuen", "e\u0301en", "Ꝛ", "שלום", "📜", "a&b", "x<y", "\u200bzero", "ÆØÅ", "İı", "ﬁn", "1.642"]


def _fuzz_file(rng, folder, i):
    """One PAGE or ALTO file with its page image, corrupted one way or not at all. Returns (path,
    bad: whether its name must be among the errors, {page/line: (text, crop)} of its good lines,
    whether one of its lines is untranscribed: listed apart, not an error)."""
    kind, stem = rng.choice(["page", "alto"]), f"f{i:03d}"
    n = rng.randint(1, 4)
    image = np.asarray(np.random.default_rng(i).integers(0, 256, (14 * n + 6, 60)), np.uint8)
    boxes = [(5 + rng.randint(0, 3), 3 + 14 * k, 50 + rng.randint(0, 5), 3 + 14 * k + 10) for k in range(n)]
    texts = [" ".join(rng.choice(ODD_TEXT) for _ in range(rng.randint(1, 3))) + f" {i}.{k}" for k in range(n)]
    ids = [f"l{k}" for k in range(n)]
    corruption = rng.choice(["none", "none", "truncate", "number", "no-image", "bad-image", "duplicate",
                             "encoding", "empty-text", "outside"])
    coords = [[(x0, y0), (x1, y0), (x1, y1), (x0, y1)] for x0, y0, x1, y1 in boxes]
    bad_line = rng.randrange(n)
    raw_coords = [pts(c) if kind == "page" else pts(c, " ") for c in coords]
    if corruption == "number":
        raw_coords[bad_line] = rng.choice(["ten,3 40,3 40,13", "nan,1 5,nan 9,9 1,9", "inf 1 5 1 5 9", "1,2,3"])
    if corruption == "duplicate" and n >= 2:
        ids[bad_line if bad_line else 1] = ids[0]
    if corruption == "empty-text":
        texts[bad_line] = ""
    if corruption == "outside":
        raw_coords[bad_line] = pts([(500, 500), (600, 500), (600, 600)], "," if kind == "page" else " ")

    def esc(t):
        return t.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    if kind == "page":
        body = "".join(f'<TextLine id="{lid}"><Coords points="{c}"/><TextEquiv><Unicode>{esc(t)}</Unicode>'
                       f'</TextEquiv></TextLine>' for lid, t, c in zip(ids, texts, raw_coords))
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><PcGts xmlns="{PAGE_2019}"><Page imageFilename='
               f'"{stem}.png"><TextRegion id="r">{body}</TextRegion></Page></PcGts>')
    else:
        body = "".join(f'<TextLine ID="{lid}"><Shape><Polygon POINTS="{c}"/></Shape>'
                       + "<SP/>".join(f'<String CONTENT="{esc(w)}"/>' for w in t.split(" ") if w) + "</TextLine>"
                       for lid, t, c in zip(ids, texts, raw_coords))
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><alto xmlns="http://www.loc.gov/standards/alto/ns-v4#">'
               f'<Description><MeasurementUnit>pixel</MeasurementUnit><sourceImageInformation><fileName>{stem}.png'
               f'</fileName></sourceImageInformation></Description><Layout><Page><PrintSpace><TextBlock ID="b">'
               f'{body}</TextBlock></PrintSpace></Page></Layout></alto>')
    data = xml.encode("utf-8")
    if corruption == "truncate":
        data = data[: rng.randint(10, len(data) - 20)]
    if corruption == "encoding":  # bytes that are not UTF-8 in a file that says it is
        data = data.replace(b"</TextLine>", "ÿ\u00ff".encode("latin-1") + b"</TextLine>", 1)
    path = folder / f"{stem}.xml"
    path.write_bytes(data)
    if corruption != "no-image":
        Image.fromarray(image).save(folder / f"{stem}.png")
    if corruption == "bad-image":
        (folder / f"{stem}.png").write_bytes((folder / f"{stem}.png").read_bytes()[:60])
    whole_file_bad = corruption in ("truncate", "no-image", "bad-image", "encoding")
    line_bad = {bad_line} if corruption in ("number", "empty-text", "outside") else set()
    if corruption == "duplicate" and n >= 2:
        line_bad = {bad_line if bad_line else 1}
    good = {} if whole_file_bad else {
        f"{stem}/{ids[k]}": (texts[k].strip(), image[y0:y1 + 1, x0:x1 + 1])
        for k, (x0, y0, x1, y1) in enumerate(boxes) if k not in line_bad}
    untranscribed = corruption == "empty-text"
    return path, whole_file_bad or (bool(line_bad) and not untranscribed), good, untranscribed


def _digest(text, crop):
    return hashlib.sha256(text.encode()).hexdigest()[:12], hashlib.sha256(np.ascontiguousarray(crop).tobytes()
                                                                          + str(crop.shape).encode()).hexdigest()[:12]


def test_fuzz_two_hundred_corrupted_exports(tmp_path):
    """200 PAGE/ALTO files, corrupted at random: no traceback, every bad file named, every good line
    in the manifest with its own text and its own crop (and nothing else)."""
    rng = random.Random(20)
    src = tmp_path / "src"
    src.mkdir()
    files = [_fuzz_file(rng, src, i) for i in range(200)]
    summary = I.ingest([str(src)], tmp_path / "out")
    errors = "\n".join(summary["errors"])
    assert "unexpected" not in errors  # every failure is one the ingest foresees, with its reason
    bad = [p for p, is_bad, _, _ in files if is_bad]
    assert 40 < len(bad) < 190 and all(str(p) in errors for p in bad)
    assert not [p for p, is_bad, _, _ in files if not is_bad and str(p) in errors]
    untranscribed = "\n".join(summary["untranscribed"])
    assert all(str(p) in untranscribed for p, _, _, empty in files if empty)
    expected = {rid: _digest(t, c) for _, _, good, _ in files for rid, (t, c) in good.items()}
    records = M.read_manifest(tmp_path / "out" / "manifest.jsonl")
    got = {r["id"]: _digest(r["text"], np.asarray(Image.open(tmp_path / "out" / r["degraded"]))) for r in records}
    assert len(expected) > 150 and got == expected
    assert (tmp_path / "out" / "ingest_errors.txt").read_text().count("\n") == len(summary["errors"])


def test_an_unknown_test_page_is_one_line_naming_it_not_a_traceback(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    write_page_xml(src / "p1.xml", page_image(src / "p1.png"))
    code = cli.main(["ingest", str(src), "--out", str(tmp_path / "out"), "--test-pages", "p9"])
    printed = capsys.readouterr()
    assert code == 2 and "p9" in printed.err and "p1" in printed.err and "Traceback" not in printed.err
    assert not (tmp_path / "out").exists()  # nothing written
