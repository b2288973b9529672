"""Sharpness against batch size (sharpness.py): known-truth studies where final sharpness grows,
shrinks or does not move with the batch, too few batches, runs without a final sharpness, studies
without sharpness; the answer, answers.json's sharpness_trend, the figures and a file round trip.

Truth: a run's final sharpness is SHARP_AT_32 * (B / 32)^alpha times a per-seed factor
exp(N(0, sd)), reached at its last evaluation (sharpness rises linearly in samples to it). The
in-memory runs come from tuning_runs (each batch's best lr known; the gap grows with the batch).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from synthetic_runs import STUDY_SPECS, RunSpec, sharpness_curve, write_run_file, write_study
from test_plots import assert_readable
from tuning_runs import best_lr, sweep

from batchscope_analysis.answers import _plain, compute_answers
from batchscope_analysis.cli import main
from batchscope_analysis.findings import compute_findings
from batchscope_analysis.load import Run, load_run, load_study
from batchscope_analysis.plots import (
    SHARPNESS_BATCH_FIGURE, SHARPNESS_SAMPLES_FIGURE, build_figures, figure_note, sharpness_batch_figure,
    sharpness_samples_figure,
)
from batchscope_analysis.sharpness import (
    FLATTER, NEGATIVE, NO_CLEAR_TREND, NOT_MEASURED, POSITIVE, SHARPER, TOO_FEW_BATCHES, TOO_FEW_RUNS, factor_texts,
    sharpness_answers, sharpness_study, sharpness_text, spearman_interval,
)

SHARP_AT_32: float = 10.0
# Sharpness at an lr other than the batch's best: far off the truth, so a wrong choice of runs shows.
OTHER_LR_SHARPNESS: float = 1000.0
BATCHES: tuple[int, ...] = (32, 64, 128, 256)


def truth(batch: int, alpha: float) -> float:
    return SHARP_AT_32 * (batch / 32) ** alpha


def with_sharpness(run: Run, final: float, every: int = 1) -> Run:
    """`run` with /eval/sharpness rising to `final` at its last evaluation, measured every `every`-th."""
    evals = run.eval.copy()
    x = evals["samples"].to_numpy(dtype=float)
    values = final * (0.4 + 0.6 * x / x[-1])
    values[np.arange(len(x)) % every != 0] = np.nan
    evals["sharpness"] = values
    evals["sharpness_iterations"] = np.where(np.isfinite(values), 10, 0).astype(np.int32)
    evals["sharpness_residual"] = np.where(np.isfinite(values), 1e-3, np.nan)
    return dataclasses.replace(run, eval=evals)


def answers(runs: list[Run]) -> dict:
    """answers.json's sharpness part, JSON-clean (compute_answers needs run files' noise data)."""
    return json.loads(json.dumps(_plain(sharpness_answers(runs)), allow_nan=False))


def study(alpha: float, sd: float, *, batches: Sequence[int] = BATCHES, seeds: int = 3, rng_seed: int = 1,
          lrs: int = 3, nan_runs: Sequence[str] = (), diverged: Sequence[tuple[int, float, int]] = ()) -> list[Run]:
    """Each batch at lrs around its best (the middle one is best); the best lr's runs end at
    truth(batch, alpha) x exp(N(0, sd)), the others at OTHER_LR_SHARPNESS; `nan_runs` measure nothing."""
    rng = np.random.default_rng(rng_seed)
    grid = {b: [best_lr(b) * 2.0 ** k for k in range(-(lrs // 2), lrs // 2 + 1)][:lrs] for b in batches}
    runs = sweep(grid, seeds, diverged=diverged)
    out = []
    for run in runs:
        at_best = math.isclose(float(run.attrs["base_lr"]), best_lr(run.global_batch))
        final = truth(run.global_batch, alpha) * math.exp(rng.normal(0.0, sd)) if at_best else OTHER_LR_SHARPNESS
        out.append(with_sharpness(run, math.nan if run.name in nan_runs else final))
    return out


def test_larger_batches_ended_sharper() -> None:
    s = sharpness_study(study(alpha=0.5, sd=0.1))
    assert s.verdict == SHARPER
    assert 0.0 < s.slope.low < 0.5 < s.slope.high
    assert s.interval_from == "seeds"
    # Only each batch's best lr: 4 batches x 3 seeds, medians near the truth (not OTHER_LR_SHARPNESS).
    assert len(s.per_run) == 12 and s.batches == list(BATCHES)
    for b, median in s.median_per_batch.items():
        assert median == pytest.approx(truth(b, 0.5), rel=0.25)
    # The gap grows with the batch in tuning_runs, as sharpness does here.
    assert s.correlation_verdict == POSITIVE and s.correlation.low > 0
    text = sharpness_text(s, "grows")
    # Three figures: at two, the interval (×1.37 to ×1.45) would read ×1.4 to ×1.4.
    assert text.startswith("Larger batches ended sharper on this problem: ×1.41 per doubling of the batch")
    assert "90 % interval" in text and "seeds resampled within each batch" in text
    assert "in line with the sharpness trend" in text


def test_larger_batches_ended_flatter() -> None:
    s = sharpness_study(study(alpha=-0.5, sd=0.1))
    assert s.verdict == FLATTER
    assert s.slope.low < -0.5 < s.slope.high < 0.0
    assert s.correlation_verdict == NEGATIVE
    text = sharpness_text(s, "grows")
    assert text.startswith("Larger batches ended flatter on this problem")
    assert "runs that ended sharper had smaller gaps" in text and "not in step with the sharpness trend" in text


def test_noisy_flat_sharpness_has_no_clear_trend() -> None:
    s = sharpness_study(study(alpha=0.0, sd=0.6, rng_seed=3))
    assert s.verdict == NO_CLEAR_TREND
    assert s.slope.low < 0.0 < s.slope.high
    assert sharpness_text(s).startswith("No clear trend of final sharpness with batch size")
    # Reproducible: the bootstrap is seeded.
    again = sharpness_study(study(alpha=0.0, sd=0.6, rng_seed=3))
    assert (again.slope.low, again.slope.high) == (s.slope.low, s.slope.high)


def test_one_seed_uses_the_t_interval_across_batches() -> None:
    runs = study(alpha=0.5, sd=0.02, batches=(16, 32, 64, 128, 256), seeds=1)
    s = sharpness_study(runs)
    assert s.interval_from == "batches" and s.verdict == SHARPER
    assert s.slope.low < 0.5 < s.slope.high
    assert any("one seed per batch" in w for w in s.warnings)


def test_too_few_batches_gives_no_slope() -> None:
    runs = study(alpha=0.5, sd=0.1, batches=(32, 64))
    s = sharpness_study(runs)
    assert s.verdict == TOO_FEW_BATCHES and not math.isfinite(s.slope.value)
    assert sorted(s.median_per_batch) == [32, 64]
    assert "Too few batch sizes to tell" in sharpness_text(s)
    data = answers(runs)["sharpness_trend"]
    assert data["verdict"] == TOO_FEW_BATCHES and data["slope"] is None and data["low"] is None
    assert data["n_batches"] == 2 and set(data["median_per_batch"]) == {"32", "64"}
    assert any("whether larger batches end sharper is not told" in w for w in answers(runs)["warnings"])


def test_runs_without_a_final_sharpness_and_diverged_runs_are_left_out_and_counted() -> None:
    lr = best_lr(64)
    nan_runs = [f"b32-lr{best_lr(32):g}-s0", f"b128-lr{best_lr(128):g}-s2"]
    runs = study(alpha=0.5, sd=0.1, nan_runs=nan_runs, diverged=[(64, lr * 2, 0)])
    s = sharpness_study(runs)
    assert s.left_out == {"diverged": 1, "no finite final sharpness": 2}
    assert len(s.per_run) == 10 and not {r.run for r in s.per_run} & set(nan_runs)
    assert s.verdict == SHARPER
    assert "(3 runs left out: 1 diverged, 2 no finite final sharpness.)" in sharpness_text(s)
    data = answers(runs)
    assert data["sharpness_trend"]["left_out"] == {"diverged": 1, "no finite final sharpness": 2}
    assert "Sharpness trend: 3 runs left out (1 diverged, 2 no finite final sharpness)." in data["warnings"]


def test_final_sharpness_is_the_last_measured_value() -> None:
    # Measured every 3rd evaluation: the last finite one counts, with the gap at that evaluation.
    runs = [with_sharpness(r, truth(r.global_batch, 0.5), every=3) for r in study(0.5, 0.0, lrs=1)]
    s = sharpness_study(runs)
    for r in s.per_run:
        run = next(x for x in runs if x.name == r.run)
        measured = run.eval[np.isfinite(run.eval["sharpness"])]
        assert r.sharpness == measured["sharpness"].iloc[-1] and r.samples == measured["samples"].iloc[-1]
        row = measured.iloc[-1]
        assert r.gap == pytest.approx(row["train_acc"] - row["val_acc"])


def test_one_lr_per_batch_uses_every_run() -> None:
    s = sharpness_study(study(alpha=0.5, sd=0.1, lrs=1))
    assert len(s.per_run) == 12 and s.verdict == SHARPER


def test_study_without_sharpness_answers_not_measured(study_dir: Path) -> None:
    # Version-2 files (the synthetic study) and version-3 runs that measured nothing alike.
    for runs in (load_study(study_dir), [with_sharpness(r, math.nan) for r in study(0.5, 0.1)]):
        s = sharpness_study(runs)
        assert not s.measured and s.reason == NOT_MEASURED
        assert answers(runs) == {"sharpness_trend": None, "sharpness_trend_reason": NOT_MEASURED, "warnings": []}
    data = compute_answers(load_study(study_dir))
    assert data["sharpness_trend"] is None and data["sharpness_trend_reason"] == NOT_MEASURED
    assert not any("harpness" in w for w in data["warnings"])
    findings = compute_findings(load_study(study_dir))
    answer = next(a for a in findings.answers if a.topic == "Sharpness")
    assert answer.text == f"Not measured: {NOT_MEASURED}."
    figures = build_figures(load_study(study_dir))
    for name in (SHARPNESS_SAMPLES_FIGURE, SHARPNESS_BATCH_FIGURE):
        assert figure_note(figures[name]) == f"no data: {NOT_MEASURED}"


def test_factor_texts_keep_value_and_interval_apart() -> None:
    from batchscope_analysis.intervals import Interval

    assert factor_texts(Interval(1.41, 1.37, 1.45)) == ("×1.41", "×1.37", "×1.45")
    assert factor_texts(Interval(1.4, 0.6, 3.2)) == ("×1.4", "×0.6", "×3.2")


def test_spearman_interval() -> None:
    rising = spearman_interval([1, 2, 3, 4, 5, 6], [0.1, 0.2, 0.25, 0.3, 0.5, 0.9])
    assert rising.value == 1.0
    few = spearman_interval([1, 2, 3, 4], [1, 2, 3, 4])
    assert not few.has_interval and "needs 5" in few.reason
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    noisy = spearman_interval(list(x), list(x + rng.normal(size=40)))
    assert 0.0 < noisy.low < noisy.value < noisy.high < 1.0
    unrelated = spearman_interval(list(x), list(rng.normal(size=40)))
    assert unrelated.low < 0.0 < unrelated.high


def test_too_few_runs_for_a_correlation() -> None:
    s = sharpness_study(study(alpha=0.5, sd=0.05, batches=(32, 64, 128, 256), seeds=1, lrs=1))
    assert s.correlation_verdict == TOO_FEW_RUNS
    assert "no correlation (4 runs with a final sharpness and a gap; a correlation needs 5)" in sharpness_text(s)


def test_sharpness_figures_draw_best_lr_runs_and_the_fit() -> None:
    runs = study(alpha=0.5, sd=0.1)
    s = sharpness_study(runs)
    fig = sharpness_batch_figure(runs, sharp=s)
    assert figure_note(fig) is None
    assert_readable(fig, SHARPNESS_BATCH_FIGURE)
    texts = "\n".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))
    assert "per doubling of B, 90 % interval" in texts and "(sharper)" in texts and "Spearman ρ" in texts
    ax = fig.axes[0]
    # Seed points at each batch's best lr; other lrs only as faint median lines (at OTHER_LR_SHARPNESS).
    points = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
    assert len(points) == 12 and points.max() < OTHER_LR_SHARPNESS / 10
    faint = [line for line in ax.get_lines() if line.get_alpha() is not None and line.get_alpha() < 0.5]
    assert faint and all(np.allclose(line.get_ydata(), OTHER_LR_SHARPNESS) for line in faint)
    per_run = sharpness_samples_figure(runs)
    assert figure_note(per_run) is None
    assert_readable(per_run, SHARPNESS_SAMPLES_FIGURE)


def _sharp_specs(alpha: float, every: int = 1) -> tuple[RunSpec, ...]:
    """The synthetic study (completed runs) with final sharpness truth(B, alpha) x (1 + 0.05 seed)."""
    return tuple(dataclasses.replace(s, sharpness=truth(s.global_batch, alpha) * (1 + 0.05 * s.seed),
                                     sharpness_every=every)
                 for s in STUDY_SPECS)


def test_file_round_trip_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_study(tmp_path / "study", _sharp_specs(0.5, every=2))
    out = tmp_path / "report" / "report.html"
    assert main(["report", str(root), "--out", str(out)]) == 0
    capsys.readouterr()
    page = out.read_text(encoding="utf-8")
    assert "<dt>Sharpness</dt><dd>Larger batches ended sharper on this problem" in page
    for name in (SHARPNESS_SAMPLES_FIGURE, SHARPNESS_BATCH_FIGURE):
        assert f'<figure id="{Path(name).stem}">' in page
        assert b"no data" not in (out.parent / "figures" / name).read_bytes()
    trend = json.loads((out.parent / "answers.json").read_text(encoding="utf-8"))["sharpness_trend"]
    assert trend["verdict"] == SHARPER and trend["low"] > 0
    assert trend["n_runs"] == 8 and trend["n_batches"] == 4
    # The live run is left out; each batch's median is its two seeds' mean of the last measured value
    # (every 2nd evaluation: not always the last one).
    assert trend["left_out"] == {"status running": 1}
    for b in BATCHES:
        finals = []
        for spec in _sharp_specs(0.5, every=2):
            if spec.global_batch == b and spec.status == "completed":
                values = sharpness_curve(spec, np.array(spec.eval_steps(), dtype=float) * b)
                finals.append(values[np.isfinite(values)][-1])
        assert len(finals) == 2 and trend["median_per_batch"][str(b)] == pytest.approx(float(np.mean(finals)))
    assert trend["gap_correlation"]["method"] == "spearman" and trend["gap_correlation"]["verdict"] == POSITIVE


def test_a_v3_file_without_sharpness_reads_as_not_measured(tmp_path: Path) -> None:
    spec = dataclasses.replace(STUDY_SPECS[0], sharpness=1.0)
    path = write_run_file(tmp_path / "r.h5", spec)
    import h5py

    with h5py.File(path, "r+") as f:
        f["eval/sharpness"][...] = np.nan
    run = load_run(path)
    assert run.eval["sharpness"].isna().all()
    assert not sharpness_study([run]).measured



def test_a_run_that_did_not_learn_is_dashed_and_out_of_the_limits() -> None:
    """A completed run whose validation score never moved (generalization's stalled run) and whose
    sharpness collapsed to 0.01 is drawn dashed, like a diverged run, and does not stretch the y axis."""
    runs = study(alpha=0.5, sd=0.1)
    stuck = runs[0]
    evals = stuck.eval.copy()
    for col in ("val_acc", "val_loss", "train_acc", "train_loss"):
        if col in evals:
            evals[col] = float(evals[col].iloc[0])
    evals["sharpness"] = np.where(np.arange(len(evals)) == 0, evals["sharpness"].iloc[0], 0.01)
    runs[0] = dataclasses.replace(stuck, eval=evals)
    fig = sharpness_samples_figure(runs)
    ax = fig.axes[0]
    assert min(ax.get_ylim()) > 0.1, ax.get_ylim()
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and np.nanmin(dashed[0].get_ydata()) == pytest.approx(0.01)
