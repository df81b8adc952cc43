"""textgym.plots and `textgym plot`: one line per run, in timestep order, never joined across runs."""

from __future__ import annotations

import json

import pytest

from textgym.cli import main
from textgym.plots import Curve, _draw_group, plot_curves, read_run


class RecordingAxes:
    """Stands in for a matplotlib Axes and keeps what was drawn."""

    def __init__(self):
        self.lines, self.bands = [], []

    def plot(self, xs, ys, **kwargs):
        self.lines.append((list(xs), list(ys), kwargs.get("label")))

    def fill_between(self, xs, low, high, **kwargs):
        self.bands.append((list(xs), list(low), list(high)))


def write_run(folder, seed, rows, algo="ppo"):
    folder.mkdir(parents=True)
    (folder / "train_config.json").write_text(json.dumps({"algo": algo, "env": {"id": "textgym/X-v0"}, "seed": seed,
                                                          "out": str(folder)}))
    (folder / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_seeds_of_one_config_are_one_group_drawn_as_separate_increasing_lines(tmp_path):
    # rows written out of order, as a resumed or merged run could leave them
    a = read_run(write_run(tmp_path / "s0", 0, [{"timesteps": 200, "ep_rew_mean": 0.2}, {"timesteps": 100, "ep_rew_mean": 0.1}]))
    b = read_run(write_run(tmp_path / "s1", 1, [{"timesteps": 90, "ep_rew_mean": 0.3}, {"timesteps": 210, "ep_rew_mean": 0.4}]))
    assert a.label == b.label and a.seed == 0 and b.seed == 1
    ax = RecordingAxes()
    _draw_group(ax, "ep_rew_mean", a.label, [a, b], "C0", band=False)
    assert [xs for xs, _, _ in ax.lines] == [[100, 200], [90, 210]]  # one line per seed, each in timestep order
    assert [label for _, _, label in ax.lines] == [a.label, None]  # one legend entry per group


def test_band_draws_the_mean_over_the_shared_range(tmp_path):
    curves = [Curve("g", 0, [{"timesteps": 0, "kl": 0.0}, {"timesteps": 10, "kl": 1.0}]),
              Curve("g", 1, [{"timesteps": 0, "kl": 1.0}, {"timesteps": 20, "kl": 1.0}])]
    ax = RecordingAxes()
    _draw_group(ax, "kl", "g", curves, "C0", band=True)
    (xs, ys, _), = ax.lines
    assert xs[0] == 0 and xs[-1] == 10  # no extrapolation past the shorter run
    assert ys[0] == pytest.approx(0.5) and ys[-1] == pytest.approx(1.0)
    assert len(ax.bands) == 1


def test_different_configs_are_different_groups(tmp_path):
    a = read_run(write_run(tmp_path / "ppo", 0, [{"timesteps": 1, "ep_rew_mean": 0.1}]))
    b = read_run(write_run(tmp_path / "a2c", 0, [{"timesteps": 1, "ep_rew_mean": 0.1}], algo="a2c"))
    assert a.label != b.label


def test_plot_writes_a_png_with_a_panel_per_metric(tmp_path):
    rows = [{"timesteps": t, "ep_rew_mean": t / 100, "kl": t / 1000, "bleu": 0.1, "seconds": t} for t in (10, 20, 30)]
    curves = [read_run(write_run(tmp_path / f"s{s}", s, rows)) for s in (0, 1)]
    out = plot_curves(curves, tmp_path / "plots" / "c.png", band=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_command(tmp_path, capsys):
    run = write_run(tmp_path / "run", 0, [{"timesteps": 16, "ep_rew_mean": 0.1, "kl": 0.0}])
    assert main(["plot", str(run), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").is_file()
    assert main(["plot", str(tmp_path / "missing"), "--out", str(tmp_path / "d.png")]) == 2
    assert "missing does not exist" in capsys.readouterr().err


def test_bad_curve_lines_name_the_file_and_line(tmp_path):
    run = write_run(tmp_path / "run", 0, [{"timesteps": 1}])
    (run / "curve.jsonl").write_text('{"timesteps": 1}\n{not json\n')
    with pytest.raises(ValueError, match=r"curve.jsonl:2: not JSON"):
        read_run(run)
    (run / "curve.jsonl").write_text('{"kl": 1}\n')
    with pytest.raises(ValueError, match="timesteps"):
        read_run(run)


def test_nothing_to_plot_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_curves([Curve("g", 0, [])], tmp_path / "x.png")
