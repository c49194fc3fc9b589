"""tpu-compile: the pieces against hand-made inputs, and the digits config compiled for real
TPU topologies by XLA:TPU on this CPU machine (libtpu from `make tpu-tools`)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from stylegan_jax import tpu_compile
from stylegan_jax.config import cpu_demo_config, paper_config
from stylegan_jax.errors import UsageError
from stylegan_jax.models import build_networks

ROOT = Path(__file__).resolve().parents[1]


def test_topology_names_give_the_chip_and_the_chip_count():
    assert tpu_compile.parse_topology("v5e:4x4") == (tpu_compile.CHIPS["v5e"], 16)
    assert tpu_compile.parse_topology("v4:4x4x4") == (tpu_compile.CHIPS["v4"], 64)
    for bad in ("v5e-16", "v3:2x2", "v5e:4", "tpu"):
        with pytest.raises(UsageError, match="--topology"):
            tpu_compile.parse_topology(bad)


def test_the_compilers_out_of_memory_message_is_read():
    message = ("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for "
               "HLO temporaries (21.90G) exceeds available HBM (15.75G).")
    need, available = tpu_compile.parse_oom(message)
    assert need == int(21.90 * 2**30) and available == int(15.75 * 2**30)
    assert tpu_compile.parse_oom("INVALID_ARGUMENT: something else") is None


def test_collectives_are_counted_with_their_bytes():
    hlo = "\n".join([
        "  %all-reduce.1 = f32[512,512]{1,0:T(8,128)} all-reduce(%fusion), channel_id=1",
        "  %ars = (f32[256]{0}, f32[256]{0}, /*index=2*/f32[2]{0}) all-reduce-start(%a, %b, %c)",
        "  %ard = f32[256]{0} all-reduce-done(%ars)",
        "  %ags = (bf16[2,8]{1,0}, bf16[8,8]{1,0}) all-gather-start(%g), dimensions={0}",
        "  %agd = bf16[8,8]{1,0} all-gather-done(%ags)",
        "  ROOT %t = (bf16[8,4]{1,0}, u8[16]{0}) all-to-all(%x, %y), dimensions={0}",
        "  %add = f32[4]{0} add(%p, %q)",
    ])
    assert tpu_compile.collectives(hlo) == {
        "all-reduce": {"count": 2, "bytes": 512 * 512 * 4 + (256 + 256 + 2) * 4},
        "all-gather": {"count": 1, "bytes": 8 * 8 * 2},
        "all-to-all": {"count": 1, "bytes": 8 * 4 * 2 + 16}}


def test_roofline_is_the_slower_of_compute_and_memory():
    v5e = tpu_compile.CHIPS["v5e"]
    assert tpu_compile.roofline_seconds(197e12, 0.0, v5e) == pytest.approx(1.0)
    assert tpu_compile.roofline_seconds(1.0, 819e9 * 3, v5e) == pytest.approx(3.0)


def test_a_batch_smaller_than_the_slice_says_what_works():
    advice = tpu_compile.split_advice(32, 256, tpu_compile.CHIPS["v5e"])
    assert "at most 32 v5e chips" in advice and "to 256" in advice


def test_per_chip_batch_step_keeps_the_groups_whole():
    config = paper_config(1024)  # mbstd groups of 4, 8 style-mixing groups: global % 8 == 0
    assert tpu_compile.batch_step(config, 4) == 2
    assert tpu_compile.batch_step(config, 8) == 1
    assert tpu_compile.batch_step(cpu_demo_config("digits/32"), 1) == 4


def _run(tmp_path: Path, *args: str, timeout: int = 900) -> list[dict]:
    if tpu_compile.libtpu_path() is None:
        if os.environ.get("CI"):
            pytest.fail("libtpu is missing: `make test` installs it (make tpu-tools)")
        pytest.skip("libtpu is not installed (make tpu-tools)")
    out = tmp_path / "rows.jsonl"
    cmd = [sys.executable, "-m", "stylegan_jax.cli", "tpu-compile",
           "--config", str(ROOT / "experiments" / "digits.py"), "--out", str(out), *args]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("topology,kind", [("v5e:2x2", "TPU v5 lite"), ("v4:2x2x1", "TPU v4")])
def test_digits_iteration_compiles_for_tpu_topologies(tmp_path, topology, kind):
    rows = _run(tmp_path, "--topology", topology, "--programs", "phases", "--resolutions", "32")
    env, phase = rows
    assert env["kind"] == "env" and env["chips"] == 4 and env["device_kind"] == kind
    assert phase["kind"] == "phase" and phase["resolution"] == 32
    assert phase["global_batch"] == 32 and phase["per_chip_batch"] == 8
    assert phase["fits"] and 0 < phase["needs_gib"] < phase["hbm_gib"]
    assert phase["flops"] > 0 and phase["bytes_accessed"] > 0 and phase["roofline_ms"] > 0
    # data parallelism: the gradients' all-reduce moves at least G's and D's float32 params
    G, D = build_networks(cpu_demo_config("digits/32", label_size=10))
    images = jnp.zeros((1, 32, 32, 3))
    labels = jnp.zeros((1, 10))
    params = [jax.eval_shape(G.init, jax.random.key(0), jnp.zeros((1, G.latent_size)),
                             labels)["params"],
              jax.eval_shape(D.init, jax.random.key(0), images, labels)["params"]]
    count = sum(math.prod(x.shape) for x in jax.tree.leaves(params))
    assert 4 * count <= phase["collectives"]["all-reduce"]["bytes"] < 4 * 4 * count


@pytest.mark.slow
def test_a_slice_larger_than_the_batch_compiles_nothing_and_says_so(tmp_path):
    rows = _run(tmp_path, "--topology", "v5e:8x8", "--programs", "phases", timeout=120)
    assert [r["kind"] for r in rows] == ["env", "does_not_split", "does_not_split"]
    assert all("at most 32 v5e chips" in r["advice"] for r in rows[1:])


def test_markdown_tables_every_row_kind():
    env = {"kind": "env", "topology": "v5e:2x4", "chips": 8, "device_kind": "TPU v5 lite",
           "hbm_gib_per_chip": 16.0, "compute_dtype": "bfloat16", "layout_resolution": 256,
           "remat_resolution": 0, "compiler_options": {}, "jax": "0.10.2"}
    fits = {"kind": "phase", "resolution": 1024, "per_chip_batch": 4, "global_batch": 32,
            "fits": True, "needs_gib": 13.8, "temp_gib": 13.2, "flops": 3.4e12,
            "bytes_accessed": 3.4e11, "roofline_ms": 410.6, "compile_s": 452.0,
            "collectives": {"all-reduce": {"count": 15, "bytes": 201_343_108}}}
    oom = {"kind": "batch_probe", "resolution": 1024, "per_chip_batch": 16,
           "global_batch": 128, "fits": False, "needs_gib": 30.1, "available_gib": 15.75,
           "compile_s": 30.0}
    split = {"kind": "does_not_split", "resolution": 1024, "schedule_batch": 32,
             "advice": "use a slice of at most 32 v5e chips"}
    best = {"kind": "max_batch", "resolution": 1024, "largest_fitting": 8,
            "smallest_failing": 10, "step": 1}
    text = tpu_compile.markdown([env, fits, oom, split, best])
    assert "**v5e:2x4** (8 chips, TPU v5 lite, 16 GiB HBM each), bfloat16, layout_resolution 256" \
        in text
    assert "| phase | 1024 | 4 (32) | yes | 13.80 | 13.20 | 3,400.00 | 340.00 | 410.60 | " \
        "15, 201.3 | 452.00 |" in text
    assert "| batch_probe | 1024 | 16 (128) | no (available 15.75) | 30.10 |" in text
    assert "does not split: use a slice of at most 32 v5e chips" in text
    assert "| largest per-chip batch | 1024 | 8 (first failing: 10, step 1) |" in text


@pytest.mark.slow
def test_a_per_chip_batch_the_groups_do_not_divide_is_named(tmp_path):
    if tpu_compile.libtpu_path() is None:
        pytest.skip("libtpu is not installed (make tpu-tools)")
    result = subprocess.run(
        [sys.executable, "-m", "stylegan_jax.cli", "tpu-compile", "--config",
         str(ROOT / "experiments" / "ffhq_1024.py"), "--topology", "v5e:2x2",
         "--per_chip_batch", "1", "--programs", "phases"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 2
    assert "--per_chip_batch 1 on 4 chips" in result.stderr and "multiple of 2" in result.stderr


def test_max_batch_search_stops_between_the_largest_fit_and_the_next_step(monkeypatch):
    """The search over per-chip batches against a compiler stand-in whose program needs
    1.5 GiB per image and fits under v5e's 15.75 GiB (the real compiles: BENCHMARKS.md)."""

    class Mesh:
        size = 4

    monkeypatch.setattr(tpu_compile.bench, "lower_iteration",
                        lambda config, resolution, batch, mesh: batch)
    tried = []

    def compile_row(lower, chip, options):
        per_chip = lower() // Mesh.size
        tried.append(per_chip)
        need = 1.5 * per_chip
        return {"fits": need <= 15.75, "needs_gib": need}

    monkeypatch.setattr(tpu_compile, "compile_row", compile_row)
    rows = list(tpu_compile.max_batch_rows(paper_config(1024), Mesh(), tpu_compile.CHIPS["v5e"],
                                           1024))
    # on 4 chips the paper's 8 mixing groups need an even per-chip batch
    assert all(b % 2 == 0 for b in tried) and tried[:2] == [4, 8]
    assert [r["fits"] for r in rows[:-1]] == [b * 1.5 <= 15.75 for b in tried]
    assert rows[-1] == {"kind": "max_batch", "resolution": 1024, "largest_fitting": 10,
                        "smallest_failing": 12, "step": 2}


@pytest.mark.slow
def test_resolutions_outside_the_schedule_are_named(tmp_path):
    if tpu_compile.libtpu_path() is None:
        pytest.skip("libtpu is not installed (make tpu-tools)")
    result = subprocess.run(
        [sys.executable, "-m", "stylegan_jax.cli", "tpu-compile", "--config",
         str(ROOT / "experiments" / "digits.py"), "--topology", "v5e:2x2",
         "--resolutions", "8", "--programs", "phases"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 2
    assert "--resolutions [8]: not phases of the config's schedule ([16, 32])" in result.stderr
