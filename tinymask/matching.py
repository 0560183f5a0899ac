"""Matching predictions to ground truth, and sampling a balanced training batch (REFERENCE.md §4).

Training the RPN and the box head needs a target for every anchor or proposal: which
ground-truth box it should predict, or "background", or "ignore". The ``Matcher`` decides
this from IoU; the ``BalancedPositiveNegativeSampler`` then picks a fixed number of them per
image with a cap on positives, because background outnumbers objects by hundreds to one and
would otherwise swamp the loss (Faster R-CNN §3.1.3, Fast R-CNN §2.3).

Shape letters:
    M   ground-truth boxes in one image
    N   predictions in one image (anchors for the RPN, proposals for the box head)

Naming: ``gt_*`` for ground truth; ``matched_idxs[n]`` is the index of the ground-truth box
matched to prediction n, or a negative sentinel; ``labels[n]`` is >= 1 for foreground, 0 for
background and -1 for "ignore".
"""

from __future__ import annotations

from tinymask.backend import array_module


class Matcher:
    """Assign each prediction its best ground-truth box, or a sentinel, by IoU.

    torchvision's ``det_utils.Matcher``: for each prediction take the ground truth of highest
    IoU; if that IoU is

    * ``>= high_threshold``: matched, ``matched_idxs[n]`` is that ground truth's index;
    * ``< low_threshold``: ``BELOW_LOW_THRESHOLD`` (-1), background;
    * in between: ``BETWEEN_THRESHOLDS`` (-2), ignored by the loss.

    RPN: ``Matcher(0.7, 0.3, allow_low_quality_matches=True)``; box head:
    ``Matcher(0.5, 0.5, False)``, where nothing falls in between.

    Low-quality matches (Faster R-CNN §3.1.2, "the anchor with the highest IoU"): a small or
    thin object may have no anchor at 0.7, so for each ground truth, every prediction whose
    IoU ties that ground truth's best IoU is taken back from background or ignore and
    matched. Ties are kept on purpose: several anchors often share the exact best IoU.
    Two details of torchvision (and Detectron2) kept here: the prediction is matched to its
    own best ground truth, which is the tied one unless it overlaps another ground truth even
    more; and a ground truth that overlaps nothing has best IoU 0, which every prediction
    ties, so all predictions come back matched. Boxes inside the image always overlap
    some anchor, so the second case needs a ground truth outside the image.
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold, low_threshold, allow_low_quality_matches=False):
        if low_threshold > high_threshold:
            raise ValueError(
                f"low_threshold ({low_threshold}) must not exceed high_threshold ({high_threshold})"
            )
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix):
        """``(M, N)`` IoU of ground truth x predictions -> ``(N,)`` int64 ``matched_idxs``.

        Empty inputs: with no ground truth (M = 0) every prediction is background,
        ``BELOW_LOW_THRESHOLD``, so an image without objects still trains the classifier on
        "nothing here" (REFERENCE.md §4); with no predictions (N = 0) the result is empty.
        (torchvision raises on both and leaves the no-object case to its callers.)
        """
        shape = getattr(match_quality_matrix, "shape", None)
        if shape is None or len(shape) != 2:
            raise ValueError(
                "match_quality_matrix must be 2-d, (ground truths M, predictions N), "
                f"got shape {shape}"
            )
        xpm = array_module(match_quality_matrix)
        num_gt, num_predictions = shape
        if num_gt == 0:
            return xpm.full((num_predictions,), self.BELOW_LOW_THRESHOLD, dtype=xpm.int64)
        if num_predictions == 0:
            return xpm.zeros((0,), dtype=xpm.int64)

        # --- task 5.3: the matcher with low-quality matches ---
        # Each prediction's best ground truth (the first one, on a tie) and its IoU.
        matches = xpm.argmax(match_quality_matrix, axis=0).astype(xpm.int64)  # (N,)
        matched_vals = xpm.max(match_quality_matrix, axis=0)  # (N,)
        all_matches = matches.copy() if self.allow_low_quality_matches else None

        below_low_threshold = matched_vals < self.low_threshold
        between_thresholds = (matched_vals >= self.low_threshold) & (
            matched_vals < self.high_threshold
        )
        matches[below_low_threshold] = self.BELOW_LOW_THRESHOLD
        matches[between_thresholds] = self.BETWEEN_THRESHOLDS

        if self.allow_low_quality_matches:
            self.set_low_quality_matches_(matches, all_matches, match_quality_matrix)
        return matches
        # --- end task ---

    @staticmethod
    def set_low_quality_matches_(matches, all_matches, match_quality_matrix):
        """Restore, in place, the match of every prediction that ties a ground truth's best IoU.

        ``matches`` and ``all_matches`` are ``(N,)``: after and before thresholding.
        """
        # --- task 5.3: the matcher with low-quality matches ---
        highest_quality_foreach_gt = match_quality_matrix.max(axis=1)  # (M,)
        # (M, N) True where prediction n reaches ground truth m's best IoU; any m will do.
        is_best_for_some_gt = (match_quality_matrix == highest_quality_foreach_gt[:, None]).any(
            axis=0
        )  # (N,)
        matches[is_best_for_some_gt] = all_matches[is_best_for_some_gt]
        # --- end task ---


class BalancedPositiveNegativeSampler:
    """Pick a training batch per image with at most a fixed fraction of foreground.

    ``batch_size_per_image`` predictions are sampled per image, of which at most
    ``int(batch_size_per_image * positive_fraction)`` foreground; background fills the rest
    (when there is enough of it). RPN: 256 and 0.5; box head: 512 and 0.25, the 1:3 of
    Fast R-CNN (REFERENCE.md §4). torchvision's ``BalancedPositiveNegativeSampler``, with the
    random draws taken from a ``numpy.random.Generator`` that the caller passes in, so that
    one seed fixes every sample of a training run on either backend.
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float):
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
        self.batch_size_per_image = int(batch_size_per_image)
        self.positive_fraction = float(positive_fraction)

    def __call__(self, labels_per_image, generator):
        """Sample each image's labels; returns ``(positive_masks, negative_masks)``.

        labels_per_image:  a list with one ``(N_i,)`` integer array per image: >= 1
                           foreground, 0 background, -1 ignore (never sampled).
        generator:         a ``numpy.random.Generator``, e.g. ``numpy.random.default_rng(0)``.

        Each returned list holds one ``(N_i,)`` boolean mask per image, on the labels'
        backend; ``xp.flatnonzero(mask)`` gives the indices. The two masks never overlap.
        """
        positive_masks, negative_masks = [], []
        for labels in labels_per_image:
            xpm = array_module(labels)
            positive = xpm.flatnonzero(labels >= 1)
            negative = xpm.flatnonzero(labels == 0)

            # --- task 5.4: the balanced sampler ---
            num_pos = min(int(self.batch_size_per_image * self.positive_fraction), positive.size)
            num_neg = min(self.batch_size_per_image - num_pos, negative.size)

            # The permutation is drawn on the host, so a seed gives the same sample on the GPU.
            pos_pick = xpm.asarray(generator.permutation(positive.size)[:num_pos])
            neg_pick = xpm.asarray(generator.permutation(negative.size)[:num_neg])

            positive_mask = xpm.zeros(labels.shape, dtype=bool)
            negative_mask = xpm.zeros(labels.shape, dtype=bool)
            positive_mask[positive[pos_pick]] = True
            negative_mask[negative[neg_pick]] = True
            # --- end task ---
            positive_masks.append(positive_mask)
            negative_masks.append(negative_mask)
        return positive_masks, negative_masks
