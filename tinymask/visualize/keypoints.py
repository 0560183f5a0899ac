"""Keypoints drawn over an image: each instance's skeleton, its left side and its right.

Inputs as the model returns them: keypoints (N, K, 3) ``(x, y, v)`` in pixels, optional
scores (N,) of the instances, and a skeleton of 1-based keypoint pairs (COCO's convention,
``dataset.skeleton``). Points with v = 0 (not labelled) are left out; hidden ones (v = 1,
ground truth) are drawn hollow. Left keypoints are red, right ones blue, the rest yellow, so
a figure predicted mirror-wise shows at a glance.
"""

from __future__ import annotations

import numpy

from tinymask.backend import to_numpy

SIDE_COLOURS = {"left": "#e8453c", "right": "#3c7be8", "middle": "#f2d43d"}


def keypoint_side(name: str) -> str:
    return "left" if name.startswith("left") else "right" if name.startswith("right") \
        else "middle"


def draw_keypoints(ax, keypoints, skeleton=(), keypoint_names=None, scores=None,
                   score_threshold: float = 0.5, line_colour="white"):
    """Draw each instance's bones (skeleton pairs with both ends labelled) and its points.
    Instances scoring below ``score_threshold`` are left out (no ``scores``: all drawn).
    Returns ``ax``."""
    keypoints = to_numpy(keypoints).reshape(-1, *to_numpy(keypoints).shape[-2:])
    if scores is not None:
        keypoints = keypoints[to_numpy(scores).reshape(-1) >= score_threshold]
    names = keypoint_names or [""] * keypoints.shape[1]
    colours = [SIDE_COLOURS[keypoint_side(name)] for name in names]
    for points in keypoints:
        # imshow centres pixel c on c, so a continuous coordinate x is drawn at x - 0.5
        x, y, visibility = points[:, 0] - 0.5, points[:, 1] - 0.5, points[:, 2]
        for first, second in skeleton:
            if visibility[first - 1] > 0 and visibility[second - 1] > 0:
                ax.plot([x[first - 1], x[second - 1]], [y[first - 1], y[second - 1]],
                        color=line_colour, linewidth=1.0, alpha=0.8)
        for index in numpy.flatnonzero(visibility > 0):
            hollow = visibility[index] == 1
            ax.plot(x[index], y[index], "o", markersize=3.5, color=colours[index],
                    markerfacecolor="none" if hollow else colours[index])
    return ax
