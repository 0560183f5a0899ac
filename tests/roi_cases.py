"""RoIs and feature maps shared by the RoI op tests (RoIAlign, RoIWarp, RoIPool, poolers).

``awkward_rois`` is the list of cases every implementation must agree on: RoIs partly and
wholly outside the map, smaller than a cell, with corners exactly on .5 (where C's round
and NumPy's differ), of zero width, with the end before the start, and random ones.
"""

from __future__ import annotations

import numpy as np


def awkward_rois(height, width, spatial_scale=1.0, num_images=2, num_random=6, seed=0):
    """``(K, 5)`` float64 rows ``[batch_index, x1, y1, x2, y2]`` in image pixels for an
    ``(H, W)`` feature map read at ``spatial_scale``. Coordinates are chosen in cells and
    divided by the scale, so each case means the same thing at every scale."""
    cases_in_cells = [
        [0, -3.0, -2.0, 2.2, 1.6],  # partly outside, top-left
        [1, width - 1.5, height - 2.0, width + 3.0, height + 2.5],  # partly outside, bottom-right
        [0, width + 2.0, 1.0, width + 5.0, 3.0],  # wholly outside, right
        [1, -6.0, -6.0, -2.5, -2.0],  # wholly outside, more than a cell away
        [0, 1.3, 1.1, 1.7, 1.4],  # smaller than a cell
        [1, 0.5, 1.5, 2.5, 3.5],  # every corner exactly on .5
        [0, 2.5, 0.5, 2.5, 2.5],  # zero width
        [1, 3.0, 3.2, 1.0, 1.1],  # end before start
    ]
    rng = np.random.default_rng(seed)
    for _ in range(num_random):
        x1, y1 = rng.uniform(-1.0, width - 1.0), rng.uniform(-1.0, height - 1.0)
        box_w, box_h = rng.uniform(0.3, 0.8 * width), rng.uniform(0.3, 0.8 * height)
        cases_in_cells.append([rng.integers(num_images), x1, y1, x1 + box_w, y1 + box_h])
    rois = np.array(cases_in_cells, dtype=np.float64)
    rois[:, 0] = np.minimum(rois[:, 0], num_images - 1)
    rois[:, 1:] /= spatial_scale
    return rois


def random_features(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)
