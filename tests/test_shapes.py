"""The synthetic shapes dataset: determinism, occlusion, tight boxes, variety, files on disk."""

import time

import numpy
import pytest

from tinymask.data import (
    CocoDataset,
    ShapesDataset,
    generate_shapes,
    make_shapes_splits,
    masks_to_boxes,
    split_seeds,
)
from tinymask.data import shapes as shapes_module
from tinymask.data.shapes import visible_parts


def assert_items_equal(item_a, item_b):
    image_a, target_a = item_a
    image_b, target_b = item_b
    assert image_a.tobytes() == image_b.tobytes()
    for key in ("boxes", "labels", "masks"):
        assert target_a[key].dtype == target_b[key].dtype
        assert target_a[key].tobytes() == target_b[key].tobytes()
    assert target_a["image_id"] == target_b["image_id"]


def test_same_seed_gives_the_same_bytes():
    first = ShapesDataset(6, image_size=48, seed=3)
    second = ShapesDataset(6, image_size=48, seed=3)
    for index in range(6):
        assert_items_equal(first[index], second[index])


def test_a_kept_item_is_the_drawn_one_and_handed_out_as_a_copy():
    kept = ShapesDataset(4, image_size=48, seed=3)
    drawn = ShapesDataset(4, image_size=48, seed=3, cache_megabytes=0)
    first = kept[2]
    first[0][:] = 0  # the caller changes what it got ...
    first[1]["masks"][:] = 0
    first[1]["boxes"][:] = -1
    assert_items_equal(kept[2], drawn[2])  # ... and the next draw is unchanged
    assert 2 in kept._cache and not drawn._cache


def test_the_kept_items_stay_within_their_budget():
    image, target = ShapesDataset(1, image_size=48, seed=3, cache_megabytes=0)[0]
    one_item = (image.nbytes + target["masks"].nbytes) / 2**20
    dataset = ShapesDataset(20, image_size=48, seed=3, cache_megabytes=2.5 * one_item)
    for index in range(20):
        dataset[index]
    assert 0 < len(dataset._cache) < 20
    assert dataset._cached_bytes <= dataset.cache_bytes


def test_item_depends_only_on_seed_and_index():
    alone = ShapesDataset(40, image_size=48, seed=5)[37]
    longer = ShapesDataset(100, image_size=48, seed=5)
    for index in (3, 99, 12):  # other items drawn first must not shift the random stream
        longer[index]
    assert_items_equal(alone, longer[37])
    assert_items_equal(longer[-1], longer[99])
    other_seed = ShapesDataset(40, image_size=48, seed=6)[37]
    assert alone[0].tobytes() != other_seed[0].tobytes()


def test_target_format():
    dataset = ShapesDataset(8, image_size=(40, 56), seed=1, max_objects=5)
    assert len(dataset) == 8
    assert dataset.num_classes == len(dataset.class_names) == 6
    assert dataset.class_names[0] == "background"
    for index in range(len(dataset)):
        image, target = dataset[index]
        count = len(target["labels"])
        assert image.shape == (40, 56, 3) and image.dtype == numpy.uint8
        assert target["boxes"].shape == (count, 4) and target["boxes"].dtype == numpy.float32
        assert target["labels"].dtype == numpy.int64
        assert target["masks"].shape == (count, 40, 56) and target["masks"].dtype == numpy.uint8
        assert set(numpy.unique(target["masks"])) <= {0, 1}
        assert ((target["labels"] >= 1) & (target["labels"] <= 5)).all()
        assert target["image_id"] == index + 1
        assert 1 <= count <= 5
    with pytest.raises(IndexError):
        dataset[8]


def tight_box_slow(mask):
    """The box read off pixel coordinates: (first col, first row, last col + 1, last row + 1)."""
    rows, cols = numpy.nonzero(mask)
    return [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


def test_visible_masks_do_not_overlap_and_boxes_are_tight():
    dataset = ShapesDataset(60, image_size=64, seed=2, min_objects=3, max_objects=6)
    for index in range(len(dataset)):
        image, target = dataset[index]
        masks = target["masks"]
        assert masks.sum(axis=0).max() <= 1  # each pixel belongs to at most one instance
        for box, mask in zip(target["boxes"], masks):
            assert mask.sum() >= dataset.min_visible_pixels
            numpy.testing.assert_array_equal(box, tight_box_slow(mask))


def test_masks_are_the_painted_visible_parts(monkeypatch):
    """Occluded shapes are cut to what shows, hidden ones dropped, and the image agrees."""
    calls = []
    original = shapes_module.visible_parts

    def recording_visible_parts(masks, *args):
        visible = original(masks, *args)
        calls.append((masks, visible))
        return visible

    monkeypatch.setattr(shapes_module, "visible_parts", recording_visible_parts)
    dataset = ShapesDataset(40, image_size=64, seed=2, min_objects=3, max_objects=6,
                            noise_std=0.0)
    reduced = dropped = 0
    for index in range(len(dataset)):
        image, target = dataset[index]
        whole_masks, visible = calls[-1]  # the last call decided this image
        kept = [part for part in visible if part is not None]
        numpy.testing.assert_array_equal(target["masks"], numpy.array(kept, dtype=numpy.uint8)
                                         .reshape(-1, 64, 64))
        reduced += sum(part is not None and part.sum() < whole.sum()
                       for whole, part in zip(whole_masks, visible))
        dropped += sum(part is None for part in visible)
        # without noise each instance is one flat colour over exactly its visible mask
        colours = [numpy.unique(image[mask.astype(bool)], axis=0) for mask in target["masks"]]
        assert all(len(colour) == 1 for colour in colours)
    assert reduced > 10 and dropped > 0


def test_visible_parts_hand_table():
    def square(x1, y1, x2, y2):
        mask = numpy.zeros((10, 10), dtype=bool)
        mask[y1:y2, x1:x2] = True
        return mask

    bottom = square(0, 0, 4, 4)  # 16 pixels
    middle = square(2, 2, 6, 6)  # 16 pixels, 12 of them under `top`
    top = square(3, 2, 9, 9)
    visible = visible_parts([bottom, middle, top], min_visible_fraction=0.3, min_visible_pixels=1)
    numpy.testing.assert_array_equal(visible[2], top)
    # middle keeps 4 of 16 pixels (25% < 30%): dropped, and not painted, so it hides nothing:
    # bottom loses only the 2 pixels that `top` covers, not the 4 that `middle` would take
    assert visible[1] is None
    numpy.testing.assert_array_equal(visible[0], bottom & ~top)
    assert visible[0].sum() == 14
    kept_all = visible_parts([bottom, middle, top], min_visible_fraction=0.2, min_visible_pixels=1)
    numpy.testing.assert_array_equal(kept_all[1], middle & ~top)
    numpy.testing.assert_array_equal(kept_all[0], bottom & ~middle & ~top)


def test_masks_to_boxes_hand_table():
    masks = numpy.zeros((3, 6, 8), dtype=numpy.uint8)
    masks[0, 1, 2:5] = 1  # one row, columns 2..4
    masks[1, 0:6, 7] = 1  # the last column, every row
    expected = [[2, 1, 5, 2], [7, 0, 8, 6], [0, 0, 0, 0]]  # an empty mask gives a zero box
    numpy.testing.assert_array_equal(masks_to_boxes(masks), expected)


def test_class_and_size_variety():
    dataset = ShapesDataset(200, image_size=128, seed=0)
    labels, areas, counts, fills = [], [], [], []
    for index in range(len(dataset)):
        _, target = dataset[index]
        boxes = target["boxes"]
        labels.append(target["labels"])
        areas.append(target["masks"].sum(axis=(1, 2)))
        fills.append(areas[-1] / ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        counts.append(len(target["labels"]))
    labels, areas, fills = map(numpy.concatenate, (labels, areas, fills))
    share = numpy.bincount(labels, minlength=6)[1:] / len(labels)
    assert (share > 0.12).all(), share  # five classes, each near 20%
    assert areas.min() < 30  # a few pixels ...
    assert areas.max() > 0.25 * 128 * 128  # ... to a large part of the image
    small, medium = (areas < 32**2).mean(), ((areas >= 32**2) & (areas < 96**2)).mean()
    assert small > 0.5 and medium > 0.1
    assert set(counts) == {1, 2, 3, 4}
    # the thin classes are thin: a ring or a cross covers well under half of its box
    for name, limit in (("ring", 0.45), ("cross", 0.5)):
        label = dataset.class_names.index(name)
        assert numpy.median(fills[labels == label]) < limit
    assert numpy.median(fills[labels == dataset.class_names.index("ellipse")]) > 0.6


def test_generation_is_vectorised_fast():
    # ~3 ms an image on one core; a per-pixel Python loop would take seconds per image
    dataset = ShapesDataset(100, image_size=128, seed=9)
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": 8}, "at least 16"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects"),
        ({"min_size": 200}, "min_size"),
        ({"seed": -1}, "seed"),
        ({"classes": ("ring", "star")}, "classes"),
        ({"classes": ()}, "classes"),
        ({"classes": ("ring", "ring")}, "classes"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShapesDataset(4, **kwargs)


def test_a_subset_of_classes_is_labelled_in_the_order_given(tmp_path):
    full, subset = ShapesDataset(40, seed=3), ShapesDataset(40, seed=3,
                                                          classes=("cross", "ellipse"))
    assert subset.class_names == ("background", "cross", "ellipse")
    assert subset.num_classes == 3 and subset.label_to_category_id == {1: 1, 2: 2}
    assert full.class_names == ShapesDataset.class_names  # the default is unchanged
    labels = numpy.concatenate([subset[i][1]["labels"] for i in range(len(subset))])
    assert set(labels.tolist()) == {1, 2}
    # each label draws the shape it names: a cross fills less of its box than an ellipse
    fill = {1: [], 2: []}
    for index in range(len(subset)):
        target = subset[index][1]
        for box, label, mask in zip(target["boxes"], target["labels"], target["masks"]):
            area = (box[2] - box[0]) * (box[3] - box[1])
            if area >= 200 and box.min() > 0 and box[2] < 128 and box[3] < 128:
                fill[int(label)].append(mask.sum() / area)
    assert numpy.mean(fill[1]) < numpy.mean(fill[2])  # crosses fill less than ellipses
    files = generate_shapes(tmp_path, train=2, val=1, classes=("cross", "ellipse"))
    assert [c["name"] for c in CocoDataset(files["val"], str(tmp_path / "val")).coco.loadCats(
        [1, 2])] == ["cross", "ellipse"]


def test_split_seeds_do_not_collide():
    train_seed, val_seed = split_seeds(0)
    assert train_seed != val_seed
    assert split_seeds(0) == (train_seed, val_seed)
    assert not {train_seed, val_seed} & set(split_seeds(1))
    train, val = make_shapes_splits(3, 2, seed=0, image_size=32)
    assert (train.seed, val.seed) == (train_seed, val_seed)
    assert train[0][0].tobytes() != val[0][0].tobytes()


def test_generate_shapes_layout(tmp_path):
    paths = generate_shapes(tmp_path, train=3, val=2, seed=4, image_size=(32, 48))
    assert paths == {"train": str(tmp_path / "train.json"), "val": str(tmp_path / "val.json")}
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == [
        "000001.png", "000002.png", "000003.png"]
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == ["000001.png", "000002.png"]
    # on disk are exactly the in-memory splits
    train, val = make_shapes_splits(3, 2, seed=4, image_size=(32, 48))
    for split, in_memory in (("train", train), ("val", val)):
        on_disk = CocoDataset(tmp_path / f"{split}.json", tmp_path / split)
        for index in range(len(in_memory)):
            assert_items_equal(on_disk[index], in_memory[index])
