"""The course's tasks, in lesson order: what to write, where it lives, what it needs first.

Each task is code the model runs, marked in the package source between
``# --- task L.N: title ---`` and ``# --- end task ---`` (``tinymask.course.blocks``); its
tests are ``tests/course/test_task_L_N_*.py``, marked ``task_L_N``. A task's tests never
need a later task; ``needs`` names the earlier ones they run through.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    id: str  # "L.N": lesson L, task N of that lesson
    title: str  # as in the source marker
    lesson: str  # the lesson's file name, without .py
    section: str  # the lesson section that explains it
    where: str  # file and function(s) a student writes
    needs: tuple = ()  # earlier tasks its tests run through

    @property
    def lesson_number(self) -> int:
        return int(self.id.split(".")[0])

    @property
    def marker(self) -> str:
        """The pytest marker of its tests: ``task_4_2`` for task 4.2."""
        return "task_" + self.id.replace(".", "_")


TASKS = (
    Task("1.1", "the backward of mul and matmul", "01_autograd_and_convolution", "1",
         "tinymask/tensor.py: Mul.backward, MatMul.backward"),
    Task("1.2", "a convolution as shifted matrix products", "01_autograd_and_convolution", "3",
         "tinymask/functional/conv.py: conv2d_shifted"),
    Task("1.3", "the gradients of a convolution", "01_autograd_and_convolution", "4",
         "tinymask/functional/conv.py: conv2d_shifted_weight_grad, Conv2dShifted.backward",
         ("1.2",)),
    Task("1.4", "max-pooling, forward and backward", "01_autograd_and_convolution", "5",
         "tinymask/functional/pooling.py: MaxPool2d"),
    Task("2.1", "the FPN's top-down pathway", "02_resnet_and_fpn", "3",
         "tinymask/model/fpn.py: FPN.forward"),
    Task("3.1", "a horizontal flip of an image and its target", "03_data", "1",
         "tinymask/data/augment.py: horizontal_flip"),
    Task("4.1", "the IoU matrix", "04_boxes_and_nms", "1", "tinymask/boxes.py: box_iou"),
    Task("4.2", "greedy NMS", "04_boxes_and_nms", "1",
         "tinymask/ops/nms_cpu.py: nms, nms_kernel"),
    Task("5.1", "the anchors of one level", "05_anchors_and_rpn", "1",
         "tinymask/anchors.py: cell_anchors, grid_anchors"),
    Task("5.2", "box encode and decode", "05_anchors_and_rpn", "1",
         "tinymask/box_coder.py: BoxCoder.encode, BoxCoder.decode"),
    Task("5.3", "the matcher with low-quality matches", "05_anchors_and_rpn", "1",
         "tinymask/matching.py: Matcher.__call__, Matcher.set_low_quality_matches_"),
    Task("5.4", "the balanced sampler", "05_anchors_and_rpn", "1",
         "tinymask/matching.py: BalancedPositiveNegativeSampler.__call__"),
    Task("6.1", "bilinear interpolation of one point", "06_roi_pool_warp_align", "1",
         "tinymask/ops/roi_geometry.py: bilinear_weights"),
    Task("6.2", "one RoIAlign bin", "06_roi_pool_warp_align", "1",
         "tinymask/ops/roi_geometry.py: roi_align_geometry, sample_coordinate"),
    Task("6.3", "RoIPool's quantisation of a box and its bins", "06_roi_pool_warp_align", "1",
         "tinymask/ops/roi_geometry.py: round_half_away_from_zero, quantize_rois, "
         "roi_pool_size, roi_pool_bin_range"),
    Task("7.1", "the Fast R-CNN loss", "07_box_head", "1",
         "tinymask/losses.py: fast_rcnn_losses"),
    Task("8.1", "mask targets: the ground truth cropped to each RoI", "08_mask_head_and_loss",
         "1", "tinymask/model/roi_heads.py: crop_mask_targets", ("6.1", "6.2")),
    Task("8.2", "the mask loss, per-class sigmoid or softmax", "08_mask_head_and_loss", "2",
         "tinymask/losses.py: mask_loss"),
    Task("9.1", "one SGD step with momentum and weight decay", "09_training_the_model", "3",
         "tinymask/optim/sgd_cpu.py: sgd_update_kernel"),
    Task("10.1", "pasting a mask into the image", "10_inference_and_coco_ap", "1",
         "tinymask/postprocess.py: paste_mask"),
    Task("12.1", "keypoint targets, one heatmap cell per keypoint", "12_keypoints", "1",
         "tinymask/keypoints.py: keypoints_to_heatmap"),
    Task("12.2", "the keypoint loss, a softmax over the heatmap", "12_keypoints", "2",
         "tinymask/keypoints.py: keypoint_loss"),
)

TASKS_BY_ID = {task.id: task for task in TASKS}


def get_task(task_id: str) -> Task:
    if task_id not in TASKS_BY_ID:
        from tinymask.errors import UnknownFieldError

        raise UnknownFieldError(f"no task {task_id!r}; the tasks are {', '.join(TASKS_BY_ID)} "
                       "(tinymask course list)")
    return TASKS_BY_ID[task_id]
