"""Reference implementations for parity tests: PyTorch, torchvision, pytorch-fid and lpips
(test-only dependencies; the tests that need them skip when they are missing).

PyPI's torchvision wheels link CUDA builds of torch; beside the CPU torch used here their C
extension does not load (the models do not need it), and only the two ops that torchvision
registers unconditionally at import must exist. We define their schemas before importing it.
"""

import pytest


@pytest.fixture(scope="session")
def torch_refs():
    """``(torch, torchvision, pytorch_fid.inception, lpips)``; skips if any is missing."""
    torch = pytest.importorskip("torch")
    try:
        import torchvision
    except RuntimeError:  # "operator torchvision::nms does not exist"
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
        torch_refs.torchvision_ops = lib  # keep the definitions alive
        import torchvision
    pfi = pytest.importorskip("pytorch_fid.inception")
    lpips = pytest.importorskip("lpips")
    torch.manual_seed(0)
    return torch, torchvision, pfi, lpips
