"""``stylegan-jax bench-suite``: the smoke run produces every row kind through the same code
as an accelerator run; budget, item limits, pauses and the batch search behave as stated."""

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stylegan_jax import bench_suite, cli, schedule
from stylegan_jax.config import paper_config

pytestmark = pytest.mark.slow

KINDS = {"env", "train", "memory_probe", "max_batch", "fid", "ppl", "projection",
         "phase_compile", "done"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke call on one CPU device, as an accelerator run on one GPU (about 2 minutes
    on 2 cores), shared by the tests that read it."""
    tmp = tmp_path_factory.mktemp("suite")
    settings = bench_suite.Settings(smoke=True, cache_dir=str(tmp / "cache"), timing_s=1.0)
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = re.sub(r"--xla_force_host_platform_device_count=\d+", "", flags)
    try:
        out = bench_suite.run_suite(settings, tmp / "suite.jsonl")
    finally:
        os.environ["XLA_FLAGS"] = flags
    return out, bench_suite.read_rows(out)


def test_smoke_produces_every_row_kind(smoke):
    _, rows = smoke
    by_kind = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    assert not {"error", "timeout", "skipped"} & set(by_kind), rows
    assert set(by_kind) >= KINDS
    assert rows[0]["kind"] == "env" and rows[-1]["kind"] == "done"
    assert [r["t"] for r in rows if r["item"] != "phase-compile"] == sorted(
        r["t"] for r in rows if r["item"] != "phase-compile")
    for row in by_kind["train"]:
        assert row["images_per_s"] > 0 and row["timed_steps"] >= 1 and row["compile_s"] > 0
        assert math.isclose(row["images_per_s"] * row["ms_per_iteration"] / 1000,
                            row["batch"], rel_tol=0.02)
    assert {r["dtype"] for r in by_kind["train"]} == {"bfloat16", "float32"}
    # the first probe is the bfloat16 iteration the train item compiled: a cache hit
    probes = by_kind["memory_probe"]
    assert probes[0]["cache_hits"] >= 1 and probes[0]["fits"]
    assert {p["fits"] for p in probes} == {True, False}
    verdict = by_kind["max_batch"][0]
    assert verdict["largest_fitting"] == max(p["batch"] for p in probes if p["fits"])
    assert verdict["exact"]
    for kind, key in (("fid", "projected_50k_s"), ("ppl", "projected_100k_s")):
        (row,) = by_kind[kind]
        rate = row["images_per_s"] if kind == "fid" else row["pairs_per_s"]
        assert math.isclose(row[key], (50_000 if kind == "fid" else 100_000) / rate,
                            rel_tol=0.01)
    assert [r["batch"] for r in by_kind["projection"]] == [1, 4]
    assert [(r["resolution"], r["batch"]) for r in by_kind["phase_compile"]] == [(16, 4)]


def test_markdown_has_a_table_per_kind(smoke, capsys):
    out, rows = smoke
    text = bench_suite.markdown(rows)
    assert text.startswith("1 x cpu (cpu)") and "(smoke: tiny widths)" in text
    for title in ("Training iteration", "Batch search", "Largest bfloat16 batch",
                  "FID throughput", "PPL (ppl_wend) throughput", "Projection throughput",
                  "Compile time per phase program"):
        assert f"**{title}" in text
    train = [line for line in text.splitlines() if line.startswith("| 16 | 4 | bfloat16")]
    assert len(train) == 1 and train[0].count("|") == 11
    cli.main(["bench-suite", "--markdown", str(out)])
    assert capsys.readouterr().out == text


def test_budget_and_item_limit_leave_rows_and_go_on(tmp_path):
    """An item past its limit is killed with a timeout row; the next one still runs; items
    that no longer fit the budget are skipped, by name."""
    settings = bench_suite.Settings(smoke=True, cache_dir=str(tmp_path / "cache"),
                                    item_limit_s=6.0, budget_s=40.0)
    out = bench_suite.run_suite(settings, tmp_path / "s.jsonl",
                                ["train-16-b4-float32", "max-batch"], background=False)
    rows = bench_suite.read_rows(out)
    kinds = [(r["kind"], r.get("what")) for r in rows]
    assert kinds[0] == ("env", None) and kinds[-1] == ("done", None)
    assert ("timeout", "train-16-b4-float32") in kinds and ("timeout", "max-batch") in kinds
    assert rows[-1]["elapsed_s"] < 40
    short = bench_suite.Settings(smoke=True, cache_dir=str(tmp_path / "cache"), budget_s=1.0)
    rows = bench_suite.read_rows(bench_suite.run_suite(short, tmp_path / "t.jsonl",
                                                       ["fid", "ppl"]))
    skipped = [r["what"] for r in rows if r["kind"] == "skipped"]
    assert skipped == ["fid", "ppl"] or skipped == ["env", "fid", "ppl"], rows


def test_read_rows_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    writer = bench_suite.RowWriter(path, "x", time.time())
    writer.write({"kind": "train", "batch": 4})
    with open(path, "a") as f:
        f.write('{"kind": "fid", "ima')
    assert [r["kind"] for r in bench_suite.read_rows(path)] == ["train"]
    assert json.loads(path.read_text().splitlines()[0])["item"] == "x"


def _state(pid: int) -> str:
    """A process's state letter from /proc (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_quiet_stops_the_background_and_ledgers_the_pause(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ledger = tmp_path / "pauses"
    ctx = bench_suite.Context(bench_suite.Settings(), time.time() + 60, proc.pid, ledger)
    try:
        with ctx.quiet():
            time.sleep(0.3)
            assert _state(proc.pid) == "T"
        assert _state(proc.pid) != "T"
    finally:
        proc.kill()
        proc.wait()
    (a, b), = [map(float, line.split()) for line in ledger.read_text().splitlines()]
    assert 0.3 <= b - a < 5
    assert bench_suite.paused_seconds(ledger, a - 10, b + 10) == pytest.approx(b - a)
    assert bench_suite.paused_seconds(ledger, a + 0.1, b + 10) == pytest.approx(b - a - 0.1)
    assert bench_suite.paused_seconds(ledger, b + 1, b + 2) == 0


def _search(needed, limit, start=16, step=8, cap=1024, calls=None):
    probes = list(bench_suite.search_batches(needed, limit, start, step, cap,
                                             time_left=lambda: calls is None or calls.pop()))
    fits = [b for b, _, ok in probes if ok]
    return probes, max(fits) if fits else None


@pytest.mark.parametrize("needed", [lambda b: 3_000 + 700 * b,
                                    lambda b: 3_000 + 40 * b + 5 * b * b,
                                    lambda b: 10_000 + 100 * b])
def test_batch_search_finds_the_largest_fitting_multiple(needed):
    limit = 60_000
    truth = max(b for b in range(8, 1025, 8) if needed(b) <= limit)
    probes, largest = _search(needed, limit)
    assert largest == truth
    assert len(probes) <= 8
    assert all(b % 8 == 0 and ok == (n <= limit) for b, n, ok in probes)
    assert any(b == truth + 8 and not ok for b, _, ok in probes) or truth == 1024


def test_batch_search_ends_at_the_cap_halves_a_failing_start_and_stops_in_time():
    probes, largest = _search(lambda b: b, limit=10**9, cap=64)
    assert largest == 64 and [b for b, _, _ in probes] == [16, 32, 64]
    probes, largest = _search(lambda b: 100 * b, limit=900, start=32)
    assert [b for b, _, _ in probes] == [32, 16, 8] and largest == 8
    probes, largest = _search(lambda b: b, limit=10**9, calls=[False, True, True])
    assert len(probes) == 2


def test_phase_programs_of_config_f():
    """Official 8-GPU recipe: minibatch 256 at 8x8 down to 32 from 64x64 on (train.py)."""
    config = paper_config(1024)
    expected = [(8, 256), (16, 128), (32, 64), (64, 32), (128, 32), (256, 32), (512, 32),
                (1024, 32)]
    assert schedule.phase_programs(config, 1) == expected
    assert schedule.phase_programs(config, 8) == expected
    assert schedule.phase_programs(paper_config(256), 1)[-1] == (256, 32)


def test_item_names_and_cli_errors(capsys):
    names = bench_suite.item_names(bench_suite.Settings())
    assert names[:3] == ["env", "train-1024-b16-bfloat16", "train-1024-b16-float32"]
    assert names[-3:] == ["train-256-b32-bfloat16", "train-256-b32-float32", "phase-compile"]
    cli.main(["bench-suite", "--items=help"])
    assert capsys.readouterr().out.split() == names
    for argv, words in ((["--smoke"], "--out"), (["--out", "x.jsonl", "--items", "fid,fdi"],
                                                 "fdi"),
                        (["--markdown", "/nonexistent.jsonl"], "/nonexistent.jsonl")):
        with pytest.raises(SystemExit) as e:
            cli.main(["bench-suite", *argv])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("stylegan-jax bench-suite: error: ") and words in err


def test_the_suite_imports_without_what_the_accelerator_image_lacks():
    """The device image has jax, flax, optax and orbax but no tensorflow-datasets, grain or
    TensorFlow (and the suite needs no PyTorch): the suite and its CLI must import without
    them, or the one prepared call fails before its first row."""
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('tensorflow_datasets', 'grain', 'tensorflow',"
            " 'torch'):\n"
            "            raise ImportError(f'{name} is not on the accelerator image')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import stylegan_jax.bench_suite, stylegan_jax.cli.bench_suite\n"
            "from stylegan_jax import cli\n"
            "cli.main(['bench-suite', '--smoke', '--items=help'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == bench_suite.item_names(bench_suite.Settings(smoke=True))


def _accelerator_rows(devices: int, bf16_rate: float) -> list[dict]:
    env = {"kind": "env", "devices": devices, "device_kind": "NVIDIA H100 80GB HBM3",
           "platform": "gpu", "memory_limit_gib": 79.1, "jax": "0.11.0", "jaxlib": "0.11.0",
           "flax": "0.12.8", "python": "3.12.3", "XLA_FLAGS": "", "date": "d", "smoke": False}
    train = {"kind": "train", "item": "t", "resolution": 1024, "batch": 16 * devices,
             "dtype": "bfloat16", "images_per_s": bf16_rate}
    return [env, train,
            {**train, "dtype": "float32", "images_per_s": 1.0},
            {**train, "resolution": 256, "batch": 32 * devices, "images_per_s": 1.0},
            {"kind": "fid", "item": "fid", "resolution": 1024, "batch": 64,
             "projected_50k_s": 90.0},
            {"kind": "ppl", "item": "ppl", "resolution": 1024, "batch": 64,
             "projected_100k_s": 600.0}]


def test_markdown_says_how_far_each_target_is():
    """1024/b16 bf16 against 10x rosinality's 6.4 images/s, fid50k against 2 and ppl_wend
    against 5 minutes, on one GPU; nothing is compared for other resolutions or counts."""
    def targets(text):
        return text.split("**Against the targets**", 1)[1].strip().splitlines()[2:]

    rows = targets(bench_suite.markdown(_accelerator_rows(1, 80.0)))
    assert rows[0] == ("| 1024/b16 bfloat16 iteration, images/s | 80.0 | >= 64 (10x "
                       "rosinality's 6.4 on one H100) | 12.5x rosinality; met |")
    assert rows[1] == "| fid50k at 1024, projected s | 90.0 | < 120 s | met |"
    assert rows[2] == ("| ppl_wend (100k pairs) at 1024, projected s | 600.0 | < 300 s | "
                       "2.0x too slow |")
    assert len(rows) == 3
    short = targets(bench_suite.markdown(_accelerator_rows(1, 32.0)))[0]
    assert short.endswith("| 5.0x rosinality; 2.0x short |")
    eight = bench_suite.markdown(_accelerator_rows(8, 80.0))
    assert "the targets are for one GPU; these rows are from 8 devices" in eight
    smoke = bench_suite.markdown([{**r, "resolution": 16} for r in _accelerator_rows(1, 80.0)])
    assert "Against the targets" not in smoke
