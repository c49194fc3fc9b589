"""Run logs: a run that restarts from a checkpoint drops what it logged past it."""

import json

from stylegan_jax.logs import RunWriter


def test_restart_drops_records_past_the_restored_position_and_torn_lines(tmp_path):
    lines = [json.dumps({"nimg": n, "loss/G": 1.0}) for n in (32, 64, 96, 128)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"nimg": 16')  # torn write
    writer = RunWriter(tmp_path, resume_nimg=64)
    writer.scalars(96, {"loss/G": 2.0})
    writer.close()
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["nimg"], r["loss/G"]) for r in records] == [(32, 1.0), (64, 1.0), (96, 2.0)]


def test_a_fresh_start_over_an_unsaved_run_keeps_no_old_records(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"nimg": 32}) + "\n")
    RunWriter(tmp_path, resume_nimg=0).close()
    assert (tmp_path / "metrics.jsonl").read_text() == ""
