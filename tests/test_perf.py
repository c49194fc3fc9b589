"""The iteration's cost analysis and the shape of its convolutions (no timings)."""

import re
from pathlib import Path

import pytest

from stylegan_jax import bench, cli
from stylegan_jax.config import paper_config

CONV = re.compile(
    r"stablehlo\.convolution.*?dim_numbers = \[([^\]]*)\]x\[([^\]]*)\]->\[([^\]]*)\]"
    r".*?lhs_dilate = \[([^\]]*)\].*?: \(tensor<([^>]*)>, tensor<([^>]*)>\) -> tensor<([^>]*)>")


def tiny_config(resolution=32, fused_scale="true", resample_impl="fused"):
    config = paper_config(resolution)
    config.G.update(dict(latent_size=8, dlatent_size=8, mapping_fmaps=8, mapping_layers=2,
                         fmap_base=64, fmap_max=8, fused_scale=fused_scale))
    config.D.update(dict(fmap_base=64, fmap_max=8, fused_scale=fused_scale))
    config.resample_impl = resample_impl
    return config


def _dims(shape: str) -> list[int]:
    return [int(d) for d in shape.split("x")[:-1]]


def convolutions(stablehlo: str) -> list[dict]:
    """Every convolution of a StableHLO module: lhs dilation and the spatial sizes of its
    input, window (rhs) and output, read through the dimension numbers."""
    convs = []
    for line in stablehlo.splitlines():
        m = CONV.search(line)
        if not m:
            continue
        labels = [part.split(", ") for part in m.group(1, 2, 3)]
        shapes = [_dims(s) for s in m.group(5, 6, 7)]
        spatial = [[shape[lab.index(d)] for d in ("0", "1")]
                   for lab, shape in zip(labels, shapes, strict=True)]
        convs.append(dict(lhs_dilate=[int(d) for d in m.group(4).split(", ")],
                          lhs=spatial[0], rhs=spatial[1], out=spatial[2], text=line.strip()))
    return convs


def zero_stuffed_kernel_convs(stablehlo: str) -> list[str]:
    """Convolutions over an lhs-dilated (zero-stuffed) input whose window is larger than their
    output: weight gradients of transposed convs (and R1's double backward through them),
    which XLA's GPU compiler cannot map to cuDNN's weight-gradient kernels."""
    return [c["text"] for c in convolutions(stablehlo)
            if any(d != 1 for d in c["lhs_dilate"])
            and any(r > o for r, o in zip(c["rhs"], c["out"], strict=True))]


@pytest.fixture(scope="module")
def lowered_texts():
    texts = {}
    for impl in ("fused", "reference"):
        lowered = bench.lower_iteration(tiny_config(resample_impl=impl), 32, 8)
        texts[impl] = lowered.as_text()
    return texts


def test_no_gradient_convolves_a_zero_stuffed_input(lowered_texts):
    convs = convolutions(lowered_texts["fused"])
    assert len(convs) > 50  # the parser sees the iteration's convolutions (fwd, bwd, R1)
    assert zero_stuffed_kernel_convs(lowered_texts["fused"]) == []
    # positive control: the literal official ops have them (the weight gradients of G's
    # transposed up-convs in the G step, and R1's double backward through D's strided convs,
    # one per resampling layer: 3 + 3 at 32x32)
    assert len(zero_stuffed_kernel_convs(lowered_texts["reference"])) == 6


def test_cost_analysis_counts_fused_resampling_as_cheaper():
    fused = bench.iteration_cost(tiny_config(fused_scale="true"), 32, 8)
    unfused = bench.iteration_cost(tiny_config(fused_scale="false",
                                               resample_impl="reference"), 32, 8)
    assert fused.flops > 0 and fused.bytes_accessed > 0
    assert fused.flops < unfused.flops  # resampling convs do their work at low resolution
    assert f"{fused.flops / 8 / 1e9:,.1f} GFLOP/image" in str(fused)


@pytest.fixture
def tiny_config_file(tmp_path):
    cfg = tmp_path / "tiny.py"
    cfg.write_text(f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                   "from test_perf import tiny_config\n\n"
                   "def get_config():\n    return tiny_config(16)\n")
    return cfg


def test_bench_train_cost_only_prints_without_running(tiny_config_file, capsys):
    cli.main(["bench-train", "--config", str(tiny_config_file), "--batch", "8", "--cost_only"])
    out = capsys.readouterr().out
    assert "GFLOP/image" in out and "GB accessed/image" in out and "images/s" not in out


def test_bench_train_compile_only_reports_the_program_without_running(tiny_config_file,
                                                                      capsys):
    cli.main(["bench-train", "--config", str(tiny_config_file), "--batch", "8",
              "--compile_only"])
    out = capsys.readouterr().out
    found = re.search(r"lower ([\d.]+) s, compile ([\d.]+) s; StableHLO ([\d,]+) chars / "
                      r"([\d,]+) lines, ([\d,]+) optimised HLO instructions, needs ([\d.]+) GiB",
                      out)
    assert found and "images/s" not in out, out
    chars, lines, instructions = (int(found[i].replace(",", "")) for i in (3, 4, 5))
    assert float(found[2]) > 0 and chars > 40 * lines > 0 and instructions > 100, out


def test_r1_gamma_zero_takes_the_penalty_out_of_the_iteration():
    """No input gradient and no double backward: the cost analysis drops by R1's share."""
    with_r1, without = tiny_config(16), tiny_config(16)
    without.loss.r1_gamma = 0.0
    flops = {name: bench.iteration_cost(config, 16, 8).flops
             for name, config in (("r1", with_r1), ("none", without))}
    assert flops["none"] < 0.9 * flops["r1"]  # 0.81 at this size
    hlo = bench.lower_iteration(without, 16, 8).as_text()
    assert len(convolutions(hlo)) < len(convolutions(bench.lower_iteration(with_r1, 16, 8)
                                                     .as_text()))
