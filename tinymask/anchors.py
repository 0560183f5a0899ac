"""Anchors: the fixed reference boxes the RPN scores and refines (REFERENCE.md §2).

At every position of a feature map the RPN considers A reference boxes ("anchors") of a few
sizes and shapes, all centred on that position (Faster R-CNN §3.1.1). With FPN each level
gets one size, matched to its stride, so small objects are found on fine maps and large ones
on coarse maps (FPN §4.1).

Shape letters:
    A        anchors per position (sizes x aspect ratios on that level)
    Hi, Wi   height and width of feature level i
    R        total anchors over all levels, sum over i of Hi * Wi * A

Conventions, all torchvision's ``AnchorGenerator``:
    * aspect ratio = height / width; a ratio-0.5 anchor is wide and flat.
    * Cell anchors are centred on (0, 0) and rounded to integers.
    * Anchor centres sit at ``(j * stride_x, i * stride_y)`` for feature cell ``(i, j)``:
      the top-left corner of the cell, with no half-stride offset.
    * Flattened order is ``[Hi, Wi, A]`` per level, levels concatenated, which is the order
      the RPN head's outputs take once permuted from ``(N, A*k, H, W)`` to ``(N, H, W, A, k)``.
    * Boxes are xyxy in input-image pixels.
"""

from __future__ import annotations

import numpy

from tinymask.backend import array_module, to_backend


def cell_anchors(sizes, aspect_ratios, dtype=numpy.float32):
    """The A anchors of one feature level centred on (0, 0): ``(A, 4)`` xyxy, on the host.

    Each anchor has area ``size**2`` (before rounding) and ``height / width = ratio``: with
    ``h_ratio = sqrt(ratio)`` and ``w_ratio = 1 / h_ratio`` its width is ``w_ratio * size``
    and its height ``h_ratio * size``. The corners are rounded to integers as torchvision
    does (size 32, ratio 0.5 gives ``[-23, -11, 23, 11]``, a 46 x 22 box).

    Order is ratio-major, torchvision's: index ``ratio_index * len(sizes) + size_index``.
    (Detectron2 goes size-major and does not round; weights trained in one order do not
    transfer to the other.)
    """
    sizes = numpy.asarray(sizes, dtype=numpy.float64)  # (S,)
    aspect_ratios = numpy.asarray(aspect_ratios, dtype=numpy.float64)  # (Q,)
    # --- task 5.1: the anchors of one level ---
    h_ratios = numpy.sqrt(aspect_ratios)
    w_ratios = 1.0 / h_ratios
    widths = (w_ratios[:, None] * sizes[None, :]).reshape(-1)  # (Q*S,) = (A,)
    heights = (h_ratios[:, None] * sizes[None, :]).reshape(-1)
    anchors = numpy.stack([-widths, -heights, widths, heights], axis=1) / 2  # (A, 4)
    return numpy.round(anchors).astype(dtype)
    # --- end task ---


def _stride_pair(stride):
    """``stride`` as ``(stride_y, stride_x)``: an int means the same stride both ways."""
    if numpy.ndim(stride) == 0:
        stride_y = stride_x = stride
    else:
        stride_y, stride_x = stride
    # Python floats, so that multiplying a float32 grid keeps it float32.
    return float(stride_y), float(stride_x)


def grid_anchors(feature_shapes, strides, cell_anchors_per_level):
    """Place each level's cell anchors at every position of its feature map.

    feature_shapes:          one ``(Hi, Wi)`` per level.
    strides:                 one per level, pixels of input image per feature cell, an int or
                             ``(stride_y, stride_x)``.
    cell_anchors_per_level:  one ``(A, 4)`` array per level (see ``cell_anchors``).

    Returns ``(R, 4)`` xyxy anchors in ``[Hi, Wi, A]`` order, levels concatenated, on the
    backend of the cell anchors.
    """
    if not (len(feature_shapes) == len(strides) == len(cell_anchors_per_level)):
        raise ValueError(
            "need one feature shape, one stride and one set of cell anchors per level, got "
            f"{len(feature_shapes)} shapes, {len(strides)} strides and "
            f"{len(cell_anchors_per_level)} sets of cell anchors"
        )
    if not feature_shapes:
        raise ValueError("grid_anchors needs at least one feature level")
    xpm = array_module(*cell_anchors_per_level)
    anchors_per_level = []
    for (height, width), stride, base_anchors in zip(
        feature_shapes, strides, cell_anchors_per_level, strict=True
    ):
        stride_y, stride_x = _stride_pair(stride)
        # --- task 5.1: the anchors of one level ---
        shifts_x = xpm.arange(width, dtype=base_anchors.dtype) * stride_x  # (Wi,)
        shifts_y = xpm.arange(height, dtype=base_anchors.dtype) * stride_y  # (Hi,)
        shift_y, shift_x = xpm.meshgrid(shifts_y, shifts_x, indexing="ij")  # (Hi, Wi)
        shifts = xpm.stack([shift_x, shift_y, shift_x, shift_y], axis=-1)  # (Hi, Wi, 4)
        level_anchors = shifts[:, :, None, :] + base_anchors[None, None, :, :]  # (Hi, Wi, A, 4)
        anchors_per_level.append(level_anchors.reshape(-1, 4))  # (Hi*Wi*A, 4)
        # --- end task ---
    return xpm.concatenate(anchors_per_level, axis=0)  # (R, 4)


class AnchorGenerator:
    """The anchor configuration, and the callable that lays anchors over feature maps.

    sizes:          one tuple of anchor sizes (sqrt of area, in pixels) per level.
    aspect_ratios:  height/width ratios, the same on every level.
    strides:        one per level: input pixels per feature cell, an int or (stride_y, stride_x).
    strides_from_image_size: False uses ``strides`` as given (Detectron2). True infers each
                    level's stride per axis as ``image_size // feature_size`` from the padded
                    image size passed at call time (torchvision). The two differ on P6 when
                    the padded side is not a multiple of 64: an 800-pixel side gives P6 13
                    cells and a stride of 61: its last row of anchors is centred on 732,
                    not 768.

    ``AnchorGenerator.fpn()`` and ``AnchorGenerator.c4()`` build the two configurations of
    the paper (REFERENCE.md §2).
    """

    def __init__(
        self,
        sizes=((32,), (64,), (128,), (256,), (512,)),  # FPN: one size per level, P2..P6
        aspect_ratios=(0.5, 1.0, 2.0),  # height / width, wide to tall
        strides=(4, 8, 16, 32, 64),  # input pixels per cell of P2..P6
        strides_from_image_size=False,
    ):
        if len(sizes) != len(strides):
            raise ValueError(
                f"need one stride per level: got {len(sizes)} levels of sizes {sizes} "
                f"and {len(strides)} strides {strides}"
            )
        self.sizes = tuple(tuple(level_sizes) for level_sizes in sizes)
        self.aspect_ratios = tuple(aspect_ratios)
        self.strides = tuple(strides)
        self.strides_from_image_size = strides_from_image_size

    @classmethod
    def fpn(cls):
        """FPN: one size per level, 32..512 on P2..P6 (strides 4..64), 3 ratios: A = 3."""
        return cls(
            sizes=((32,), (64,), (128,), (256,), (512,)),
            aspect_ratios=(0.5, 1.0, 2.0),
            strides=(4, 8, 16, 32, 64),
        )

    @classmethod
    def c4(cls):
        """C4: all five sizes on the single stride-16 map, 5 sizes x 3 ratios: A = 15."""
        return cls(sizes=((32, 64, 128, 256, 512),), aspect_ratios=(0.5, 1.0, 2.0), strides=(16,))

    def num_anchors_per_location(self):
        """A for each level: the RPN head predicts this many objectness logits per cell."""
        return [len(level_sizes) * len(self.aspect_ratios) for level_sizes in self.sizes]

    def cell_anchors(self, dtype=numpy.float32):
        """The ``(A, 4)`` cell anchors of every level, on the host."""
        return [cell_anchors(level_sizes, self.aspect_ratios, dtype) for level_sizes in self.sizes]

    def level_strides(self, feature_shapes, image_size=None):
        """The stride of each level: the given ones, or (``strides_from_image_size``)
        ``(image_h // Hi, image_w // Wi)`` of the padded ``image_size`` ``(H, W)``."""
        if not self.strides_from_image_size:
            return self.strides
        if image_size is None:
            raise ValueError("this generator infers its strides from the image: call it with "
                             "image_size=(H, W), the padded batch's height and width")
        image_h, image_w = image_size
        return tuple((image_h // height, image_w // width) for height, width in feature_shapes)

    def __call__(self, feature_shapes, dtype=numpy.float32, image_size=None):
        """All anchors for feature maps of the given ``(Hi, Wi)`` shapes: ``(R, 4)`` xyxy.
        ``image_size``: the padded batch's ``(H, W)``, needed when the strides are inferred.

        The anchors are created on the current backend (``tinymask.set_backend``), since they
        are made from nothing rather than from an input array.
        """
        if len(feature_shapes) != len(self.sizes):
            raise ValueError(
                f"this generator has {len(self.sizes)} levels but got "
                f"{len(feature_shapes)} feature shapes: {list(feature_shapes)}"
            )
        base_anchors = [to_backend(anchors) for anchors in self.cell_anchors(dtype)]
        strides = self.level_strides(feature_shapes, image_size)
        return grid_anchors(feature_shapes, strides, base_anchors)
