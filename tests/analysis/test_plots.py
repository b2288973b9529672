"""Figures are written as real PNGs (and PDF, SVG), readable, and the seed aggregation behind them is right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from xml.etree import ElementTree

from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from synthetic_runs import SINGLE_SPEC, TRAIN_SIZE, RunSpec, val_acc, write_run_file

from batchscope_analysis.generalization import final_by_batch
from batchscope_analysis.load import load_run, load_study, runs_table
from batchscope_analysis.plots import (
    ALL_FIGURES,
    FINAL_FIGURE,
    build_figures,
    parse_formats,
    plot_all,
    plot_b_simple_vs_loss,
    plot_b_simple_vs_samples,
    plot_examples_to_target,
    plot_final_vs_batch,
    plot_loss_vs_samples,
    plot_noise_fit,
    plot_steps_to_target,
)
from batchscope_analysis.target import Target

PNG_MAGIC: bytes = b"\x89PNG\r\n\x1a\n"


def _assert_real_png(path: Path) -> None:
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 600
    # A figure with drawn content is not one flat colour.
    assert np.ptp(image[..., :3]) > 0.5


def test_loss_vs_samples_png(study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "figs"
    paths = plot_loss_vs_samples(load_study(study_dir), out)
    assert paths == [out / "loss_vs_samples.png"]
    _assert_real_png(paths[0])


def test_final_vs_batch_png(study_dir: Path, tmp_path: Path) -> None:
    paths = plot_final_vs_batch(load_study(study_dir), tmp_path)
    assert paths == [tmp_path / "final_vs_batch.png"]
    _assert_real_png(paths[0])


def test_final_vs_batch_without_finished_runs_still_writes(study_dir: Path, tmp_path: Path) -> None:
    live = [r for r in load_study(study_dir) if r.status.name == "running"]
    assert len(live) == 1
    _assert_real_png(plot_final_vs_batch(live, tmp_path)[0])


def test_final_by_batch_aggregates_seeds_and_skips_live(study_dir: Path, specs: dict[str, RunSpec]) -> None:
    table = runs_table(load_study(study_dir))
    stats = final_by_batch(table)
    # The live run (base lr 0.05) is left out; 4 batches at lr 0.1 remain.
    assert stats["base_lr"].tolist() == [0.1] * 4
    assert stats["global_batch"].tolist() == [32, 64, 128, 256]
    assert stats["seeds"].tolist() == [2] * 4
    b64 = table[(table["global_batch"] == 64) & (table["status"] == "completed")]
    row = stats[stats["global_batch"] == 64].iloc[0]
    assert row["val_acc_mean"] == pytest.approx(b64["final_val_acc"].mean())
    assert row["val_acc_min"] == pytest.approx(b64["final_val_acc"].min())
    assert row["val_acc_max"] == pytest.approx(b64["final_val_acc"].max())
    spread = [float(val_acc(specs[f"b64-s{seed}"], 4.0 * TRAIN_SIZE)) for seed in (0, 1)]
    assert row["val_acc_max"] - row["val_acc_min"] == pytest.approx(abs(spread[0] - spread[1]))
    assert row["val_acc_max"] - row["val_acc_min"] > 1e-3  # seeds really differ
    assert row["gap_mean"] == pytest.approx(b64["gap"].mean())
    assert row["best_val_acc_mean"] == pytest.approx(b64["best_val_acc"].mean())
    b32 = stats[stats["global_batch"] == 32].iloc[0]
    assert b32["best_val_acc_mean"] > b32["val_acc_mean"] + 0.01  # B=32 overfits late


def test_plots_survive_diverged_run(study_dir: Path, tmp_path: Path) -> None:
    import h5py

    path = study_dir / "runs" / "b64-s0.h5"
    with h5py.File(path, "r+") as f:
        loss = f["train/loss"][...]
        loss[40] = np.inf
        loss[41:] = np.nan
        f["train/loss"][...] = loss
        f["eval/val_loss"][-1] = np.nan
        f["eval/val_acc"][-1] = np.nan
        f["status/code"][0] = 2
    runs = load_study(study_dir)
    for path in plot_all(runs, tmp_path):
        _assert_real_png(path)
    row = runs_table(runs).set_index("run").loc["b64-s0"]
    assert row["status"] == "diverged"
    assert np.isnan(row["final_val_acc"]) and not np.isnan(row["best_val_acc"])


NEW_PLOTS = {
    "b_simple_vs_samples.png": lambda runs, out: plot_b_simple_vs_samples(runs, out, b_crit=128.0),
    "b_simple_vs_loss.png": plot_b_simple_vs_loss,
    "noise_fit.png": plot_noise_fit,
    "steps_to_target.png": lambda runs, out: plot_steps_to_target(runs, out, Target("val_error", 0.15)),
    "examples_to_target.png": lambda runs, out: plot_examples_to_target(runs, out, Target("val_error", 0.15)),
}


@pytest.mark.parametrize("name", sorted(NEW_PLOTS))
def test_new_figures_png(study_dir: Path, tmp_path: Path, name: str) -> None:
    paths = NEW_PLOTS[name](load_study(study_dir), tmp_path)
    assert paths == [tmp_path / name]
    _assert_real_png(paths[0])
    assert b"no data" not in paths[0].read_bytes()


def test_plot_all_writes_every_figure(study_dir: Path, tmp_path: Path) -> None:
    paths = plot_all(load_study(study_dir), tmp_path)
    assert [p.name for p in paths] == list(ALL_FIGURES)
    for path in paths:
        _assert_real_png(path)


def test_figures_without_data_say_why(tmp_path: Path) -> None:
    # One run with a single small batch and no target: no noise scale, no steps-to-target.
    runs = [load_run(write_run_file(tmp_path / "single.h5", SINGLE_SPEC))]
    out = tmp_path / "figs"
    paths = plot_all(runs, out)
    assert [p.name for p in paths] == list(ALL_FIGURES)
    notes = {p.name: p.read_bytes() for p in paths}
    for name in ("b_simple_vs_samples.png", "b_simple_vs_loss.png", "noise_fit.png"):
        assert b"no data: no run has more than one small batch" in notes[name], name
    for name in ("steps_to_target.png", "examples_to_target.png"):
        assert b"no data: no run file declares a target" in notes[name], name
    for name in ("loss_vs_samples.png", "final_vs_batch.png"):
        assert b"no data" not in notes[name]
    for path in paths:
        _assert_real_png(path)


# --- readability: helpers applied to every figure -------------------------------------------------

MAX_LEGEND_ENTRIES: int = 12


def _legends(fig: Figure) -> list[Legend]:
    found = list(fig.legends)
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            found.append(legend)
    return found


def _in_view_tick_labels(axis: Axis) -> list[Text]:
    """Labelled ticks inside the axis' view (ticks outside are not drawn)."""
    lo, hi = sorted(axis.get_view_interval())
    tol = 1e-9 * max(abs(lo), abs(hi))
    out = []
    for locs, ticks in ((axis.get_majorticklocs(), axis.get_major_ticks()),
                        (axis.get_minorticklocs(), axis.get_minor_ticks())):
        for loc, tick in zip(locs, ticks):
            if lo - tol <= loc <= hi + tol:
                out += [t for t in (tick.label1, tick.label2) if t.get_visible() and t.get_text()]
    return out


def _boxes_overlap(a: Bbox, b: Bbox) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def assert_readable(fig: Figure, name: str) -> None:
    """No two tick labels of one axis overlap; every legend is small and off the data panels."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for i, ax in enumerate(fig.axes):
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _in_view_tick_labels(axis)]
            for j, (text_a, a) in enumerate(boxes):
                for text_b, b in boxes[j + 1:]:
                    assert not _boxes_overlap(a, b), f"{name}: axes {i} {axis.axis_name}: {text_a!r} on {text_b!r}"
    panels = [ax for ax in fig.axes if ax.axison]
    for legend in _legends(fig):
        entries = len(legend.get_texts())
        assert entries <= MAX_LEGEND_ENTRIES, f"{name}: a legend of {entries} entries"
        box = legend.get_window_extent(renderer)
        for ax in panels:
            assert not _boxes_overlap(box, ax.get_window_extent(renderer)), f"{name}: legend over a panel"


def _all_texts(fig: Figure) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text))


def test_small_study_figures_are_readable(study_dir: Path) -> None:
    for name, fig in build_figures(load_study(study_dir)).items():
        assert_readable(fig, name)


def test_every_format_is_written(study_dir: Path, tmp_path: Path) -> None:
    runs = load_study(study_dir)
    paths = plot_all(runs, tmp_path, formats=("png", "pdf", "svg"))
    assert [p.name for p in paths] == [f"{Path(n).stem}.{ext}" for n in ALL_FIGURES for ext in ("png", "pdf", "svg")]
    for path in paths:
        data = path.read_bytes()
        if path.suffix == ".png":
            _assert_real_png(path)
        elif path.suffix == ".pdf":
            assert data.startswith(b"%PDF") and b"%%EOF" in data[-64:]
        else:
            root = ElementTree.fromstring(data)
            assert root.tag.endswith("svg")
            assert len(list(root.iter())) > 50  # drawn content, not an empty canvas


def test_no_data_note_in_every_format(tmp_path: Path) -> None:
    runs = [load_run(write_run_file(tmp_path / "single.h5", SINGLE_SPEC))]
    for path in plot_noise_fit(runs, tmp_path / "figs", formats=("png", "pdf", "svg")):
        assert b"no data: no run has more than one small batch" in path.read_bytes(), path.name


def test_cli_plot_format_option(study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from batchscope_analysis.cli import main

    out = tmp_path / "figs"
    assert main(["plot", str(study_dir), "--out", str(out), "--format", "svg,png"]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 2 * len(ALL_FIGURES)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{Path(n).stem}.{ext}" for n in ALL_FIGURES for ext in ("png", "svg"))
    with pytest.raises(SystemExit):
        main(["plot", str(study_dir), "--format", "png,jpg"])
    assert "unknown figure format jpg" in capsys.readouterr().err


def test_parse_formats() -> None:
    assert parse_formats("png") == ("png",)
    assert parse_formats(" PDF, .svg ,pdf") == ("pdf", "svg")
    with pytest.raises(ValueError):
        parse_formats("")


def test_accuracy_in_percent_and_seed_ranges(study_dir: Path) -> None:
    runs = [r for r in load_study(study_dir) if r.status.name != "running"]
    fig = build_figures(runs)[FINAL_FIGURE]
    labels = [ax.get_ylabel() for ax in fig.axes[:3]]
    assert all("%" in label for label in labels), labels
    assert "fraction" not in _all_texts(fig)
    # Two seeds everywhere: the legend says so, and the points are in % (about 85-90).
    assert "range over 2 seeds" in _all_texts(fig)
    assert 50 < fig.axes[0].get_ylim()[1] <= 101
    one_seed = [r for r in runs if int(r.attrs["seed"]) == 0]
    text = _all_texts(build_figures(one_seed)[FINAL_FIGURE])
    assert "range" not in text and "min..max" not in text


def test_overlap_check_catches_crowded_ticks() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(3.0, 2.0))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_xticks(np.arange(40.0))
    ax.set_xlim(0, 39)
    with pytest.raises(AssertionError, match="axes 0 x"):
        assert_readable(fig, "crowded")
