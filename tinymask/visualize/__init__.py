"""Pictures: what a student looks at, and what ``tinymask predict`` draws.

    instances.py   instances (masks, boxes, labels, scores) drawn over an image
    keypoints.py   keypoints and their skeleton drawn over an image
    roi_grid.py    where RoIPool, RoIWarp and RoIAlign read a feature map (Figure 3)
    training.py    loss curves from a training log

Everything builds a ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing
opens a window and it works on a headless machine.
"""

from tinymask.visualize.instances import (
    draw_instances,
    instance_colours,
    show_prediction_and_ground_truth,
)
from tinymask.visualize.keypoints import draw_keypoints
from tinymask.visualize.roi_grid import plot_roi_ops, plot_roi_readout, roi_readout
from tinymask.visualize.training import plot_loss_curves, read_log

__all__ = [
    "draw_instances",
    "draw_keypoints",
    "instance_colours",
    "plot_loss_curves",
    "plot_roi_ops",
    "plot_roi_readout",
    "read_log",
    "roi_readout",
    "show_prediction_and_ground_truth",
]
