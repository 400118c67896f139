"""VOC XML annotations: the real schema parses, every bad file fails on one line naming it."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from benchmark.detection.voc_annotations import (
    VOC_CLASSES,
    AnnotationError,
    VOCObject,
    parse_voc_annotation,
    write_voc_annotation,
)

# A VOC2007 file as distributed (000001.xml, owner and flickr ids shortened).
REAL = """<annotation>
\t<folder>VOC2007</folder>
\t<filename>000001.jpg</filename>
\t<source>
\t\t<database>The VOC2007 Database</database>
\t\t<annotation>PASCAL VOC2007</annotation>
\t\t<image>flickr</image>
\t\t<flickrid>341012865</flickrid>
\t</source>
\t<owner>
\t\t<flickrid>Fried Camels</flickrid>
\t\t<name>Jinky the Fruit Bat</name>
\t</owner>
\t<size>
\t\t<width>353</width>
\t\t<height>500</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>dog</name>
\t\t<pose>Left</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>48</xmin>
\t\t\t<ymin>240</ymin>
\t\t\t<xmax>195</xmax>
\t\t\t<ymax>371</ymax>
\t\t</bndbox>
\t</object>
\t<object>
\t\t<name>person</name>
\t\t<pose>Left</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>1</difficult>
\t\t<bndbox>
\t\t\t<xmin>8</xmin>
\t\t\t<ymin>12</ymin>
\t\t\t<xmax>352</xmax>
\t\t\t<ymax>498</ymax>
\t\t</bndbox>
\t</object>
</annotation>
"""


def _write(tmp_path: Path, text: str, name: str = "000001.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_voc_classes_standard_order():
    assert len(VOC_CLASSES) == 20 and len(set(VOC_CLASSES)) == 20
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[14] == "person"
    assert VOC_CLASSES[-1] == "tvmonitor"


def test_parses_real_voc2007_file(tmp_path):
    ann = parse_voc_annotation(_write(tmp_path, REAL))
    assert (ann.image_id, ann.filename, ann.width, ann.height, ann.depth) == (
        "000001",
        "000001.jpg",
        353,
        500,
        3,
    )
    assert ann.objects == (
        VOCObject("dog", (48.0, 240.0, 195.0, 371.0), difficult=False, truncated=True, pose="Left"),
        VOCObject("person", (8.0, 12.0, 352.0, 498.0), difficult=True, truncated=True, pose="Left"),
    )
    g = ann.to_ground_truth()
    assert g.image_id == "000001"
    assert g.labels.tolist() == [VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")]
    assert g.difficult.tolist() == [False, True]
    np.testing.assert_array_equal(g.boxes, [[48, 240, 195, 371], [8, 12, 352, 498]])


def test_round_trip(tmp_path):
    objects = [
        VOCObject("cat", (1, 1, 100, 80), difficult=False, truncated=False, pose="Frontal"),
        VOCObject("tvmonitor", (10.5, 20, 200, 150), difficult=True, truncated=True),
        VOCObject("person", (5, 6, 200, 150)),  # box touching the right/bottom edge is valid
    ]
    path = write_voc_annotation(tmp_path / "004242.xml", "004242.jpg", 200, 150, objects)
    text = path.read_text()
    for tag in ("<folder>VOC2007</folder>", "<database>", "<segmented>0</segmented>", "<pose>"):
        assert tag in text
    ann = parse_voc_annotation(path)
    assert (ann.image_id, ann.filename, ann.width, ann.height, ann.depth) == (
        "004242",
        "004242.jpg",
        200,
        150,
        3,
    )
    expected = tuple(
        VOCObject(o.name, tuple(float(v) for v in o.bbox), o.difficult, o.truncated, o.pose)
        for o in objects
    )
    assert ann.objects == expected
    # writing what was read gives the same bytes
    again = write_voc_annotation(tmp_path / "again.xml", ann.filename, 200, 150, ann.objects)
    assert again.read_text() == text


def test_empty_image_is_valid(tmp_path):
    path = write_voc_annotation(tmp_path / "x.xml", "x.jpg", 10, 10, [])
    ann = parse_voc_annotation(path)
    assert ann.objects == () and ann.to_ground_truth().boxes.shape == (0, 4)


def _error(path: Path, match: str) -> str:
    with pytest.raises(AnnotationError, match=match) as info:
        parse_voc_annotation(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert isinstance(info.value, ValueError)
    return message


def test_missing_file(tmp_path):
    _error(tmp_path / "nope.xml", "not found")


def test_unparsable_xml(tmp_path):
    _error(_write(tmp_path, REAL.replace("</annotation>", "")), "not well-formed XML")
    _error(_write(tmp_path, ""), "not well-formed XML")


def test_refuses_dtd_and_entities(tmp_path):
    laughs = (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>\n'
        "<annotation><filename>&lol2;</filename></annotation>"
    )
    _error(_write(tmp_path, laughs), "DTD")
    external = (
        '<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        "<annotation><filename>&xxe;</filename></annotation>"
    )
    _error(_write(tmp_path, external), "DTD")


def test_wrong_root(tmp_path):
    _error(_write(tmp_path, "<html></html>"), "expected <annotation>")


@pytest.mark.parametrize(
    "old, new, match",
    [
        ("<filename>000001.jpg</filename>", "", "missing <filename>"),
        ("<width>353</width>", "", "missing <size/width>"),
        ("<height>500</height>", "<height></height>", "missing <size/height>"),
        ("<width>353</width>", "<width>wide</width>", "<size/width> is 'wide'"),
        ("<width>353</width>", "<width>0</width>", "positive"),
        ("<name>dog</name>", "", "object 1: missing <name>"),
        ("<xmax>195</xmax>", "", "object 1: missing <bndbox/xmax>"),
        ("<ymin>240</ymin>", "<ymin>abc</ymin>", "expected a number"),
        ("<ymin>240</ymin>", "<ymin>nan</ymin>", "expected a number"),
        ("<difficult>1</difficult>", "", "object 2: missing <difficult>"),
        ("<difficult>0</difficult>", "<difficult>2</difficult>", "expected 0 or 1"),
        ("<truncated>1</truncated>", "<truncated>yes</truncated>", "<truncated> is 'yes'"),
    ],
)
def test_missing_or_bad_fields(tmp_path, old, new, match):
    assert old in REAL
    _error(_write(tmp_path, REAL.replace(old, new, 1)), match)


def test_unknown_class_names_the_bad_one(tmp_path):
    msg = _error(_write(tmp_path, REAL.replace("<name>dog</name>", "<name>doggo</name>")), "doggo")
    assert "20 VOC classes" in msg and "aeroplane" in msg
    custom = tmp_path / "c.xml"
    custom.write_text(REAL)
    with pytest.raises(AnnotationError, match="'person'; the classes are: dog, cat"):
        parse_voc_annotation(custom, class_names=["dog", "cat"])


@pytest.mark.parametrize(
    "old, new, match",
    [
        ("<xmin>48</xmin>", "<xmin>0</xmin>", "outside the 353x500 image"),  # x1 < 1
        ("<ymin>240</ymin>", "<ymin>0.5</ymin>", "outside"),  # y1 < 1
        ("<xmax>195</xmax>", "<xmax>354</xmax>", "outside"),  # x2 > width
        ("<ymax>371</ymax>", "<ymax>501</ymax>", "outside"),  # y2 > height
        ("<xmax>195</xmax>", "<xmax>47</xmax>", "xmax < xmin"),
        ("<ymax>371</ymax>", "<ymax>239</ymax>", "ymax < ymin"),
    ],
)
def test_box_outside_image(tmp_path, old, new, match):
    msg = _error(_write(tmp_path, REAL.replace(old, new, 1)), match)
    assert "object 1 (dog)" in msg


def test_box_on_image_border_is_valid(tmp_path):
    text = REAL.replace("<xmin>48</xmin>", "<xmin>1</xmin>").replace(
        "<xmax>195</xmax>", "<xmax>353</xmax>"
    )
    assert parse_voc_annotation(_write(tmp_path, text)).objects[0].bbox[::2] == (1.0, 353.0)


def test_writer_rejects_what_the_parser_would(tmp_path):
    path = tmp_path / "w.xml"
    with pytest.raises(AnnotationError, match="outside"):
        write_voc_annotation(path, "w.jpg", 100, 100, [VOCObject("cat", (0, 1, 50, 50))])
    with pytest.raises(AnnotationError, match="unknown class name 'kitten'"):
        write_voc_annotation(path, "w.jpg", 100, 100, [VOCObject("kitten", (1, 1, 50, 50))])
    assert not path.exists()


def test_annotation_error_pickles():
    err = AnnotationError("/data/a.xml", "missing <name>")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) == "/data/a.xml: missing <name>"
    assert back.path == "/data/a.xml"
