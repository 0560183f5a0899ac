"""lesson_utils.show displays a Figure once as PNG, with a palette when asked."""

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from tinymask.lesson_utils import show

IPython = pytest.importorskip("IPython")
PIL = pytest.importorskip("PIL.Image")


@pytest.mark.parametrize("colours", [None, 16])
def test_show_displays_one_png_with_the_palette_asked_for(monkeypatch, colours):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", shown.append)
    figure = Figure(figsize=(2, 2))
    figure.subplots().imshow(np.random.default_rng(0).random((20, 20, 3)))
    show(figure, colours=colours)
    assert len(shown) == 1
    picture = PIL.open(io.BytesIO(shown[0].data))
    assert picture.format == "PNG"
    if colours is None:
        assert picture.mode == "RGBA"
    else:
        assert picture.mode == "P" and len(picture.getcolors()) <= colours
