"""The CLI side: metric names and the JSON-lines results."""

import json

import pytest

from stylegan_jax.metrics import run


def test_metric_names():
    run.check_names(["fid50k", "fid1k", "ppl_zfull", "ppl_wend", "ls"])
    with pytest.raises(ValueError, match="ppl_zfull"):
        run.check_names(["fid50k", "ppl_full", "is50k"])


def test_results_append_as_json_lines(tmp_path):
    run.write_results(tmp_path, 1000, {"fid50k": 12.5})
    run.write_results(tmp_path, 1000, {"ls_z": 3.0, "ls_w": 2.0})
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["nimg"] for x in lines] == [1000, 1000]
    assert lines[0]["fid50k"] == 12.5 and lines[1]["ls_w"] == 2.0
