"""Noise estimators: re-smoothing reproduces the writer, the windowed fit recovers known truths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import (
    EMA_BETA,
    SINGLE_SPEC,
    STUDY_SPECS,
    TRAIN_SIZE,
    TRSIGMA_TRUE,
    g2_true,
    raw_norms,
    reference_estimates,
    write_run_file,
)

from batchscope_analysis.load import Run, Status, load_run, load_study
from batchscope_analysis.noise import (
    b_simple_summary,
    finite_population_factor,
    fit_noise,
    per_step_estimates,
    raw_noise,
    resmooth,
)


def test_finite_population_factor() -> None:
    x = finite_population_factor(np.array([1.0, 60000.0, 8192.0]), 60000)
    assert x[0] == pytest.approx(1.0)  # one sample: the full per-sample variance
    assert x[1] == 0.0  # the whole set: no sampling noise left
    # docs/metrics.md: at B = 8192 of N = 60000, x is 14 % below 1/B.
    assert x[2] * 8192 == pytest.approx(0.8635, abs=1e-3)
    np.testing.assert_allclose(finite_population_factor(np.array([4.0]), 0), [0.25])


@pytest.mark.parametrize("name", [s.name for s in STUDY_SPECS])
def test_resmooth_reproduces_stored_gns(study_dir: Path, name: str) -> None:
    run = load_run(study_dir / "runs" / f"{name}.h5")
    again = resmooth(run)
    for column in ("g2_est", "trsigma_est", "b_simple"):
        stored = run.gns[column].to_numpy(dtype=float)
        assert np.isfinite(stored).sum() >= len(stored) - 1, column  # the comparison is not vacuous
        np.testing.assert_allclose(again[column].to_numpy(), stored, rtol=1e-12, atol=0, equal_nan=True,
                                   err_msg=f"{name}: {column}")
    np.testing.assert_array_equal(again["step"], run.train["step"])


def test_resmooth_skips_non_finite_step(study_dir: Path) -> None:
    run = load_run(study_dir / "runs" / "b128-s1.h5")  # NaN global norm at row 7
    smooth = resmooth(run)
    assert np.isnan(smooth["g2_est"][7]) and np.isnan(smooth["b_simple"][7])
    # The EMAs skip the step rather than turning NaN for good.
    assert np.isfinite(smooth["b_simple"][8:]).all()
    # Skipping is not zero-filling: the step after the gap continues the EMA.
    raw = raw_noise(run)
    g2, tr = per_step_estimates(raw)
    keep = np.isfinite(g2)
    _g2, _tr, expected = reference_estimates(tuple(run.batch_micro), raw.s_micro[keep], raw.s_global[keep],
                                             TRAIN_SIZE, EMA_BETA)
    np.testing.assert_allclose(smooth["b_simple"][keep], expected, rtol=1e-12)


def test_resmooth_other_beta(study_dir: Path) -> None:
    run = load_run(study_dir / "runs" / "b64-s0.h5")
    stored = run.gns["b_simple"].to_numpy()
    # beta = 0: no smoothing, the ratio of the per-step estimates.
    raw = resmooth(run, beta=0.0)
    np.testing.assert_allclose(raw["b_simple"], raw["trsigma_est"] / raw["g2_est"], rtol=1e-12)
    # A different factor gives a different curve from the same raw norms.
    slow = resmooth(run, beta=0.99)
    assert not np.allclose(slow["b_simple"], stored, rtol=1e-3)
    np.testing.assert_allclose(slow["g2_est"], run.gns["g2_est"], rtol=1e-12)
    with pytest.raises(ValueError):
        resmooth(run, beta=1.0)


def test_single_small_batch_gives_nan(tmp_path: Path) -> None:
    run = load_run(write_run_file(tmp_path / "single.h5", SINGLE_SPEC))
    smooth = resmooth(run)
    assert smooth[["g2_est", "trsigma_est", "b_simple"]].isna().all().all()
    assert run.gns["b_simple"].isna().all()
    fit = fit_noise(run, 10)
    assert len(fit) and fit["g2"].isna().all()
    per_batch, overall = b_simple_summary([run])
    assert per_batch.empty and np.isnan(overall)


def _memory_run(s_micro: np.ndarray, s_global: np.ndarray, batch_micro: tuple[int, ...]) -> Run:
    """A Run built in memory from raw norms, for fits against a known truth."""
    steps = np.arange(1, len(s_global) + 1)
    big = sum(batch_micro)
    train = pd.DataFrame({"step": steps, "samples": steps * big, "loss": np.linspace(2.0, 0.5, len(steps))})
    gns = pd.DataFrame({"step": steps, "sqnorm_global": s_global,
                        **{f"sqnorm_micro_{k}": s_micro[:, k] for k in range(len(batch_micro))}})
    attrs = {"run": "memory", "global_batch": big, "ranks": 2, "microbatches": len(batch_micro) // 2,
             "base_lr": 0.1, "seed": 0, "ema_beta": 0.9}
    layout = {"batch_micro": np.array(batch_micro), "train_size": TRAIN_SIZE}
    return Run(path=Path("memory.h5"), attrs=attrs, layout=layout, status=Status("completed", len(steps)),
               train=train, gns=gns, eval=pd.DataFrame())


G2, TRSIGMA = 0.5, 20.0
MICRO: tuple[int, ...] = (16, 16, 32, 32)  # two ranks (32, 64) x two micro-batches: B = 96


def _noisy_run(steps: int, noise: float, seed: int) -> Run:
    rng = np.random.default_rng(seed)
    x_micro = finite_population_factor(np.array(MICRO, dtype=float), TRAIN_SIZE)
    x_big = finite_population_factor(np.array([float(sum(MICRO))]), TRAIN_SIZE)[0]
    s_micro = (G2 + TRSIGMA * x_micro)[None, :] * (1 + noise * rng.standard_normal((steps, len(MICRO))))
    s_global = (G2 + TRSIGMA * x_big) * (1 + noise * rng.standard_normal(steps))
    return _memory_run(s_micro, s_global, MICRO)


def test_fit_noise_recovers_truth_and_covers_it() -> None:
    run = _noisy_run(steps=600, noise=0.05, seed=11)
    fit = fit_noise(run, window=60)
    assert len(fit) == 10
    assert fit["steps_used"].tolist() == [60] * 10
    # Stated tolerance per 60-step window at 5 % norm noise: |G|^2 within 5 %,
    # tr(Sigma) within 3 %, B_noise within 8 % (observed: about 2 %, 1.5 %, 3 %).
    np.testing.assert_allclose(fit["g2"], G2, rtol=0.05)
    np.testing.assert_allclose(fit["trsigma"], TRSIGMA, rtol=0.03)
    np.testing.assert_allclose(fit["b_noise"], TRSIGMA / G2, rtol=0.08)
    # 90 % intervals: most windows cover the truth, and the intervals are tight.
    for name, truth in (("g2", G2), ("trsigma", TRSIGMA), ("b_noise", TRSIGMA / G2)):
        lo, hi = fit[f"{name}_lo"].to_numpy(), fit[f"{name}_hi"].to_numpy()
        assert np.all(lo <= fit[name]) and np.all(fit[name] <= hi), name
        covered = int(np.sum((lo <= truth) & (truth <= hi)))
        assert covered >= 7, f"{name}: only {covered} of 10 intervals contain the truth"
        assert np.all(hi - lo < 0.1 * truth), name
    # One window over all steps: tighter, and it contains the truth.
    whole = fit_noise(run, window=600).iloc[0]
    assert whole["g2_lo"] <= G2 <= whole["g2_hi"]
    assert whole["trsigma_lo"] <= TRSIGMA <= whole["trsigma_hi"]
    assert whole["trsigma"] == pytest.approx(TRSIGMA, rel=0.02)


def test_fit_noise_is_reproducible_and_seeded() -> None:
    run = _noisy_run(steps=200, noise=0.05, seed=3)
    a, b = fit_noise(run, 50), fit_noise(run, 50)
    pd.testing.assert_frame_equal(a, b)
    c = fit_noise(run, 50, seed=1)
    np.testing.assert_array_equal(a["g2"], c["g2"])  # the fit itself does not depend on the seed
    assert not np.array_equal(a["g2_lo"], c["g2_lo"])


def test_fit_noise_windows_and_columns() -> None:
    run = _noisy_run(steps=130, noise=0.05, seed=5)
    fit = fit_noise(run, 50)
    # 50 + 50 + a remainder of 30 (>= half a window, kept).
    assert fit["step_first"].tolist() == [1, 51, 101]
    assert fit["step_last"].tolist() == [50, 100, 130]
    assert fit["step_mid"].tolist() == [25.5, 75.5, 115.5]
    np.testing.assert_allclose(fit["samples_mid"], fit["step_mid"] * sum(MICRO))
    np.testing.assert_allclose(fit["train_loss_mid"].iloc[0], run.train["loss"][:50].mean())
    # A remainder under half a window is dropped.
    assert len(fit_noise(run, 60)) == 2
    with pytest.raises(ValueError):
        fit_noise(run, 0)


@pytest.mark.parametrize("name", ["b64-s0", "b256-s0"])
def test_one_step_windows_equal_per_step_estimator(study_dir: Path, name: str) -> None:
    # With equal micro-batches the weighted fit through one step's points is
    # the line through (x_small, s_bar) and (x(B), S): the writer's estimator.
    run = load_run(study_dir / "runs" / f"{name}.h5")
    assert len(set(run.batch_micro.tolist())) == 1
    fit = fit_noise(run, window=1, n_boot=0)
    np.testing.assert_allclose(fit["g2"], run.gns["g2_est"], rtol=1e-7)
    np.testing.assert_allclose(fit["trsigma"], run.gns["trsigma_est"], rtol=1e-7)


def test_fit_noise_on_study_run_tracks_truth(study_dir: Path) -> None:
    run = load_run(study_dir / "runs" / "b32-s0.h5")
    fit = fit_noise(run, window=32)
    assert fit["trsigma"].to_numpy() == pytest.approx(TRSIGMA_TRUE, rel=0.15)
    truth = g2_true(fit["samples_mid"].to_numpy())
    np.testing.assert_allclose(fit["g2"], truth, rtol=0.35)


def test_b_simple_summary(study_dir: Path) -> None:
    runs = load_study(study_dir)
    per_batch, overall = b_simple_summary(runs)
    assert per_batch["global_batch"].tolist() == [32, 64, 128, 256]
    # The live run is left out while finished runs exist.
    assert per_batch.set_index("global_batch")["runs"].to_dict() == {32: 2, 64: 2, 128: 2, 256: 2}
    medians = []
    for run in runs:
        if run.status.name != "completed":
            continue
        _local, micro, glob = raw_norms(next(s for s in STUDY_SPECS if s.name == run.name))
        _g2, _tr, b = reference_estimates(tuple(run.batch_micro), micro, glob, TRAIN_SIZE, EMA_BETA)
        steps = np.arange(1, len(b) + 1)
        late = np.isfinite(b) & (steps > steps[-1] / 2)
        medians.append(np.median(b[late]))
    assert overall == pytest.approx(float(np.median(medians)))
