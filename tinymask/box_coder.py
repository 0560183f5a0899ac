"""Box coding: boxes as small offsets from reference boxes (REFERENCE.md §3).

The RPN and the box head do not predict corners. They predict how to move and stretch a
reference box (an anchor, or a proposal) onto the object: a shift of the centre in units of
the reference's size and a log-scale change of width and height (Faster R-CNN, Eqn. 2;
R-CNN, Appendix C). These "deltas" are roughly zero-mean and unit-scale whatever the size of
the box, which is what a regression loss wants.

Shape letters:
    N   number of boxes (anchors or proposals), each with one reference box
    K   number of classes with their own deltas (the box head predicts 4 numbers per class)

Conventions: boxes are xyxy (x1, y1, x2, y2); ``w = x2 - x1`` and ``cx = x1 + 0.5 * w`` with
no +1, exactly as torchvision's ``det_utils.BoxCoder``. Deltas are rows ``(dx, dy, dw, dh)``.
"""

from __future__ import annotations

import math

from tinymask.backend import array_module
from tinymask.boxes import check_boxes_shape

# Decoding exponentiates dw, dh; an untrained head can predict large values, and exp(10)
# would turn a 16-pixel anchor into a box 350,000 pixels wide. Clamping dw at log(1000/16)
# caps the growth at 1000/16 = 62.5 times the reference size.
DEFAULT_BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _widths_heights_centres(boxes):
    """``(N, 4)`` xyxy -> widths, heights, centre x, centre y, each ``(N,)``."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    centre_x = boxes[:, 0] + 0.5 * widths
    centre_y = boxes[:, 1] + 0.5 * heights
    return widths, heights, centre_x, centre_y


class BoxCoder:
    """Encode boxes as deltas from reference boxes, and decode deltas back to boxes.

    ``weights = (wx, wy, ww, wh)`` scale the four deltas: ``(1, 1, 1, 1)`` for the RPN and
    ``(10, 10, 5, 5)`` for the box head, whose targets are small (proposals already sit near
    the objects) and are scaled up to about unit variance. Parameter-free: a callable pair of
    functions with their configuration, not a Module.
    """

    def __init__(self, weights=(1.0, 1.0, 1.0, 1.0), bbox_xform_clip=DEFAULT_BBOX_XFORM_CLIP):
        if len(weights) != 4:
            raise ValueError(f"weights must be four numbers (wx, wy, ww, wh), got {weights!r}")
        self.weights = tuple(float(weight) for weight in weights)
        self.bbox_xform_clip = float(bbox_xform_clip)

    def encode(self, reference_boxes, proposals):
        """Deltas that move each proposal onto its matched box, ``(N, 4), (N, 4) -> (N, 4)``.

        ``reference_boxes[n]`` is the target (the ground-truth box matched to proposal n) and
        ``proposals[n]`` the box it is measured from (an anchor or a proposal); the argument
        order is torchvision's. With ``p`` the proposal and ``g`` the target (§3)::

            dx = wx * (g_cx - p_cx) / p_w        dw = ww * log(g_w / p_w)
            dy = wy * (g_cy - p_cy) / p_h        dh = wh * log(g_h / p_h)
        """
        check_boxes_shape(reference_boxes, "reference_boxes")
        check_boxes_shape(proposals, "proposals")
        if reference_boxes.shape[0] != proposals.shape[0]:
            raise ValueError(
                "encode pairs each reference box with one proposal, got "
                f"{reference_boxes.shape[0]} reference boxes and {proposals.shape[0]} proposals"
            )
        xpm = array_module(reference_boxes, proposals)
        wx, wy, ww, wh = self.weights

        # --- task 5.2: box encode and decode ---
        proposal_w, proposal_h, proposal_cx, proposal_cy = _widths_heights_centres(proposals)
        gt_w, gt_h, gt_cx, gt_cy = _widths_heights_centres(reference_boxes)

        dx = wx * (gt_cx - proposal_cx) / proposal_w
        dy = wy * (gt_cy - proposal_cy) / proposal_h
        dw = ww * xpm.log(gt_w / proposal_w)
        dh = wh * xpm.log(gt_h / proposal_h)
        return xpm.stack([dx, dy, dw, dh], axis=1)  # (N, 4)
        # --- end task ---

    def decode(self, rel_codes, boxes):
        """Boxes obtained by applying deltas to reference boxes: ``(N, 4K), (N, 4) -> (N, 4K)``.

        ``rel_codes`` holds K groups of ``(dx, dy, dw, dh)`` per row: K = 1 for the RPN, and
        K = number of classes for the box head's class-specific deltas, all applied to the
        same reference box ``boxes[n]``. The result has the layout of ``rel_codes``, with each
        group of four replaced by ``(x1, y1, x2, y2)``; reshape to ``(N, K, 4)`` to index a
        class. Inverse of ``encode`` (§3): divide by the weights, clamp dw and dh at
        ``bbox_xform_clip``, then turn centre and size back into corners.
        """
        check_boxes_shape(boxes, "boxes")
        codes_shape = getattr(rel_codes, "shape", None)
        if codes_shape is None or len(codes_shape) != 2 or codes_shape[1] % 4 != 0:
            raise ValueError(f"rel_codes must have shape (N, 4*K), got shape {codes_shape}")
        if codes_shape[0] != boxes.shape[0]:
            raise ValueError(
                "decode applies row n of rel_codes to boxes[n], got "
                f"{codes_shape[0]} rows of rel_codes and {boxes.shape[0]} boxes"
            )
        xpm = array_module(rel_codes, boxes)
        wx, wy, ww, wh = self.weights
        # Compute in the dtype of the codes: float32 anchors with float64 codes give float64.
        boxes = boxes.astype(rel_codes.dtype, copy=False)

        # --- task 5.2: box encode and decode ---
        widths, heights, centre_x, centre_y = _widths_heights_centres(boxes)  # each (N,)

        # Every 4th column from an offset picks one of the four deltas for all K classes.
        dx = rel_codes[:, 0::4] / wx  # (N, K)
        dy = rel_codes[:, 1::4] / wy
        dw = xpm.minimum(rel_codes[:, 2::4] / ww, self.bbox_xform_clip)
        dh = xpm.minimum(rel_codes[:, 3::4] / wh, self.bbox_xform_clip)

        pred_centre_x = dx * widths[:, None] + centre_x[:, None]  # (N, K)
        pred_centre_y = dy * heights[:, None] + centre_y[:, None]
        pred_w = xpm.exp(dw) * widths[:, None]
        pred_h = xpm.exp(dh) * heights[:, None]

        pred_boxes = xpm.stack(
            [
                pred_centre_x - 0.5 * pred_w,
                pred_centre_y - 0.5 * pred_h,
                pred_centre_x + 0.5 * pred_w,
                pred_centre_y + 0.5 * pred_h,
            ],
            axis=2,
        )  # (N, K, 4)
        return pred_boxes.reshape(codes_shape)  # (N, 4K)
        # --- end task ---
