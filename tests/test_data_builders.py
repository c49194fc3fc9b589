"""Dataset builders and ``prepare``: tiny sources made here, no network, no TensorFlow."""

import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from official import official_box
from PIL import Image
from sklearn.datasets import load_digits

from stylegan_jax import cli
from stylegan_jax.data import builders, images
from stylegan_jax.data.prepare import prepare_dataset


def read_all(data_dir, name):
    source = tfds.data_source(name, split="train", data_dir=str(data_dir), download=False)
    records = [source[i] for i in range(len(source))]
    return (np.stack([r["image"] for r in records]),
            np.array([r["label"] for r in records]))


def test_digits(tmp_path):
    done = prepare_dataset("digits", tmp_path)
    assert (done.name, done.num_examples, done.num_classes) == ("digits/32", 1797, 10)
    x, y = read_all(tmp_path, "digits")
    assert x.shape == (1797, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, load_digits().target)
    assert x.min() == 0 and x.max() == 255
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # gray as RGB
    # Upscaling keeps the digit: 4x4 block means track the original 8x8 image.
    blocks = x[..., 0].reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4))
    corr = np.corrcoef(blocks.ravel(), load_digits().images.ravel())[0, 1]
    assert corr > 0.95
    assert "tensorflow" not in sys.modules  # built and read without importing TF


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def faces():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("layout", ["official_tree", "flat", "zip"])
def test_ffhq_layouts(tmp_path, faces, layout, monkeypatch):
    monkeypatch.setattr(builders, "SHARD_BYTES", 2 * 16 * 16 * 3)  # 3 shards, order kept
    src = tmp_path / "ffhq"
    for i, face in enumerate(faces):
        if layout == "flat":
            write_png(src / f"{i:05d}.png", face)
        else:
            write_png(src / "images1024x1024" / f"{i // 3 * 1000:05d}" / f"{i:05d}.png", face)
    (src / "LICENSE.txt").write_text("not an image")
    if layout == "zip":
        with zipfile.ZipFile(tmp_path / "images1024x1024.zip", "w") as z:
            for p in sorted((src / "images1024x1024").rglob("*.png")):
                z.write(p, p.relative_to(src).as_posix())
        src = tmp_path / "images1024x1024.zip"
    done = prepare_dataset("ffhq", tmp_path / "out", source=src, resolution=16)
    assert (done.name, done.num_examples, done.num_classes) == ("ffhq/16", 5, 0)
    assert len(list(done.path.glob("*.array_record-*"))) == 3
    x, y = read_all(tmp_path / "out", "ffhq/16")
    assert x.shape == (5, 16, 16, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, official_box(faces, 16))
    np.testing.assert_array_equal(y, -1)


def test_prepare_says_what_it_wrote_and_no_download_banner(tmp_path, capfd):
    """TFDS's "Downloading and preparing dataset Unknown size ..." would alarm an offline
    user: nothing is downloaded. The command's own line says what, where, how much, how long."""
    for i in range(3):
        write_png(tmp_path / "src" / f"{i}.png", np.full((16, 16, 3), 60 * i, np.uint8))
    cli.main(["prepare", "--dataset", "image_folder", "--source", str(tmp_path / "src"),
              "--data_dir", str(tmp_path / "out"), "--resolution", "8"])
    out, err = capfd.readouterr()
    assert "ownload" not in out + err
    path = tmp_path / "out" / "image_folder" / "8_crop" / "1.0.0"
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
    assert re.fullmatch(rf"Prepared 3 images as 'image_folder/8_crop' in {path} "
                        rf"\({size:,.1f} MiB written in \d+\.\d s\)", out.splitlines()[0])


def test_ffhq_missing_dir_prints_instructions(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        cli.main(["prepare", "--dataset", "ffhq", "--source", str(tmp_path / "nope"),
                  "--data_dir", str(out), "--resolution", "16"])
    assert "download_ffhq.py" in str(e.value) and "images1024x1024" in str(e.value)
    assert not out.exists()


@pytest.mark.parametrize("shape, why", [((64, 32, 3), "square"), ((48, 48, 3), "power of two"),
                                        ((8, 8, 3), "smaller")])
def test_ffhq_rejects_unusable_sizes(tmp_path, shape, why):
    write_png(tmp_path / "src" / "00000.png", np.zeros(shape, np.uint8))
    with pytest.raises(builders.SourceError, match=why):
        prepare_dataset("ffhq", tmp_path / "out", source=tmp_path / "src", resolution=16)
    assert not (tmp_path / "out").exists()


def make_mixed_folder(root: Path) -> None:
    """Two class folders with every convertible mode, plus a text file to ignore."""
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 200
    write_png(root / "a" / "rgb.png", red)
    Image.fromarray(np.full((20, 16), 77, np.uint8), "L").save(root / "a" / "gray.jpg")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 1] = 255  # green but fully transparent -> black
    Image.fromarray(rgba, "RGBA").save(root / "a" / "clear.webp", lossless=True)
    Image.fromarray(np.full((16, 16), 65535, np.uint16)).save(root / "b" / "deep.png")
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(root / "b" / "cmyk.jpg")
    palette = Image.fromarray(red).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(root / "b" / "palette.png")
    (root / "b" / "notes.txt").write_text("ignored")


def test_image_folder_mixed_formats_and_labels(tmp_path):
    make_mixed_folder(tmp_path / "src")
    done = prepare_dataset("image_folder", tmp_path / "out", source=tmp_path / "src",
                           resolution=16)
    assert (done.name, done.num_examples, done.num_classes) == ("image_folder/16_crop", 6, 2)
    x, y = read_all(tmp_path / "out", done.name)
    assert x.shape == (6, 16, 16, 3) and x.dtype == np.uint8
    # Sorted keys: a/clear.webp, a/gray.jpg, a/rgb.png, b/cmyk.jpg, b/deep.png, b/palette.png
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1, 1])
    assert x[0].max() == 0  # transparent over black
    assert abs(int(x[1].mean()) - 77) <= 2  # grayscale (cropped 16x20) replicated to RGB
    np.testing.assert_array_equal(x[2], np.broadcast_to([200, 0, 0], (16, 16, 3)))
    assert x[3, ..., 0].mean() > 200 and x[3, ..., 1:].mean() < 50  # CMYK red
    np.testing.assert_array_equal(x[4], 255)  # 16-bit white rescaled, not clipped
    np.testing.assert_array_equal(x[5], x[2])  # palette


def test_image_folder_crop_and_pad(tmp_path):
    wide = np.full((8, 16, 3), 255, np.uint8)
    write_png(tmp_path / "src" / "wide.png", wide)
    crop = prepare_dataset("image_folder", tmp_path / "o", source=tmp_path / "src",
                           resolution=8, fit="crop")
    pad = prepare_dataset("image_folder", tmp_path / "o", source=tmp_path / "src",
                          resolution=16, fit="pad")
    (xc,), _ = read_all(tmp_path / "o", crop.name)
    (xp,), _ = read_all(tmp_path / "o", pad.name)
    np.testing.assert_array_equal(xc, 255)
    np.testing.assert_array_equal(xp[4:12], 255)
    np.testing.assert_array_equal(xp[:4], 0)
    np.testing.assert_array_equal(xp[12:], 0)


@pytest.fixture
def bad_folder(tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        write_png(src / f"good{i}.png", np.full((32, 32, 3), 10 * i, np.uint8))
    full = (src / "good0.png").read_bytes()
    (src / "truncated.png").write_bytes(full[: len(full) // 2])
    (src / "text.jpg").write_text("this is not a JPEG")
    write_png(src / "tiny.png", np.zeros((8, 8, 3), np.uint8))
    return src


def test_bad_files_stop_the_build_and_are_all_named(tmp_path, bad_folder):
    out = tmp_path / "out"
    with pytest.raises(builders.SourceError) as e:
        prepare_dataset("image_folder", out, source=bad_folder, resolution=16)
    message = str(e.value)
    assert "text.jpg: not an image" in message and "tiny.png: 8x8 is smaller" in message
    assert "truncated.png: cannot decode" in message
    assert "good0.png" not in message
    assert not out.exists()


def test_skip_bad_skips_and_counts(tmp_path, bad_folder):
    done = prepare_dataset("image_folder", tmp_path / "out", source=bad_folder, resolution=16,
                           skip_bad=True)
    assert done.num_examples == 3
    assert list(done.skipped) == ["text.jpg", "tiny.png", "truncated.png"]


def test_empty_and_missing_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no images here")
    with pytest.raises(builders.SourceError, match="no .png"):
        prepare_dataset("image_folder", tmp_path / "out", source=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_dataset("image_folder", tmp_path / "out", source=tmp_path / "missing")
    assert not (tmp_path / "out").exists()


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    for i in range(4):
        write_png(tmp_path / "src" / f"{i}.png", np.zeros((32, 32, 3), np.uint8))
    calls = []

    def broken(image, resolution, fit):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return np.zeros((resolution, resolution, 3), np.uint8)

    monkeypatch.setattr(images, "fit_square", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_dataset("image_folder", tmp_path / "out", source=tmp_path / "src",
                        resolution=16, workers=1)
    assert not (tmp_path / "out").exists()


def test_existing_dataset_needs_overwrite(tmp_path, capsys):
    prepare_dataset("digits", tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        prepare_dataset("digits", tmp_path)
    with pytest.raises(SystemExit):  # the CLI words the parameter as its flag
        cli.main(["prepare", "--dataset", "digits", "--data_dir", str(tmp_path)])
    assert "(--overwrite replaces it)" in capsys.readouterr().err
    assert prepare_dataset("digits", tmp_path, overwrite=True).num_examples == 1797


def test_config_names():
    assert builders.config_name("ffhq") == "1024"
    assert builders.config_name("image_folder", 64, "pad") == "64_pad"
    with pytest.raises(ValueError, match="powers of two"):
        builders.config_name("ffhq", 100)
