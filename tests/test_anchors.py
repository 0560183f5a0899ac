"""Anchors (REFERENCE.md §2): cell anchors per level, grid placement and order."""

import numpy
import pytest

import tinymask
from tinymask.anchors import AnchorGenerator, cell_anchors, grid_anchors
from tinymask.backend import is_cupy_array, to_numpy

# Cell anchors of the FPN levels, ratios (0.5, 1, 2) = height / width. For size s and ratio r
# the half-width is s / (2 sqrt r) and the half-height s sqrt(r) / 2, rounded:
FPN_CELL_ANCHORS = {
    # half-sides 22.63 and 11.31 -> 23 and 11; the square is exact; ratio 2 swaps them
    32: [[-23, -11, 23, 11], [-16, -16, 16, 16], [-11, -23, 11, 23]],
    # 45.25 -> 45 and 22.63 -> 23
    64: [[-45, -23, 45, 23], [-32, -32, 32, 32], [-23, -45, 23, 45]],
    # 90.51 -> 91 and 45.25 -> 45
    128: [[-91, -45, 91, 45], [-64, -64, 64, 64], [-45, -91, 45, 91]],
    # 181.02 -> 181 and 90.51 -> 91
    256: [[-181, -91, 181, 91], [-128, -128, 128, 128], [-91, -181, 91, 181]],
    # 362.04 -> 362 and 181.02 -> 181
    512: [[-362, -181, 362, 181], [-256, -256, 256, 256], [-181, -362, 181, 362]],
}


@pytest.mark.parametrize("size", sorted(FPN_CELL_ANCHORS))
def test_fpn_cell_anchors_per_level(size):
    anchors = cell_anchors((size,), (0.5, 1.0, 2.0))
    numpy.testing.assert_array_equal(anchors, FPN_CELL_ANCHORS[size])
    assert anchors.dtype == numpy.float32


def test_fpn_generator_levels_match_the_table():
    generator = AnchorGenerator.fpn()
    assert generator.num_anchors_per_location() == [3, 3, 3, 3, 3]
    for level_anchors, size in zip(generator.cell_anchors(), [32, 64, 128, 256, 512], strict=True):
        numpy.testing.assert_array_equal(level_anchors, FPN_CELL_ANCHORS[size])


def test_c4_cell_anchors_are_ratio_major():
    generator = AnchorGenerator.c4()
    assert generator.num_anchors_per_location() == [15]
    (anchors,) = generator.cell_anchors()
    assert anchors.shape == (15, 4)
    # Index ratio_index * 5 + size_index (torchvision's order): the first five are all the
    # sizes at ratio 0.5, the next five at ratio 1, the last five at ratio 2.
    for ratio_index in range(3):
        for size_index, size in enumerate([32, 64, 128, 256, 512]):
            numpy.testing.assert_array_equal(
                anchors[ratio_index * 5 + size_index], FPN_CELL_ANCHORS[size][ratio_index]
            )


def test_grid_anchors_order_and_positions():
    base = cell_anchors((32,), (0.5, 1.0, 2.0))  # A = 3
    anchors = grid_anchors([(2, 3)], [4], [base])  # H = 2, W = 3, stride 4
    assert anchors.shape == (2 * 3 * 3, 4)
    # Row (i, j, a) sits at index (i * W + j) * A + a, shifted by (4j, 4i).
    # (0, 0, 0): the cell anchor itself, centred on (0, 0): no half-stride offset.
    numpy.testing.assert_array_equal(anchors[0], [-23, -11, 23, 11])
    # (0, 1, 0): one cell right, x + 4.
    numpy.testing.assert_array_equal(anchors[3], [-19, -11, 27, 11])
    # (1, 2, 1): the square [-16, -16, 16, 16] moved by (8, 4).
    numpy.testing.assert_array_equal(anchors[16], [-8, -12, 24, 20])
    # (1, 2, 2), the last row: [-11, -23, 11, 23] moved by (8, 4).
    numpy.testing.assert_array_equal(anchors[17], [-3, -19, 19, 27])


def test_grid_anchors_with_different_strides_along_y_and_x():
    base = numpy.array([[-1, -1, 1, 1]], dtype=numpy.float32)
    anchors = grid_anchors([(2, 2)], [(10, 3)], [base])  # stride_y 10, stride_x 3
    # Centres (0, 0), (3, 0), (0, 10), (3, 10) in [H, W] order.
    numpy.testing.assert_array_equal(
        anchors, [[-1, -1, 1, 1], [2, -1, 4, 1], [-1, 9, 1, 11], [2, 9, 4, 11]]
    )


def test_levels_are_concatenated_p2_first():
    generator = AnchorGenerator.fpn()
    # An 800 x 1216 padded image: P2..P6 of 200x304, 100x152, 50x76, 25x38 and 13x19.
    feature_shapes = [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)]
    anchors = generator(feature_shapes)
    counts = [3 * height * width for height, width in feature_shapes]
    assert anchors.shape == (sum(counts), 4)  # 3 * 80,997 = 242,991
    assert anchors.shape[0] == 242_991
    # The first anchor of each level is its first cell anchor at (0, 0).
    starts = numpy.cumsum([0] + counts[:-1])
    for start, size in zip(starts, [32, 64, 128, 256, 512], strict=True):
        numpy.testing.assert_array_equal(anchors[start], FPN_CELL_ANCHORS[size][0])
    # The last anchor: P6 cell (12, 18) at stride 64 is centred on (1152, 768), ratio 2.
    numpy.testing.assert_array_equal(anchors[-1], [1152 - 181, 768 - 362, 1152 + 181, 768 + 362])


def test_c4_generator_on_one_map():
    anchors = AnchorGenerator.c4()([(3, 4)])
    assert anchors.shape == (3 * 4 * 15, 4)
    # Cell (2, 3) at stride 16 is centred on (48, 32); its anchor 7 is ratio 1, size 128.
    numpy.testing.assert_array_equal(
        anchors[(2 * 4 + 3) * 15 + 7], [48 - 64, 32 - 64, 48 + 64, 32 + 64]
    )


def test_wrong_number_of_levels_is_an_error():
    with pytest.raises(ValueError, match="5 levels but got 2 feature shapes"):
        AnchorGenerator.fpn()([(10, 10), (5, 5)])
    with pytest.raises(ValueError, match="one stride per level"):
        AnchorGenerator(sizes=((32,), (64,)), strides=(4,))


@pytest.mark.torch
def test_matches_torchvision_anchor_generator():
    anchor_utils = pytest.importorskip("torchvision.models.detection.anchor_utils")
    torch = pytest.importorskip("torch")
    theirs = anchor_utils.AnchorGenerator(
        sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5
    )
    # A 256 x 256 image, so torchvision's inferred strides (image // feature) are 4..64.
    feature_shapes = [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)]
    their_cells = theirs.generate_anchors((32, 64, 128, 256, 512), (0.5, 1.0, 2.0))
    strides = [[torch.tensor(4 * 2**level), torch.tensor(4 * 2**level)] for level in range(5)]
    their_anchors = torch.cat(theirs.grid_anchors(feature_shapes, strides)).numpy()
    numpy.testing.assert_array_equal(AnchorGenerator.fpn()(feature_shapes), their_anchors)
    # And the C4 cell anchors: one level, five sizes, in torchvision's order.
    numpy.testing.assert_array_equal(AnchorGenerator.c4().cell_anchors()[0], their_cells.numpy())


@pytest.mark.gpu
def test_anchors_on_the_cupy_backend_match_numpy():
    feature_shapes = [(50, 76), (25, 38), (13, 19), (7, 10), (4, 5)]
    expected = AnchorGenerator.fpn()(feature_shapes)
    tinymask.set_backend("cupy")
    try:
        anchors = AnchorGenerator.fpn()(feature_shapes)
    finally:
        tinymask.set_backend("numpy")
    assert is_cupy_array(anchors)
    numpy.testing.assert_array_equal(to_numpy(anchors), expected)
