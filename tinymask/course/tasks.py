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
    Task("2.1", "the FPN's top-down pathway", "02_resnet_and_fpn", "1",
         "tinymask/model/fpn.py: FPN.forward"),
    Task("3.1", "a horizontal flip of an image and its target", "03_data", "1",
         "tinymask/data/augment.py: horizontal_flip"),
    Task("4.1", "the IoU matrix", "04_boxes_and_nms", "1", "tinymask/boxes.py: box_iou"),
    Task("4.2", "greedy NMS", "04_boxes_and_nms", "1",
         "tinymask/ops/nms_cpu.py: nms, nms_kernel"),
    Task("5.2", "box encode and decode", "05_anchors_and_rpn", "1",
         "tinymask/box_coder.py: BoxCoder.encode, BoxCoder.decode"),
    Task("5.3", "the matcher with low-quality matches", "05_anchors_and_rpn", "1",
         "tinymask/matching.py: Matcher.__call__, Matcher.set_low_quality_matches_"),
    Task("5.4", "the balanced sampler", "05_anchors_and_rpn", "1",
         "tinymask/matching.py: BalancedPositiveNegativeSampler.__call__"),
    Task("7.1", "the Fast R-CNN loss", "07_box_head", "1",
         "tinymask/losses.py: fast_rcnn_losses"),
    Task("8.2", "the mask loss, per-class sigmoid or softmax", "08_mask_head_and_loss", "1",
         "tinymask/losses.py: mask_loss"),
    Task("10.1", "pasting a mask into the image", "10_inference_and_coco_ap", "1",
         "tinymask/postprocess.py: paste_mask"),
)

TASKS_BY_ID = {task.id: task for task in TASKS}


def get_task(task_id: str) -> Task:
    if task_id not in TASKS_BY_ID:
        raise KeyError(f"no task {task_id!r}; the tasks are {', '.join(TASKS_BY_ID)} "
                       "(tinymask course list)")
    return TASKS_BY_ID[task_id]
