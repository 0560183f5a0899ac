"""NMS (REFERENCE.md §6): every implementation against the reference loop.

The reference loop (``nms_reference``) is the ground truth; the Numba CPU kernel, the CUDA
kernels (in Numba's simulator when there is no GPU, so on tiny inputs) and the public
dispatching ``tinymask.ops.nms`` must return exactly its indices, ties included.
"""

import numpy
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tinymask
from tinymask.boxes import box_iou
from tinymask.ops import batched_nms, nms, nms_cpu, nms_cuda, nms_reference

IMPLEMENTATIONS = {
    "reference": nms_reference.nms,
    "cpu": nms_cpu.nms,
    "cuda": nms_cuda.nms,  # the simulator without a GPU: keep its inputs small
    "public": nms,
}
FAST_IMPLEMENTATIONS = {name: IMPLEMENTATIONS[name] for name in ("cpu", "cuda", "public")}


def clustered_boxes(rng, count, dtype=numpy.float32, image_size=800.0, integer=False):
    """Boxes scattered around a few objects, as a detector proposes them: NMS has work to do."""
    num_objects = max(count // 15, 1)
    object_size = rng.uniform(20, 300, (num_objects, 2))
    object_centre = rng.uniform(0, image_size, (num_objects, 2))
    owner = rng.integers(0, num_objects, count)
    centre = object_centre[owner] + rng.normal(0, 0.1, (count, 2)) * object_size[owner]
    size = object_size[owner] * numpy.exp(rng.normal(0, 0.15, (count, 2)))
    boxes = numpy.concatenate([centre - size / 2, centre + size / 2], axis=1)
    if integer:  # integer-valued coordinates: every area and IoU numerator is exact
        boxes = numpy.round(boxes)
        boxes[:, 2:] = numpy.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    return boxes.astype(dtype)


def _boxes(rows, dtype=numpy.float32):
    return numpy.array(rows, dtype=dtype).reshape(-1, 4)


def _scores(values, dtype=numpy.float32):
    return numpy.array(values, dtype=dtype)


# --- crafted cases, every implementation -------------------------------------------------


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_iou_equal_to_the_threshold_does_not_suppress(implementation, dtype):
    # [0,0,4,1] and [0,0,2,1]: intersection 2, union 4, IoU exactly 0.5 (exact in binary).
    # [0,0,4,1] and [0,0,3,1]: intersection 3, union 4, IoU exactly 0.75.
    boxes = _boxes([[0, 0, 4, 1], [0, 0, 2, 1], [10, 0, 14, 1], [10, 0, 13, 1]], dtype)
    scores = _scores([0.9, 0.8, 0.7, 0.6], dtype)
    # At 0.5, box 1 (IoU 0.5) survives and box 3 (IoU 0.75 > 0.5) does not.
    numpy.testing.assert_array_equal(implementation(boxes, scores, 0.5), [0, 1, 2])
    numpy.testing.assert_array_equal(implementation(boxes, scores, 0.75), [0, 1, 2, 3])
    numpy.testing.assert_array_equal(implementation(boxes, scores, 0.4999), [0, 2])
    numpy.testing.assert_array_equal(implementation(boxes, scores, 0.7499), [0, 1, 2])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
def test_threshold_is_compared_in_the_boxes_dtype(implementation):
    # IoU = 0.25 / 2.5 = 0.1 exactly. In float32 both the IoU and the threshold round to
    # float32(0.1) = 0.10000000149..., equal, so the box is kept. (Comparing the float32 IoU
    # with the float64 threshold 0.1, as torchvision's CPU kernel does, would drop it.)
    boxes = _boxes([[0, 0, 0.5, 0.5], [0, 0, 0.5, 5]])
    scores = _scores([0.9, 0.8])
    numpy.testing.assert_array_equal(implementation(boxes, scores, 0.1), [0, 1])
    numpy.testing.assert_array_equal(implementation(boxes, scores, 0.0999), [0])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
def test_equal_scores_keep_input_order(implementation):
    boxes = _boxes(
        [
            [0, 0, 10, 10],  # 0: score 0.5
            [100, 0, 110, 10],  # 1: score 0.9, far from the rest
            [0, 0, 10, 10],  # 2: identical to box 0, same score: box 0 comes first, wins
            [200, 0, 210, 10],  # 3: score 0.5, far away
        ]
    )
    scores = _scores([0.5, 0.9, 0.5, 0.5])
    # 1 first (best score), then the 0.5s in input order 0, 3; box 2 is suppressed by 0.
    numpy.testing.assert_array_equal(implementation(boxes, scores, 0.5), [1, 0, 3])
    # Swap which duplicate comes first: now box 0 is the one suppressed.
    numpy.testing.assert_array_equal(implementation(boxes[[2, 1, 0, 3]], scores, 0.5), [1, 0, 3])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
def test_a_suppressed_box_suppresses_nothing(implementation):
    # A overlaps B (IoU 70/130 = 0.54), B overlaps C (0.54), A and C barely (40/160 = 0.25).
    # Greedy NMS at 0.5 keeps A, drops B, and C survives: only kept boxes suppress.
    boxes = _boxes([[0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10]])
    scores = _scores([0.9, 0.8, 0.7])
    numpy.testing.assert_array_equal(implementation(boxes, scores, 0.5), [0, 2])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
def test_empty_input_gives_empty_int64(implementation):
    keep = implementation(_boxes([]), _scores([]), 0.5)
    assert keep.shape == (0,)
    assert keep.dtype == numpy.int64


# The simulator divides NumPy scalars, in threads of its own (out of reach of numpy.errstate).
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
def test_zero_area_boxes_suppress_nothing(implementation):
    # Two identical points: union 0, IoU undefined; the kernels compute 0/0 = NaN, the
    # reference defines 0: either way nothing is suppressed.
    boxes = _boxes([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 2, 2]])
    scores = _scores([0.9, 0.8, 0.7])
    numpy.testing.assert_array_equal(implementation(boxes, scores, 0.5), [0, 1, 2])


# --- random boxes against the reference ---------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 17, 300, 2000])
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_cpu_kernel_matches_reference_on_random_boxes(count, dtype):
    rng = numpy.random.default_rng(count)
    boxes = clustered_boxes(rng, count, dtype)
    # Scores on a coarse grid: many equal scores, so the stable order matters.
    scores = (rng.integers(0, 20, count) / 20).astype(dtype)
    for iou_threshold in (0.3, 0.5, 0.7):
        expected = nms_reference.nms(boxes, scores, iou_threshold)
        numpy.testing.assert_array_equal(nms_cpu.nms(boxes, scores, iou_threshold), expected)
        numpy.testing.assert_array_equal(nms(boxes, scores, iou_threshold), expected)


def test_cpu_kernel_matches_reference_on_integer_boxes_with_exact_ties():
    # Small integer boxes on a small grid: many pairs have an IoU exactly equal to 0.5.
    rng = numpy.random.default_rng(7)
    top_left = rng.integers(0, 6, (400, 2))
    size = rng.integers(1, 5, (400, 2))
    boxes = numpy.concatenate([top_left, top_left + size], axis=1).astype(numpy.float32)
    scores = rng.integers(0, 5, 400).astype(numpy.float32)
    iou = box_iou(boxes, boxes)
    assert numpy.count_nonzero(iou == 0.5) > 100  # the exact ties are really there
    for iou_threshold in (0.25, 0.5):
        numpy.testing.assert_array_equal(
            nms_cpu.nms(boxes, scores, iou_threshold),
            nms_reference.nms(boxes, scores, iou_threshold),
        )


# 1 box; a block boundary at 64 from both sides; two full and one partial 64-box block.
@pytest.mark.parametrize("count", [1, 63, 64, 65, 140])
def test_cuda_kernels_match_reference(count):
    rng = numpy.random.default_rng(100 + count)
    boxes = clustered_boxes(rng, count)
    scores = (rng.integers(0, 10, count) / 10).astype(numpy.float32)
    expected = nms_reference.nms(boxes, scores, 0.5)
    assert len(expected) < count or count == 1  # something was suppressed
    numpy.testing.assert_array_equal(nms_cuda.nms(boxes, scores, 0.5), expected)


def test_cuda_kernels_match_reference_float64():
    rng = numpy.random.default_rng(5)
    boxes = clustered_boxes(rng, 70, numpy.float64)
    scores = rng.random(70)
    numpy.testing.assert_array_equal(
        nms_cuda.nms(boxes, scores, 0.7), nms_reference.nms(boxes, scores, 0.7)
    )


# --- properties -----------------------------------------------------------------------------

# Boxes with corners on a half-pixel grid and scores from a handful of values: exact ties in
# both IoU and score come up often.
_half = st.integers(0, 40).map(lambda value: value / 2)
_extent = st.integers(1, 20).map(lambda value: value / 2)
_box = st.tuples(_half, _half, _extent, _extent).map(
    lambda xywh: [xywh[0], xywh[1], xywh[0] + xywh[2], xywh[1] + xywh[3]]
)
_detections = st.lists(st.tuples(_box, st.integers(0, 6)), min_size=0, max_size=40).map(
    lambda rows: (
        _boxes([box for box, _ in rows]),
        _scores([score / 6 for _, score in rows]),
    )
)
_threshold = st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.9, 1.0])


@settings(max_examples=200, deadline=None)
@given(detections=_detections, iou_threshold=_threshold)
@example(  # found by hypothesis: an IoU of exactly 0.1 at threshold 0.1, in float32
    detections=(_boxes([[0, 0, 0.5, 0.5], [0, 0, 0.5, 5]]), _scores([0, 0])), iou_threshold=0.1
)
def test_nms_properties(detections, iou_threshold):
    boxes, scores = detections
    keep = nms(boxes, scores, iou_threshold)
    numpy.testing.assert_array_equal(keep, nms_reference.nms(boxes, scores, iou_threshold))

    # Sorted by score, best first.
    assert numpy.all(numpy.diff(scores[keep]) <= 0)
    # No two kept boxes overlap by more than the threshold.
    kept_iou = box_iou(boxes[keep], boxes[keep])
    numpy.fill_diagonal(kept_iou, 0.0)
    assert numpy.all(kept_iou <= iou_threshold)
    # Every removed box overlaps a kept box that comes before it (a higher score, or an
    # equal score earlier in the input) by more than the threshold.
    position = numpy.empty(len(scores), dtype=numpy.int64)
    position[numpy.argsort(-scores, kind="stable")] = numpy.arange(len(scores))
    removed = numpy.setdiff1d(numpy.arange(len(scores)), keep)
    for box_index in removed:
        earlier_kept = keep[position[keep] < position[box_index]]
        overlaps = box_iou(boxes[box_index][None, :], boxes[earlier_kept])[0]
        assert numpy.any(overlaps > iou_threshold)


# --- batched NMS ---------------------------------------------------------------------------


def _batched_nms_one_group_at_a_time(boxes, scores, idxs, iou_threshold):
    """The definition batched_nms must match: NMS per group, merged by score (stable)."""
    kept = []
    for group in numpy.unique(idxs):
        members = numpy.flatnonzero(idxs == group)
        kept.append(members[nms_reference.nms(boxes[members], scores[members], iou_threshold)])
    kept = numpy.concatenate(kept) if kept else numpy.zeros(0, dtype=numpy.int64)
    # Best score first; equal scores in input order, as one stable sort over all boxes gives.
    return kept[numpy.lexsort((kept, -scores[kept]))]


def test_batched_nms_with_one_group_is_nms():
    rng = numpy.random.default_rng(3)
    boxes = clustered_boxes(rng, 500)
    scores = rng.random(500).astype(numpy.float32)
    idxs = numpy.zeros(500, dtype=numpy.int64)
    numpy.testing.assert_array_equal(batched_nms(boxes, scores, idxs, 0.5), nms(boxes, scores, 0.5))


def test_batched_nms_is_nms_per_group():
    rng = numpy.random.default_rng(4)
    # Integer coordinates keep the shifted boxes exact in float32.
    boxes = clustered_boxes(rng, 600, integer=True)
    scores = (rng.integers(0, 50, 600) / 50).astype(numpy.float32)
    idxs = rng.integers(0, 5, 600)
    for iou_threshold in (0.5, 0.7):
        numpy.testing.assert_array_equal(
            batched_nms(boxes, scores, idxs, iou_threshold),
            _batched_nms_one_group_at_a_time(boxes, scores, idxs, iou_threshold),
        )


def test_batched_nms_groups_do_not_suppress_each_other():
    boxes = _boxes([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    scores = _scores([0.9, 0.8, 0.7])
    numpy.testing.assert_array_equal(
        batched_nms(boxes, scores, numpy.array([0, 1, 0]), 0.5), [0, 1]
    )


def test_batched_nms_empty():
    keep = batched_nms(_boxes([]), _scores([]), numpy.zeros(0, dtype=numpy.int64), 0.5)
    assert keep.shape == (0,)
    assert keep.dtype == numpy.int64


# --- the public API: inputs and errors --------------------------------------------------------


def test_public_nms_accepts_tensors():
    boxes = _boxes([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    scores = _scores([0.5, 0.9, 0.1])
    keep = nms(tinymask.Tensor(boxes), tinymask.Tensor(scores), 0.5)
    numpy.testing.assert_array_equal(keep, [1, 2])
    idxs = tinymask.Tensor(numpy.array([0, 1, 1]))
    numpy.testing.assert_array_equal(
        batched_nms(tinymask.Tensor(boxes), tinymask.Tensor(scores), idxs, 0.5), [1, 0, 2]
    )


def test_public_nms_errors_say_what_was_wrong():
    boxes = _boxes([[0, 0, 1, 1], [0, 0, 2, 2]])
    with pytest.raises(ValueError, match=r"got shape \(4,\)"):
        nms(boxes[0], _scores([1.0]), 0.5)
    with pytest.raises(ValueError, match=r"scores of shape \(3,\) for boxes of shape \(2, 4\)"):
        nms(boxes, _scores([1.0, 2.0, 3.0]), 0.5)
    with pytest.raises(TypeError, match="boxes must be float32 or float64, got int64"):
        nms(boxes.astype(numpy.int64), _scores([1.0, 2.0]), 0.5)
    with pytest.raises(ValueError, match=r"idxs of shape \(1,\)"):
        batched_nms(boxes, _scores([1.0, 2.0]), numpy.array([0]), 0.5)


# --- against torchvision, where it is installed -----------------------------------------------


@pytest.mark.torch
def test_matches_torchvision_nms():
    torchvision = pytest.importorskip("torchvision")
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(11)
    boxes = clustered_boxes(rng, 3000)
    scores = rng.permutation(3000).astype(
        numpy.float32
    )  # distinct: torch's sort need not be stable
    idxs = rng.integers(0, 4, 3000)
    for iou_threshold in (0.5, 0.7):
        theirs = torchvision.ops.nms(
            torch.from_numpy(boxes), torch.from_numpy(scores), iou_threshold
        )
        numpy.testing.assert_array_equal(nms(boxes, scores, iou_threshold), theirs.numpy())
        theirs = torchvision.ops.batched_nms(
            torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(idxs), iou_threshold
        )
        numpy.testing.assert_array_equal(
            batched_nms(boxes, scores, idxs, iou_threshold), theirs.numpy()
        )


# --- on a real GPU: the CUDA kernels on CuPy arrays at realistic sizes ------------------------


def _to_gpu(array):
    return tinymask.backend.to_backend(array, "cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("count", [1000, 5000, 20000])
@pytest.mark.parametrize("iou_threshold", [0.5, 0.7])
def test_cuda_on_gpu_matches_cpu_kernel(count, iou_threshold):
    rng = numpy.random.default_rng(count)
    # Integer coordinates: exact areas, so the GPU's fused multiply-adds cannot move an IoU
    # across the threshold and the comparison with the CPU can be exact.
    boxes = clustered_boxes(rng, count, integer=True)
    scores = (rng.integers(0, 1000, count) / 1000).astype(numpy.float32)
    expected = nms_cpu.nms(boxes, scores, iou_threshold)
    keep = nms(_to_gpu(boxes), _to_gpu(scores), iou_threshold)
    assert tinymask.backend.is_cupy_array(keep)
    assert keep.dtype == numpy.int64
    numpy.testing.assert_array_equal(tinymask.backend.to_numpy(keep), expected)


@pytest.mark.gpu
def test_cuda_on_gpu_float64_and_batched():
    rng = numpy.random.default_rng(9)
    boxes = clustered_boxes(rng, 3000, numpy.float64, integer=True)
    scores = rng.random(3000)
    idxs = rng.integers(0, 7, 3000)
    numpy.testing.assert_array_equal(
        tinymask.backend.to_numpy(nms(_to_gpu(boxes), _to_gpu(scores), 0.6)),
        nms_cpu.nms(boxes, scores, 0.6),
    )
    numpy.testing.assert_array_equal(
        tinymask.backend.to_numpy(batched_nms(_to_gpu(boxes), _to_gpu(scores), _to_gpu(idxs), 0.6)),
        batched_nms(boxes, scores, idxs, 0.6),
    )


@pytest.mark.gpu
def test_cuda_on_gpu_runs_on_cupys_current_stream():
    cupy = pytest.importorskip("cupy")
    rng = numpy.random.default_rng(10)
    boxes = clustered_boxes(rng, 4000, integer=True)
    scores = rng.random(4000).astype(numpy.float32)
    expected = nms_cpu.nms(boxes, scores, 0.7)
    with cupy.cuda.Stream(non_blocking=True):
        # Produced and consumed on the same non-default stream, with no synchronisation.
        keep = nms(cupy.asarray(boxes), cupy.asarray(scores), 0.7)
    numpy.testing.assert_array_equal(cupy.asnumpy(keep), expected)


@pytest.mark.gpu
def test_cuda_on_gpu_empty_input():
    keep = nms(_to_gpu(_boxes([])), _to_gpu(_scores([])), 0.5)
    assert tinymask.backend.is_cupy_array(keep)
    assert keep.shape == (0,)
