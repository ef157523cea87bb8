"""Every bad input of issue 3, item 6, as real files: converted or quarantined, with its
reason, counted, and never crashing a shard. Runs the ingest steps in-process (no Prefect);
the flow runs the same functions inside its tasks."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from imagefiles import encode, halves, png_header_bomb
from PIL import Image
from typer.testing import CliRunner

from speclens.datasets import decode
from speclens.datasets.ingest import IngestOptions, fill_shard, finalize, prepare
from speclens.datasets.sources import IngestSource
from speclens.errors import InputError
from speclens.storage.dataset_store import DatasetStore


def ingest_in_process(source, out, **options):
    planned = prepare(source, out, IngestOptions(**options))
    for shard_id in planned["pending"]:
        fill_shard(out, shard_id)
    finalize(out)
    return DatasetStore.open(out)


def rows_by_id(store):
    ids = list(store.sample_ids())
    status, reason = store.status(), store.reasons()
    conversion = store.array("conversion")[:]
    return {sid: (status[i], reason[i], conversion[i], i) for i, sid in enumerate(ids)}


@pytest.fixture()
def bad_folder(tmp_path, monkeypatch):
    root = tmp_path / "bad"
    root.mkdir()
    good = encode(halves(48, 32), "JPEG", quality=90)
    files = {
        "good.jpg": good,
        "truncated.jpg": encode(halves(300, 300), "JPEG", quality=90)[:3000],
        "zero.jpg": b"",
        "text.jpg": b"not an image at all\n" * 20,
        "cmyk.jpg": encode(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG"),
        "gray.png": encode(Image.new("L", (30, 30), 90), "PNG"),
        "palette.png": encode(halves().convert("P"), "PNG"),
        "rgba.png": encode(Image.new("RGBA", (30, 30), (0, 0, 255, 128)), "PNG"),
        "deep16.png": encode(Image.fromarray(np.full((30, 30), 200 * 257, np.uint16)), "PNG"),
        "bomb.png": png_header_bomb(60_000, 60_000),
        "sub/copy-of-good.jpg": good,  # duplicate bytes, in another shard
        "zz/forbidden.jpg": good[:-1] + b"\xd9",  # distinct bytes; made unreadable below
        "notes.txt": b"skipped: no image extension",
    }
    exif = Image.Exif()
    exif[0x0112] = 6
    files["rotated.jpg"] = encode(halves(40, 20), "JPEG", exif=exif)
    for rel, data in files.items():
        (root / rel).parent.mkdir(exist_ok=True)
        (root / rel).write_bytes(data)
    os.symlink(root / "vanished-target.jpg", root / "dangling.jpg")  # listed, cannot be read
    non_utf8 = os.path.join(os.fsencode(root), b"caf\xe9.jpg")  # Latin-1 name
    with open(non_utf8, "wb") as fh:
        fh.write(encode(halves(36, 36), "PNG"))
    forbidden = str(root / "zz" / "forbidden.jpg")
    os.chmod(forbidden, 0)
    real_read = decode.urls.read_bytes

    def read_bytes(url):  # root ignores file modes: make the refusal real for this file
        if url == forbidden:
            raise PermissionError(13, "Permission denied", url)
        return real_read(url)

    monkeypatch.setattr(decode.urls, "read_bytes", read_bytes)
    yield root
    os.chmod(forbidden, 0o644)


def test_every_bad_file_is_converted_or_quarantined_and_counted(bad_folder, tmp_path):
    store = ingest_in_process(
        IngestSource.folder(str(bad_folder)), str(tmp_path / "s.zarr"), shard_size=4, image_size=24
    )
    rows = rows_by_id(store)
    quarantined = {sid: r[1].split(":")[0] for sid, r in rows.items() if r[0] == "quarantined"}
    assert quarantined == {
        "truncated.jpg": "truncated image",
        "zero.jpg": "empty file",
        "text.jpg": "not an image",
        "bomb.png": "decompression bomb",
        "dangling.jpg": "missing file",
        "zz/forbidden.jpg": "unreadable file",
        "sub/copy-of-good.jpg": "duplicate",
    }
    assert rows["sub/copy-of-good.jpg"][1] == "duplicate: same bytes as good.jpg"
    assert store.array("duplicate_of")[rows["sub/copy-of-good.jpg"][3]] == rows["good.jpg"][3]
    converted = {sid: r[2] for sid, r in rows.items() if r[0] == "ok" and r[2]}
    assert converted == {
        "cmyk.jpg": "mode CMYK->RGB",
        "gray.png": "mode L->RGB",
        "palette.png": "mode P->RGB",
        "rgba.png": "mode RGBA->RGB (alpha on white)",
        "deep16.png": "16-bit I;16->8-bit RGB",
        "rotated.jpg": "exif orientation 6 applied",
        "caf\\xe9.jpg": "file name not UTF-8 (escaped in sample_id)",
    }
    assert rows["good.jpg"][:3] == ("ok", "", "")
    images = store.images()
    assert images[rows["deep16.png"][3]].max() == 200  # scaled, not clipped to 255
    assert not images[rows["zero.jpg"][3]].any()  # quarantined rows hold zeros
    summary = store.summary()
    assert summary["state"] == "complete" and summary["pending"] == []
    assert summary["counts"] == {"ok": 8, "quarantined": 7}
    assert summary["reasons"] == {
        "truncated image": 1,
        "empty file": 1,
        "not an image": 1,
        "decompression bomb": 1,
        "missing file": 1,
        "unreadable file": 1,
        "duplicate": 1,
    }
    assert summary["conversions"]["mode CMYK->RGB"] == 1
    assert summary["dropped"] == {"file without an image extension": 1}
    assert store.manifest()["duplicates"] == 1
    sha = store.array("sha256")[:]
    assert sha[rows["good.jpg"][3]] == sha[rows["sub/copy-of-good.jpg"][3]] != ""
    assert sha[rows["dangling.jpg"][3]] == ""


def test_finalize_twice_changes_nothing(bad_folder, tmp_path):
    out = str(tmp_path / "s.zarr")
    store = ingest_in_process(
        IngestSource.folder(str(bad_folder)), out, shard_size=4, image_size=24
    )
    before = (store.status().tolist(), store.manifest()["counts"])
    finalize(out)
    store = DatasetStore.open(out)
    assert (store.status().tolist(), store.manifest()["counts"]) == before


def coco_json(path, entries, annotations):
    path.write_text(json.dumps({"images": entries, "annotations": annotations}))
    return str(path)


def test_coco_missing_image_and_unknown_caption_ids(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    (images / "a.jpg").write_bytes(encode(halves(), "JPEG"))
    (images / "unlisted.jpg").write_bytes(encode(halves(), "JPEG"))
    captions = coco_json(
        tmp_path / "captions_x.json",
        [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "missing.jpg"}],
        [
            {"id": 10, "image_id": 1, "caption": "second"},
            {"id": 5, "image_id": 1, "caption": "first"},
            {"id": 11, "image_id": 2, "caption": "of a missing file"},
            {"id": 12, "image_id": 99, "caption": "orphan"},
        ],
    )
    store = ingest_in_process(
        IngestSource.coco(str(images), captions), str(tmp_path / "c.zarr"), image_size=16
    )
    rows = rows_by_id(store)
    assert rows["a.jpg"][0] == "ok"
    assert rows["missing.jpg"][:2] == ("quarantined", "missing file: No such file or directory")
    assert store.summary()["dropped"] == {
        "caption with unknown image_id": 1,
        "image file named by no entry": 1,
    }
    caps = store.captions().to_pylist()
    assert [(c["sample_id"], c["caption_index"], c["caption"]) for c in caps] == [
        ("a.jpg", 0, "first"),
        ("a.jpg", 1, "second"),
        ("missing.jpg", 0, "of a missing file"),
    ]
    assert list(store.array("caption")[:]) == ["first", "of a missing file"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (lambda t: IngestSource.folder(str(t / "nope")), "image folder {t}/nope does not exist"),
        (lambda t: IngestSource.folder(str(t / "empty")), "image folder {t}/empty holds no images"),
        (
            lambda t: IngestSource.imagenet(str(t / "empty")),
            "ImageNet folder {t}/empty holds no images",
        ),
        (
            lambda t: IngestSource.coco(str(t / "empty"), str(t / "x.json")),
            "captions file {t}/x.json does not exist",
        ),
        (lambda t: IngestSource.sample(n=0), "--n 0 asks for no images"),
    ],
)
def test_wrong_path_or_empty_dataset_is_one_sentence(tmp_path, source, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(InputError) as err:
        prepare(source(tmp_path), str(tmp_path / "out.zarr"), IngestOptions())
    text = str(err.value)
    assert text.startswith(message.format(t=tmp_path)) and text.count(". ") == 0
    assert text.endswith(".") and "\n" not in text
    assert not (tmp_path / "out.zarr").exists()  # nothing written for a bad input


def test_cli_wrong_path_exits_non_zero_with_one_sentence(tmp_path):
    from speclens.cli import app

    result = CliRunner().invoke(
        app, ["ingest", "imagenet", str(tmp_path / "nope"), "--out", str(tmp_path / "o.zarr")]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: ImageNet folder {tmp_path}/nope does not exist; pass an existing dataset folder."
    )
    result = CliRunner().invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 2 and "is not a speclens dataset store" in result.stderr


def test_foreign_out_location_is_refused_and_kept(tmp_path, bad_folder):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="not a speclens dataset store"):
        prepare(IngestSource.folder(str(bad_folder)), str(out), IngestOptions(), overwrite=True)
    assert (out / "thesis.tex").read_text() == "years of work"


def test_decoded_pixels_match_a_plain_decode(bad_folder, tmp_path):
    store = ingest_in_process(
        IngestSource.folder(str(bad_folder)), str(tmp_path / "s.zarr"), image_size=24
    )
    i = list(store.sample_ids()).index("good.jpg")
    data = (bad_folder / "good.jpg").read_bytes()
    ref = np.asarray(
        Image.open(io.BytesIO(data))
        .convert("RGB")
        .resize((24, 24), Image.Resampling.BICUBIC, box=(8, 0, 40, 32))
    )
    np.testing.assert_array_equal(store.images(i, i + 1)[0], ref)
