"""`docrestore ingest`: PAGE XML, ALTO and line folders made here -> a manifest the trainer reads."""

from __future__ import annotations

import json
import math

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
