"""tests/bench/floor.py (the kernel floor of a step) and compare.py's --floor plumbing.

Timings are not asserted (a machine may be slow or fast); what is: which layers
are timed, on which input shapes, with which gradients, that the im2col form is
the convolution, and that the floor is the sum of its layers.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

torch = pytest.importorskip("torch")

BENCH: Path = Path(__file__).resolve().parents[1] / "bench"

# The baseline's make_model, as ../shared/baselines/torch_ddp_baseline.py
# writes it (floor.py only needs that function).
BASELINE_LIKE = '''
import torch.nn as nn

def make_model(name):
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(),
                             nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    if name == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * 7 * 7, 1024), nn.ReLU(),
                             nn.Linear(1024, 10))
    raise SystemExit(f"unknown model {name!r}")
'''


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


floor = _load("floor")
compare = _load("compare")


@pytest.fixture()
def baseline(tmp_path: Path) -> str:
    p = tmp_path / "baseline.py"
    p.write_text(BASELINE_LIKE)
    return str(p)


def test_mlp_layers_shapes_and_gradients(baseline: str) -> None:
    net = floor.load_make_model(baseline)("mlp")
    layers = floor.layers_of(net, torch.zeros(8, 1, 28, 28))
    assert [tuple(layer.shape) for layer in layers] == [(8, 784), (8, 512), (8, 256)]
    # The data needs no gradient; every later layer's input does.
    assert [layer.input_grad for layer in layers] == [False, True, True]
    assert not any(floor.im2col_applies(layer) for layer in layers)


def test_cnn_first_convolution_may_be_im2col(baseline: str) -> None:
    layers = floor.layers_of(floor.load_make_model(baseline)("cnn"), torch.zeros(4, 1, 28, 28))
    assert [type(layer.module).__name__ for layer in layers] == ["Conv2d", "Conv2d", "Linear", "Linear"]
    assert [tuple(layer.shape) for layer in layers] == [(4, 1, 28, 28), (4, 32, 14, 14), (4, 3136), (4, 1024)]
    assert [floor.im2col_applies(layer) for layer in layers] == [True, False, False, False]


def test_im2col_is_the_convolution() -> None:
    torch.manual_seed(1)
    for c in (1, 3):
        conv = torch.nn.Conv2d(c, 8, 5, padding=2)
        x = torch.randn(2, c, 9, 7)
        got = floor.im2col_conv(x, conv).permute(0, 3, 1, 2)
        assert torch.allclose(got, conv(x), rtol=1e-5, atol=1e-5)


def test_floor_is_the_sum_of_its_layers(baseline: str) -> None:
    out = floor.floor(floor.load_make_model(baseline), "cnn", 2, torch.device("cpu"), reps=2, warmup=1)
    assert out["impl"] == "floor" and out["batch_per_rank"] == 2
    assert [r["kind"] for r in out["layers"]] == ["Conv2d", "Conv2d", "Linear", "Linear"]
    assert set(out["layers"][0]["ms_by_how"]) == {"module", "im2col"}
    for r in out["layers"]:
        assert r["ms"] > 0 and r["ms"] == min(r["ms_by_how"].values())
    assert out["step_ms"] == pytest.approx(sum(r["ms"] for r in out["layers"]))


def test_a_file_without_make_model_is_named(tmp_path: Path) -> None:
    p = tmp_path / "other.py"
    p.write_text("x = 1\n")
    with pytest.raises(SystemExit, match=str(p)):
        floor.load_make_model(str(p))


def test_the_floor_needs_no_loss_a_training_run_does() -> None:
    line = [sys.executable, "-c", 'print(\'{"impl": "floor", "step_ms": 1.5}\')']
    out, err = compare.run_one(line, {}, 60, trains=False)
    assert err == "" and out == {"impl": "floor", "step_ms": 1.5}
    out, err = compare.run_one(line, {}, 60)
    assert out is None and "non-finite final loss" in err
