"""The README's newcomer path on a real demo run: the run that `make train` makes (the
Makefile's `train` target's own commands and config file, shortened with `--config.`
overrides), then `stylegan-jax generate --seeds 0-99` and the notebook on it. If the demo
changes (config, dataset, conditional or not), these tests follow it."""

import importlib.util
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from demo_notebook import run_notebook
from PIL import Image

import stylegan_jax as sg
from stylegan_jax import cli
from stylegan_jax.generate import seed_classes
from stylegan_jax.images import to_uint8

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.slow  # one short training run of the real demo networks


def make_train_commands() -> list[list[str]]:
    """The ``stylegan-jax`` command lines of the Makefile's ``train`` recipe, as argv lists
    (without the program), in order."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^train:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "the Makefile has no train target"
    return [shlex.split(line.split("/bin/stylegan-jax", 1)[1])
            for line in recipe[1].splitlines() if "/bin/stylegan-jax" in line]


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def replace_flag(argv: list[str], name: str, value: str) -> list[str]:
    argv = list(argv)
    argv[argv.index(name) + 1] = value
    return argv


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo run of `make train`, in a temporary directory: its data preparation and its
    training command as written in the Makefile, with only the data/run directories moved and
    the training cut to a few iterations at the final resolution."""
    root = tmp_path_factory.mktemp("demo")
    *prepares, train = make_train_commands()
    assert train[0] == "train", f"the train target's last command is not training: {train}"
    for prepare in prepares:
        cli.main(replace_flag(prepare, "--data_dir", str(root / "data")))
    config_file = ROOT / flag(train, "--config")
    train = replace_flag(train, "--config", str(config_file))
    spec = importlib.util.spec_from_file_location("demo_config", config_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    run = root / "run"
    cli.main([*replace_flag(train, "--workdir", str(run)),
              f"--config.dataset.data_dir={root / 'data'}",
              f"--config.sched.lod_initial_resolution={config.resolution}",
              f"--config.total_kimg={2 * config.sched.minibatch_base / 1000}"])
    return run


def test_generate_seeds_0_99_from_the_demo_run(demo_run, tmp_path, capsys):
    out = tmp_path / "out"
    cli.main(["generate", "--workdir", str(demo_run), "--seeds", "0-99", "--outdir", str(out)])
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == [f"seed{s:04d}.png" for s in range(100)]
    model = sg.load(demo_run)
    assert Image.open(files[0]).size == (model.resolution, model.resolution)
    stderr = capsys.readouterr().err
    if model.num_classes:  # said once, and the images are each seed's own class
        assert stderr.count(f"seed s is drawn as class s % {model.num_classes}") == 1
        seeds = [0, 13, 99]
        expected = to_uint8(model.generate(model.z(seeds),
                                           class_index=seed_classes(seeds, model.num_classes)))
    else:
        assert "class" not in stderr
        seeds = [0, 99]
        expected = to_uint8(model.generate(model.z(seeds)))
    for seed, image in zip(seeds, expected, strict=True):
        written = np.asarray(Image.open(out / f"seed{seed:04d}.png"))
        assert np.abs(written.astype(int) - image).max() <= 1  # batching may round differently


def test_notebook_runs_on_the_demo_run(demo_run, monkeypatch, tmp_path):
    """Every cell, the projection and editing one included (random-trunk LPIPS, 3 steps)."""
    from random_lpips import random_lpips_params, write_lpips_npz

    monkeypatch.setenv("STYLEGAN_JAX_LPIPS",
                       str(write_lpips_npz(tmp_path / "vgg16.npz", random_lpips_params())))
    monkeypatch.setenv("STYLEGAN_JAX_DEMO_PROJECT_STEPS", "3")
    namespace = run_notebook(demo_run, monkeypatch)
    projected = namespace["projected"]
    assert projected.steps == 3 and projected.images.shape[0] == 5
    assert namespace["directions"].shape == (10, namespace["model"].G.dlatent_size)
    model = namespace["model"]
    assert model.step == sg.load(demo_run).step
    rows = model.num_classes or 1  # the class cell: a row per class, seeds 0-7
    assert namespace["images"].shape == (rows * 8, model.resolution, model.resolution,
                                         model.config.num_channels)
