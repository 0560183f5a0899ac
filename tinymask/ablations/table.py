"""The paper's ablations (Table 2a-2e, Table 3, Table 4), each a list of config changes.

An ablation asks one question of the paper ("does RoIAlign beat RoIPool?"). Its variants
are the rows of the paper's table: each is a few ``MaskRCNNConfig`` field changes (never a
fork of the code) and the numbers the paper reports for that row (mask AP unless marked
``_bb``, box AP, or ``_kp``, keypoint AP), copied from its Tables 2, 3 and 4 as given in the
project's paper notes.

Scale: the paper trains ResNet-50/101 on COCO for 160k iterations on 8 GPUs; we train a
quarter-width ResNet-18/34 from scratch on 128-px synthetic shapes for minutes. The
absolute numbers are not comparable; the *directions* are what a lesson checks. Where we
stand one model in for another (ResNet-18 for ResNet-50, ResNet-34 for ResNet-101), the
variant's name says so.

How a table is trained and reported: ``tinymask.ablations.run`` and
``tinymask.ablations.report``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinymask.presets import FIGURES_DATA


@dataclass(frozen=True)
class Variant:
    name: str
    changes: dict  # MaskRCNNConfig fields
    paper: dict  # the paper's row: {"AP": .., "AP50": .., "AP75": ..} (+ "_bb" box AP)


@dataclass(frozen=True)
class Ablation:
    name: str  # the CLI name
    table: str  # the paper's table
    question: str
    base: dict  # changes shared by every variant
    variants: tuple
    metrics: tuple = ("segm",)  # "segm" (mask AP), "bbox" (box AP), "keypoints" (AP^kp)
    finding: str = ""  # what the paper concluded
    first_seed: int = 0  # this table's seeds are first_seed, first_seed + 1, ... (see below)
    dataset: str = "shapes"  # the built-in data it trains on: "shapes" or "figures"
    image_scale: int = 1  # images (and the objects in them) this many times the preset's
    train: dict = field(default_factory=dict)  # TrainConfig changes for every variant
    steps_factor: int = 1  # trains this many times the preset's steps (smoke included)

    def data_options(self) -> dict:
        """The built-in data's options (``ShapesDataset`` / ``FiguresDataset`` arguments) it
        trains on under every preset; a preset's image counts and size come on top."""
        return dict(BUILT_IN_DATA[self.dataset])

    def default_seeds(self, count: int) -> list[int]:
        return list(range(self.first_seed, self.first_seed + count))


# Most tables have a row that is the reference model (ResNet-18-FPN, RoIAlign, sigmoid, FCN
# head, with a mask branch). Trained from the same seed it would be the very same training
# in each of them, quoted as if it were several results; so each table draws its seeds from
# its own block of SEED_BLOCK, and its report names the rows it has in common with others.
SEED_BLOCK = 100


# The shapes every shapes table trains on. The generator's defaults (five classes, 5 px to
# most of the image, 1-4 per image, three kinds of background) make 80% of the objects
# smaller than 32 x 32 pixels and some of 5 px: after the minutes of a table's training the
# small model reached 5-8 mask AP there, where a 2-AP gap between RoI ops was the size of
# the spread between seeds. Measured by bench/ablation_recipe.py (800 steps, seed 0,
# RoIPool / RoIAlign (avg) mask AP; bench/RESULTS.md has each try):
#   16-51 px, 2-5 per image, gradient backgrounds, five classes:  12.2 / 14.9
#   the same with three classes (ellipse, ring, cross):           22.1 / 34.9
#   three classes, 20-64 px, 1-4 per image:                        25.9 / 29.4
# Fewer classes leave the detector less to learn in minutes; the ring and the cross stay
# (thin: half a pixel off costs them much of their IoU, where alignment matters), and so do
# small objects (below 32 x 32 px, COCO's "small", all but the largest here): on the
# larger ones the gap shrank.
SHAPES_DATA = {"min_size": 16, "max_size_fraction": 0.4, "min_objects": 2, "max_objects": 5,
               "backgrounds": ("gradient",), "classes": ("ellipse", "ring", "cross")}
# Table 4 trains on the figures of the `figures` training preset (FIGURES_DATA: why there)
BUILT_IN_DATA = {"shapes": SHAPES_DATA, "figures": FIGURES_DATA}

C4 = {"fpn": False, "single_map": "c4", "anchor_sizes": (8, 16, 32, 64, 128)}
C5 = {"fpn": False, "single_map": "c5", "anchor_sizes": (8, 16, 32, 64, 128)}

ABLATIONS = {
    # The paper samples 64 RoIs per image for C4 and 512 for FPN (Sec. 3.1): C4's head runs
    # res5 on every RoI. Here every row samples 64 (as the other tables' FPN rows), so the
    # backbones differ and the heads' training does not; a C4 training then took 3.9x an
    # FPN one in the record (lessons/results/backbone.json). Every row is clipped at a
    # gradient norm of 10: unclipped, ResNeXt-50-FPN went to NaN by step 58 at lr 0.02 in
    # the first record (ResNeXt, seed 100: finite through 150 steps clipped). Recorded at 32
    # RoIs an image in every row, every model was far weaker (ResNet-18-FPN 20.4 mask AP,
    # ResNet-34-FPN 1.0); at seed 100 ResNet-18-FPN reached 35.9 at 64 and ResNet-18-C4 9.2
    # against 4.9 (bench/RESULTS.md).
    "backbone": Ablation(
        "backbone", "2a", "Do better backbones give better masks?",
        {"box_batch_size_per_image": 64}, (
            Variant("ResNet-18-C4 (for R50-C4)", {**C4, "backbone": "resnet18_w16"},
                    {"AP": 30.3, "AP50": 51.2, "AP75": 31.5}),
            Variant("ResNet-34-C4 (for R101-C4)", {**C4, "backbone": "resnet34_w16"},
                    {"AP": 32.7, "AP50": 54.2, "AP75": 34.3}),
            Variant("ResNet-18-FPN (for R50-FPN)", {"backbone": "resnet18_w16"},
                    {"AP": 33.6, "AP50": 55.2, "AP75": 35.3}),
            Variant("ResNet-34-FPN (for R101-FPN)", {"backbone": "resnet34_w16"},
                    {"AP": 35.4, "AP50": 57.3, "AP75": 37.5}),
            Variant("ResNeXt-50-FPN (for X101-FPN)", {"backbone": "resnext50_32x4d_w16"},
                    {"AP": 36.7, "AP50": 59.5, "AP75": 38.9}),
        ), finding="deeper networks do better, FPN beats C4, ResNeXt improves on ResNet",
        train={"grad_clip": 10.0}, first_seed=100),
    "mask-loss": Ablation(
        "mask-loss", "2b", "Per-class sigmoid masks or one softmax over classes?", {}, (
            Variant("softmax (multinomial)", {"mask_loss": "softmax"},
                    {"AP": 24.8, "AP50": 44.1, "AP75": 25.1}),
            Variant("sigmoid (per class)", {"mask_loss": "sigmoid"},
                    {"AP": 30.3, "AP50": 51.2, "AP75": 31.5}),
        ), finding="decoupling masks from classification (sigmoid) gives large gains",
        first_seed=200),
    # The paper's Table 2c uses ResNet-50-C4. Our C4 head runs res5 on every sampled RoI,
    # which makes a C4 step several times slower than an FPN step on a CPU (see above); so
    # at small scale the RoI ops are compared on the FPN model. Table 2d below keeps a
    # single large-stride map.
    "roi-align": Ablation(
        "roi-align", "2c", "Does RoIAlign beat RoIPool and RoIWarp? (FPN model; paper: C4)",
        {}, (
            Variant("RoIPool (max)", {"roi_op": "pool", "roi_aggregation": "max"},
                    {"AP": 26.9, "AP50": 48.8, "AP75": 26.4}),
            Variant("RoIWarp (bilinear, max)", {"roi_op": "warp", "roi_aggregation": "max"},
                    {"AP": 27.2, "AP50": 49.2, "AP75": 27.1}),
            Variant("RoIAlign (max)", {"roi_op": "align", "roi_aggregation": "max"},
                    {"AP": 30.2, "AP50": 51.0, "AP75": 31.8}),
            Variant("RoIAlign (avg)", {"roi_op": "align", "roi_aggregation": "avg"},
                    {"AP": 30.3, "AP50": 51.2, "AP75": 31.5}),
        ), finding="alignment, not bilinear sampling alone, gives ~3 AP and ~5 AP75",
        first_seed=0),  # the main job: seeds 0, 1, 2, ...
    "large-stride": Ablation(
        "large-stride", "2d", "How much worse is RoIPool on stride-32 features?", dict(C5), (
            Variant("RoIPool", {"roi_op": "pool", "roi_aggregation": "max"},
                    {"AP": 23.6, "AP50": 46.5, "AP75": 21.6,
                     "AP_bb": 28.2, "AP50_bb": 52.7, "AP75_bb": 26.9}),
            Variant("RoIAlign", {"roi_op": "align", "roi_aggregation": "avg"},
                    {"AP": 30.9, "AP50": 51.8, "AP75": 32.1,
                     "AP_bb": 34.0, "AP50_bb": 55.3, "AP75_bb": 36.4}),
        ), metrics=("segm", "bbox"),
        finding="at stride 32 RoIAlign's gain grows: +7.3 mask AP, +5.8 box AP",
        # at 128 px the stride-32 map is 4 x 4 cells and both rows stayed near the floor
        # (0.5 and 0.7 mask AP in the first record); at 256 px it is 8 x 8. The objects
        # scale with the image (32 px and up, at most 0.4 of it): the same scenes at twice
        # the resolution, each still about one to three cells across
        image_scale=2,
        first_seed=300),
    "mask-head": Ablation(
        "mask-head", "2e", "A fully convolutional mask head or fully connected layers?", {}, (
            Variant("MLP fc 1024-1024", {"mask_head": "mlp", "mask_mlp_layers": 2},
                    {"AP": 31.5, "AP50": 53.7, "AP75": 32.8}),
            Variant("MLP fc 1024-1024-1024", {"mask_head": "mlp", "mask_mlp_layers": 3},
                    {"AP": 31.5, "AP50": 54.0, "AP75": 32.6}),
            Variant("FCN (4 convs + deconv)", {"mask_head": "fcn"},
                    {"AP": 33.6, "AP50": 55.2, "AP75": 35.3}),
        ), finding="FCNs keep the spatial layout and improve masks",
        first_seed=400),
    "multitask": Ablation(
        "multitask", "3", "Does training masks too help the boxes?", {}, (
            Variant("Faster R-CNN, RoIAlign", {"mask_branch": False},
                    {"AP_bb": 37.3, "AP50_bb": 59.6, "AP75_bb": 40.3}),
            Variant("Mask R-CNN", {"mask_branch": True},
                    {"AP_bb": 38.2, "AP50_bb": 60.3, "AP75_bb": 41.7}),
        ), metrics=("bbox",), finding="multi-task training adds ~0.9 box AP",
        first_seed=500),
    # Table 4 (paper §5): R50-FPN on COCO keypoints, test-dev; ours: the stick figures
    "keypoints": Ablation(
        "keypoints", "4", "Does a mask branch help keypoint detection?",
        # 128 RoIs per image (the standard preset samples 64): the keypoint branch learns
        # from the positive ones only, with one or two figures an image
        {"keypoint_branch": True, "box_batch_size_per_image": 128}, (
            Variant("keypoint-only", {"mask_branch": False},
                    {"AP_kp": 62.7, "AP50_kp": 87.0, "AP75_kp": 68.4}),
            Variant("keypoint & mask", {"mask_branch": True},
                    {"AP_kp": 63.1, "AP50_kp": 87.3, "AP75_kp": 68.7}),
        ), metrics=("keypoints",), dataset="figures",
        # as the figures preset (tinymask.presets): at the shapes' lr 0.02 a keypoint model
        # went to NaN by step 60 unclipped; clipped at 10 and 800 steps, keypoint & mask
        # stayed near the floor (4.8 keypoint AP, seed 600). Unclipped probes at 1600 steps:
        # NaN at lr 0.02, keypoint AP 31.2 at 0.01 (seed 600; bench/RESULTS.md)
        train={"grad_clip": 10.0, "lr": 0.01}, steps_factor=2,
        finding="the mask branch adds ~0.4 keypoint AP: the same model does both",
        first_seed=600),
}
