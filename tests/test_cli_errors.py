"""User mistakes: one line on stderr naming the file/field/flag, exit status 2, no traceback,
and nothing written. All of these fail before any training or model building starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylegan_jax import cli, config_file, validate
from stylegan_jax.data import builders
from stylegan_jax.data.prepare import prepare_dataset
from stylegan_jax.data.prepared import open_prepared

EXPERIMENTS = Path(__file__).parents[1] / "experiments"
DIGITS = str(EXPERIMENTS / "digits.py")


def usage_error(capsys, argv, *words):
    """Runs the CLI expecting a usage error; returns its one stderr line."""
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"stylegan-jax {argv[0]}: error: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# ---- item 6: config files, overrides and paths ----

def test_config_file_mistakes(tmp_path, capsys):
    usage_error(capsys, ["summary", "--config", str(tmp_path / "nope.py")],
                f"config file {tmp_path / 'nope.py'} does not exist")
    (tmp_path / "bad.py").write_text("def get_config():\n    return (\n")
    usage_error(capsys, ["summary", "--config", str(tmp_path / "bad.py")],
                "bad.py, line 2: syntax error")
    (tmp_path / "empty.py").write_text("x = 1\n")
    usage_error(capsys, ["summary", "--config", str(tmp_path / "empty.py")],
                "empty.py has no get_config()")
    (tmp_path / "raises.py").write_text("def get_config():\n    return undefined_name\n")
    usage_error(capsys, ["train", "--config", str(tmp_path / "raises.py"), "--workdir",
                         str(tmp_path / "run")], "raises.py, line 2", "NameError")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, words", [
    ("--config.foo=1", ["unknown field foo"]),
    ("--config.totl_kimg=5", ["unknown field totl_kimg", "did you mean total_kimg"]),
    ("--config.G.fmap_bse=5", ["unknown field fmap_bse in config.G", "did you mean fmap_base"]),
    ("--config.total_kimg=abc", ["--config.total_kimg=abc"]),
])
def test_bad_overrides(tmp_path, capsys, override, words):
    usage_error(capsys, ["train", "--config", DIGITS, override, "--workdir",
                         str(tmp_path / "run")], *words)
    assert not (tmp_path / "run").exists()


def test_paths_that_are_files(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    usage_error(capsys, ["train", "--config", DIGITS, "--workdir", str(afile)],
                f"--workdir {afile} is a file")
    usage_error(capsys, ["data-bench", "--data_dir", str(afile), "--dataset", "digits"],
                f"data_dir {afile} is a file")
    usage_error(capsys, ["prepare", "--dataset", "digits", "--data_dir", str(afile)],
                str(afile))
    # --outdir is checked before the run is even looked at, so before any image is made.
    for argv in (["generate", "--seeds", "0-3"], ["figure", "--kind", "noise"]):
        usage_error(capsys, [*argv, "--workdir", str(tmp_path / "no_run"), "--outdir",
                             str(afile)], f"--outdir {afile} is a file")
    for argv in (["metrics"], ["generate", "--seeds", "0", "--outdir", str(tmp_path / "o")]):
        usage_error(capsys, [*argv, "--workdir", str(afile)], f"--workdir {afile} is a file")
    assert afile.read_text() == "" and not (tmp_path / "o").exists()


def test_unknown_flag_and_command(capsys):
    usage_error(capsys, ["summary", "--config", DIGITS, "--bogus"], "'bogus'")
    with pytest.raises(SystemExit) as e:
        cli.main(["bogus"])
    assert e.value.code == 2 and "unknown command 'bogus'" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    argv = ["summary", "--config", str(tmp_path / "nope.py")]
    for extra, env in ((["--debug"], None), ([], "1")):
        if env:
            monkeypatch.setenv("STYLEGAN_JAX_DEBUG", env)
        with pytest.raises(SystemExit) as e:
            cli.main([*extra, *argv])
        err = capsys.readouterr().err
        assert e.value.code == 2
        assert "Traceback" in err and "ConfigError" in err
        assert err.strip().splitlines()[-1].startswith("stylegan-jax summary: error: config")


def test_real_process_exit_status_and_output(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-m", "stylegan_jax.cli", "train", "--config", DIGITS,
         "--config.totl_kimg=5", "--workdir", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("stylegan-jax train: error: unknown field totl_kimg "
                                   "(--config.totl_kimg), did you mean total_kimg?")
    assert proc.stdout == "" and not (tmp_path / "run").exists()


# ---- item 7: values out of range ----

def test_every_shipped_config_is_valid():
    table1 = EXPERIMENTS / "paper" / "table1.py"  # takes ROW,DATASET after a colon
    specs = [str(p) for p in sorted(EXPERIMENTS.rglob("*.py")) if p != table1]
    specs += [f"{table1}:{row},{data}" for row in "bcdef" for data in ("ffhq", "celebahq")]
    for spec in specs:
        assert validate.problems(config_file.load(spec)) == [], spec


@pytest.mark.parametrize("override, words", [
    ("--config.total_kimg=-1", ["config.total_kimg must be > 0 (got -1.0)"]),
    ("--config.resolution=48", ["config.resolution must be a power of two"]),
    ("--config.sched.minibatch_base=0", ["config.sched.minibatch_base must be >= 1"]),
    ("--config.sched.G_lrate_base=0", ["config.sched.G_lrate_base must be > 0"]),
    ("--config.loss.r1_gamma=-1", ["config.loss.r1_gamma must be >= 0"]),
    ("--config.sched.lod_initial_resolution=64", ["lod_initial_resolution (64) must be <= "
                                                  "config.resolution (32)"]),
    ("--config.G.style_mixing_prob=1.5", ["config.G.style_mixing_prob must be in [0, 1]"]),
    ("--config.opt.beta2=1", ["config.opt.beta2 must be in [0, 1)"]),
    ("--config.sched.tick_kimg_base=0", ["config.sched.tick_kimg_base must be > 0"]),
    ("--config.keep_checkpoints=0", ["config.keep_checkpoints must be >= 1"]),
    ("--config.eval.batch_size=0", ["config.eval.batch_size must be >= 1"]),
    ("--config.metrics=('fid50k','is50k')", ["config.metrics holds an unknown metric 'is50k'"]),
    ("--config.seed=-1", ["config.seed must be in [0, 4294967295]"]),
    ("--config.layout_resolution=-1", ["config.layout_resolution must be >= 0"]),
])
def test_out_of_range_fields_are_refused_before_anything_is_written(tmp_path, capsys,
                                                                     override, words):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"old": true}')
    usage_error(capsys, ["train", "--config", DIGITS, override, "--workdir", str(run)], *words)
    assert (run / "config.json").read_text() == '{"old": true}'
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    usage_error(capsys, ["summary", "--config", DIGITS, override], *words)
    usage_error(capsys, ["bench-train", "--config", DIGITS, override], *words)


def test_several_bad_fields_in_one_line(capsys):
    usage_error(capsys, ["summary", "--config", DIGITS, "--config.total_kimg=0",
                         "--config.grid_size=0"],
                "config.total_kimg must be > 0 (got 0.0); config.grid_size must be >= 1 (got 0)")


@pytest.mark.parametrize("argv, words", [
    (["prepare", "--dataset", "ffhq", "--resolution", "0"], ["--resolution=0"]),
    (["prepare", "--dataset", "image_folder", "--resolution", "48"],
     ["no config '48_crop'", "powers of two"]),
    (["prepare", "--dataset", "digits", "--workers", "0"], ["--workers=0"]),
    (["data-bench", "--dataset", "digits", "--batch", "0"], ["--batch=0"]),
    (["data-bench", "--dataset", "digits", "--prefetch", "0"], ["--prefetch=0"]),
])
def test_out_of_range_flags(tmp_path, capsys, argv, words):
    data = tmp_path / "data"
    usage_error(capsys, [*argv, "--data_dir", str(data), "--source", str(tmp_path)]
                if argv[0] == "prepare" else [*argv, "--data_dir", str(data)], *words)
    assert not data.exists()


def test_bench_train_flags(capsys):
    usage_error(capsys, ["bench-train", "--config", DIGITS, "--resolution", "64"],
                "--resolution must be a power of two in [4, 32]")
    usage_error(capsys, ["bench-train", "--config", DIGITS, "--batch", "0"], "--batch=0")


# ---- item 5: the prepared dataset is checked first ----

@pytest.fixture(scope="module")
def tiny_prepared(tmp_path_factory):
    """A real 8x8 image_folder dataset (two images) and a failed build's leftover."""
    root = tmp_path_factory.mktemp("prepared")
    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / f"{i}.png")
    prepare_dataset("image_folder", root / "data", source=root, resolution=8)
    leftover = root / "data" / "ffhq" / "16" / "1.0.0.incompleteABC"
    leftover.mkdir(parents=True)
    (leftover / "dataset_info.json").write_text("{}")
    return root / "data"


@pytest.mark.parametrize("command", ["bench-suite", "tpu-compile"])
def test_markdown_of_a_file_that_is_not_the_commands_rows(tmp_path, capsys, command):
    foreign = tmp_path / "metrics.jsonl"
    foreign.write_text('{"fid50k": 4.4, "kimg": 120}\n')
    usage_error(capsys, [command, "--markdown", str(foreign)], str(foreign),
                f"not the rows of `stylegan-jax {command} --out`")
    usage_error(capsys, [command, "--markdown", str(tmp_path / "none.jsonl")], "no such file")


def test_train_before_prepare(tmp_path, capsys):
    data, run = tmp_path / "nodata", tmp_path / "run"
    usage_error(capsys, ["train", "--config", DIGITS, f"--config.dataset.data_dir={data}",
                         "--workdir", str(run)],
                f"dataset digits/32 is not prepared in {data} (that directory does not exist)",
                f"make it with: stylegan-jax prepare --dataset digits --data_dir {data}")
    assert not run.exists() and not data.exists()


def test_wrong_dataset_lists_what_is_there(tiny_prepared, tmp_path, capsys):
    run = tmp_path / "run"
    usage_error(capsys, ["train", "--config", DIGITS,
                         f"--config.dataset.data_dir={tiny_prepared}", "--workdir", str(run)],
                "dataset digits/32 is not prepared", "(prepared there: image_folder/8_crop)",
                f"stylegan-jax prepare --dataset digits --data_dir {tiny_prepared}")
    assert not run.exists()
    usage_error(capsys, ["data-bench", "--data_dir", str(tiny_prepared), "--dataset",
                         "image_folder/16_pad"],
                "(prepared there: image_folder/8_crop)",
                "stylegan-jax prepare --dataset image_folder --resolution 16 --fit pad "
                f"--source SOURCE --data_dir {tiny_prepared}")
    usage_error(capsys, ["data-bench", "--data_dir", str(tiny_prepared), "--dataset", "ffhq"],
                "dataset ffhq/1024 is not prepared", "--dataset ffhq --resolution 1024")
    usage_error(capsys, ["data-bench", "--data_dir", str(tiny_prepared), "--dataset", "fhq"],
                "unknown dataset 'fhq'", "ffhq/1024")


def test_prepared_dataset_opens(tiny_prepared):
    found = open_prepared(tiny_prepared, "image_folder/8_crop")
    assert (found.name, found.resolution, found.num_classes) == ("image_folder/8_crop", 8, 0)
    assert found.builder.info.splits["train"].num_examples == 2


def test_resolution_mismatch_is_one_line(tiny_prepared, tmp_path, capsys):
    usage_error(capsys, ["train", "--config", DIGITS, f"--config.dataset.data_dir="
                         f"{tiny_prepared}", "--config.dataset.name=image_folder/8_crop",
                         "--workdir", str(tmp_path / "run")],
                "stores 8x8 images but config.resolution is 32")


# ---- item 9a: prepare says what it ignored ----

def test_prepare_lists_ignored_files(tmp_path, capsys):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / name)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / "anim.gif")
    (src / "notes.txt").write_text("x")
    (src / ".DS_Store").write_bytes(b"\0")
    (src / "sub" / "c.bmp").write_bytes(b"BM")
    cli.main(["prepare", "--dataset", "image_folder", "--source", str(src), "--data_dir",
              str(tmp_path / "data"), "--resolution", "8"])
    err = capsys.readouterr().err
    assert ("note: ignored 4 files that are not source images: .DS_Store (hidden file), "
            "anim.gif (.gif, not one of .jpeg/.jpg/.png/.webp), "
            "notes.txt (.txt, not one of .jpeg/.jpg/.png/.webp) and 1 more") in err
    info = json.loads(next((tmp_path / "data").rglob("dataset_info.json")).read_text())
    assert info["splits"][0]["shardLengths"] == ["2"]


def test_source_without_images_names_what_it_found(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "anim.gif").write_bytes(b"GIF89a")
    with pytest.raises(builders.SourceError, match=r"only other files: anim\.gif \(\.gif"):
        prepare_dataset("image_folder", tmp_path / "data", source=tmp_path / "src")
