"""numvae.plots.save: a figure saved as a PNG, atomically, only when a path is given."""
import pytest
from matplotlib.figure import Figure

from numvae.plots.save import save


def a_figure():
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


def test_a_png_whatever_the_suffix_and_no_file_without_a_path(tmp_path):
    fig = a_figure()
    assert save(fig, None) is fig and list(tmp_path.iterdir()) == []
    assert save(fig, tmp_path / "figure.jpg") is fig
    assert (tmp_path / "figure.jpg").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.jpg"]  # no temporary left


def test_a_failed_save_keeps_the_previous_picture(tmp_path, monkeypatch):
    path = tmp_path / "figure.png"
    path.write_bytes(b"the previous picture")
    fig = a_figure()
    monkeypatch.setattr(fig, "savefig", lambda *args, **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        save(fig, path)
    assert path.read_bytes() == b"the previous picture"


def test_a_path_of_another_type_is_refused():
    with pytest.raises(TypeError, match="path must be None, a str or a path-like object; got 3"):
        save(a_figure(), 3)
