"""Task 6.2, one RoIAlign bin (``tinymask/ops/roi_geometry.py``, ``roi_align_geometry`` and
``sample_coordinate``): lesson 6. The RoIAlign kernel test needs task 6.1."""

import numpy as np
import pytest
from expect import expect_close

from tinymask.ops import roi_align
from tinymask.ops.roi_geometry import roi_align_geometry, sample_coordinate

pytestmark = pytest.mark.task_6_2


def test_the_geometry_of_one_roi_by_hand():
    # RoI (1, 1, 3, 3) at stride 1, 4 x 4 bins, adaptive sampling, aligned: shifted by -0.5
    got = roi_align_geometry(1.0, 1.0, 3.0, 3.0, 1.0, True, 4, 4, 0)
    expect_close(got, (0.5, 0.5, 0.5, 0.5, 1, 1),
                 "(start_y, start_x, bin_h, bin_w, grid_h, grid_w), aligned")
    got = roi_align_geometry(1.0, 1.0, 3.0, 3.0, 1.0, False, 4, 4, 0)
    expect_close(got, (1.0, 1.0, 0.5, 0.5, 1, 1), "the same RoI, aligned=False")


def test_spatial_scale_and_sampling_ratio():
    got = roi_align_geometry(8.0, 4.0, 40.0, 20.0, 0.25, True, 2, 4, 0)
    # in cells x 2..10 and y 1..5, moved by -0.5: bins of 2 x 2 cells, so 2 x 2 samples
    expect_close(got, (0.5, 1.5, 2.0, 2.0, 2, 2), "geometry at stride 4 (spatial_scale 0.25)")
    got = roi_align_geometry(8.0, 4.0, 40.0, 20.0, 0.25, True, 2, 4, 3)
    expect_close(got[4:], (3, 3), "samples per bin with sampling_ratio 3")


def test_a_tiny_roi_is_raised_to_one_cell_only_without_alignment():
    expect_close(roi_align_geometry(1.0, 1.0, 1.2, 1.5, 1.0, False, 2, 2, 0)[2:4], (0.5, 0.5),
                 "bin size of a 0.5 x 0.2 RoI, aligned=False (raised to 1 x 1)")
    expect_close(roi_align_geometry(1.0, 1.0, 1.2, 1.5, 1.0, True, 2, 2, 0)[2:4], (0.25, 0.1),
                 "bin size of the same RoI, aligned=True (not raised)")


def test_samples_sit_at_sub_bin_centres():
    got = [sample_coordinate(0.5, 2.0, 1, index, 4) for index in range(4)]
    # bin 1 covers [2.5, 4.5): four sub-bins of 0.5, centres 2.75 .. 4.25
    expect_close(got, [2.75, 3.25, 3.75, 4.25], "the 4 sample positions of bin 1")


def test_detectron2s_worked_example():
    feature = np.arange(25.0).reshape(1, 1, 5, 5)
    roi = np.array([[0.0, 1.0, 1.0, 3.0, 3.0]])
    out = roi_align(feature, roi, 4, 1.0, 0, aligned=False).data[0, 0]
    expect_close(out[0], [7.5, 8.0, 8.5, 9.0], "first row, aligned=False (REFERENCE §1)")
    out = roi_align(feature, roi, 4, 1.0, 0, aligned=True).data[0, 0]
    expect_close(out[0], [4.5, 5.0, 5.5, 6.0], "first row, aligned=True (REFERENCE §1)")
