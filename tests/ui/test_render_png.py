"""plots.render_png: the one helper that turns draw functions into a widget panel's PNG."""
import io

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from course_lib.ui.plots import render_png


def test_draw_functions_get_their_own_axes_and_the_result_without_touching_pyplot():
    seen = []

    def draw(ax, result):
        seen.append((ax, result))
        ax.plot(result["y"])
    before = plt.get_fignums()
    png = render_png([draw, draw, draw], {"y": [1, 3, 2]}, "title", ncols=2, size=(6, 4))
    assert plt.get_fignums() == before                       # nothing left open in pyplot
    assert len({id(ax) for ax, _ in seen}) == 3 and all(r == {"y": [1, 3, 2]} for _, r in seen)
    assert seen[0][0].figure.axes[3].axison is False          # the unused fourth cell is blank
    w, h = Image.open(io.BytesIO(png)).size
    assert w > h                                              # a 6x4 inch figure, not a square one


def test_one_draw_function_and_a_failing_draw_surface_its_error():
    assert render_png(lambda ax, r: ax.bar([0, 1], r), [2, 3])[:4] == b"\x89PNG"
    with pytest.raises(KeyError, match="runs"):
        render_png(lambda ax, r: r["runs"], {})
