"""Data for Mask R-CNN: the built-in synthetic shapes, COCO files in and out, flips, batches.

    from tinymask.data import ShapesDataset, CocoDataset, iterate_batches
    train = ShapesDataset(500, image_size=128, seed=0)        # in memory, nothing downloaded
    image, target = train[0]   # (H, W, 3) uint8; boxes (M, 4) xyxy, labels (M,), masks (M, H, W)
    val = CocoDataset("out/val.json", "out/val")               # any COCO-format dataset
    figures = FiguresDataset(100)   # stick figures: targets also hold keypoints (M, 14, 3)

Every dataset returns the same (image, target) format, so training and evaluation code never
asks which one it has.
"""

from tinymask.data.augment import horizontal_flip, iterate_batches, random_horizontal_flip
from tinymask.data.coco import (
    CocoDataset,
    DataError,
    coco_dict_from_dataset,
    decode_segmentation,
    encode_mask,
    write_coco,
)
from tinymask.data.figures import FiguresDataset, generate_figures, make_figures_splits
from tinymask.data.shapes import (
    ShapesDataset,
    generate_shapes,
    make_shapes_splits,
    masks_to_boxes,
    split_seeds,
)

__all__ = [
    "CocoDataset",
    "DataError",
    "FiguresDataset",
    "ShapesDataset",
    "coco_dict_from_dataset",
    "decode_segmentation",
    "encode_mask",
    "generate_figures",
    "generate_shapes",
    "horizontal_flip",
    "iterate_batches",
    "make_figures_splits",
    "make_shapes_splits",
    "masks_to_boxes",
    "random_horizontal_flip",
    "split_seeds",
    "write_coco",
]
