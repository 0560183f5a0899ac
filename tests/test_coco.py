"""The COCO loader: every segmentation encoding, crowds, empty images, category ids, image
modes, the round trip with write_coco, and a clear DataError for each kind of bad input."""

import json

import numpy
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tinymask.data import CocoDataset, DataError, ShapesDataset, encode_mask, write_coco
from tinymask.data.coco import compressed_rle_runs
from tinymask.errors import UserError

HEIGHT, WIDTH = 10, 12


def square_mask(x1, y1, x2, y2):
    mask = numpy.zeros((HEIGHT, WIDTH), dtype=numpy.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def uncompressed_rle(mask):
    """COCO's uncompressed RLE written out by hand: runs down the columns, zeros first."""
    flat = mask.flatten(order="F")
    changes = numpy.flatnonzero(numpy.diff(flat)) + 1
    bounds = numpy.concatenate([[0], changes, [flat.size]])
    counts = numpy.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"size": [mask.shape[0], mask.shape[1]], "counts": counts}


def annotation(ann_id, image_id=1, category_id=1, bbox=(2, 3, 5, 5), segmentation=None,
               **extra):
    if segmentation is None:
        segmentation = encode_mask(square_mask(2, 3, 7, 8))
    return {"id": ann_id, "image_id": image_id, "category_id": category_id,
            "bbox": list(bbox), "area": float(bbox[2] * bbox[3]), "iscrowd": 0,
            "segmentation": segmentation, **extra}


def write_dataset(tmp_path, annotations, images=None, categories=None, pixels=None):
    """A COCO file plus PNGs in tmp_path; returns (ann_file, image_dir)."""
    images = images if images is not None else [
        {"id": 1, "file_name": "a.png", "height": HEIGHT, "width": WIDTH}]
    categories = categories if categories is not None else [{"id": 1, "name": "thing"}]
    image_dir = tmp_path / "images"
    image_dir.mkdir(exist_ok=True)
    for image in images:
        array = pixels.get(image["file_name"]) if pixels else None
        if array is None:
            array = numpy.full((image["height"], image["width"], 3), 90, dtype=numpy.uint8)
        Image.fromarray(array).save(image_dir / image["file_name"])
    ann_file = tmp_path / "annotations.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": annotations,
                                    "categories": categories}))
    return ann_file, image_dir


def test_round_trip_through_write_coco(tmp_path):
    shapes = ShapesDataset(5, image_size=(40, 48), seed=7, max_objects=4)
    ann_file = write_coco(shapes, tmp_path, "train")
    loaded = CocoDataset(ann_file, tmp_path / "train")
    assert len(loaded) == len(shapes)
    assert loaded.class_names == list(shapes.class_names)
    assert loaded.label_to_category_id == shapes.label_to_category_id
    for index in range(len(shapes)):
        image, target = shapes[index]
        loaded_image, loaded_target = loaded[index]
        numpy.testing.assert_array_equal(loaded_image, image)  # PNG is lossless
        numpy.testing.assert_array_equal(loaded_target["boxes"], target["boxes"])
        numpy.testing.assert_array_equal(loaded_target["labels"], target["labels"])
        numpy.testing.assert_array_equal(loaded_target["masks"], target["masks"])
        assert loaded_target["image_id"] == target["image_id"]
    written = json.loads((tmp_path / "train.json").read_text())
    assert min(a["id"] for a in written["annotations"]) == 1
    assert all(isinstance(a["segmentation"]["counts"], str) for a in written["annotations"])
    assert [c["id"] for c in written["categories"]] == [1, 2, 3, 4, 5]


def test_polygon_and_both_rle_forms_decode_to_the_same_mask(tmp_path):
    expected = square_mask(2, 3, 7, 8)  # columns 2..6, rows 3..7
    annotations = [
        # polygon corners on pixel edges: (2, 3) to (7, 8) covers exactly those pixels
        annotation(1, segmentation=[[2, 3, 7, 3, 7, 8, 2, 8]]),
        annotation(2, segmentation=uncompressed_rle(expected)),
        annotation(3, segmentation=encode_mask(expected)),
        # two polygons of one object are merged
        annotation(4, bbox=(0, 0, 12, 2), segmentation=[[0, 0, 2, 0, 2, 2, 0, 2],
                                                        [10, 0, 12, 0, 12, 2, 10, 2]]),
    ]
    ann_file, image_dir = write_dataset(tmp_path, annotations)
    _, target = CocoDataset(ann_file, image_dir)[0]
    for row in range(3):
        numpy.testing.assert_array_equal(target["masks"][row], expected)
    two_parts = numpy.zeros((HEIGHT, WIDTH), dtype=numpy.uint8)
    two_parts[0:2, 0:2] = two_parts[0:2, 10:12] = 1
    numpy.testing.assert_array_equal(target["masks"][3], two_parts)
    # the xywh box becomes xyxy
    numpy.testing.assert_array_equal(target["boxes"][0], [2, 3, 7, 8])


def test_crowd_regions_are_left_out_of_targets_but_kept_for_evaluation(tmp_path):
    crowd_mask = square_mask(8, 0, 12, 4)
    annotations = [annotation(1),
                   annotation(2, bbox=(8, 0, 4, 4), iscrowd=1,
                              segmentation=uncompressed_rle(crowd_mask))]
    ann_file, image_dir = write_dataset(tmp_path, annotations)
    dataset = CocoDataset(ann_file, image_dir)
    _, target = dataset[0]
    assert len(target["labels"]) == 1
    numpy.testing.assert_array_equal(target["boxes"], [[2, 3, 7, 8]])
    assert sorted(dataset.coco.getAnnIds()) == [1, 2]
    assert dataset.coco.anns[2]["iscrowd"] == 1


def test_image_without_annotations_gives_empty_target(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "height": HEIGHT, "width": WIDTH},
              {"id": 2, "file_name": "b.png", "height": 6, "width": 7}]
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1)], images=images)
    image, target = CocoDataset(ann_file, image_dir)[1]
    assert image.shape == (6, 7, 3)
    assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == numpy.float32
    assert target["labels"].shape == (0,) and target["labels"].dtype == numpy.int64
    assert target["masks"].shape == (0, 6, 7) and target["masks"].dtype == numpy.uint8
    assert target["image_id"] == 2


def test_non_contiguous_category_ids_map_to_labels_and_back(tmp_path):
    categories = [{"id": 12, "name": "cup"}, {"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    annotations = [annotation(1, category_id=7), annotation(2, category_id=12),
                   annotation(3, category_id=3)]
    ann_file, image_dir = write_dataset(tmp_path, annotations, categories=categories)
    dataset = CocoDataset(ann_file, image_dir)
    assert dataset.category_id_to_label == {3: 1, 7: 2, 12: 3}  # in increasing id order
    assert dataset.label_to_category_id == {1: 3, 2: 7, 3: 12}
    assert dataset.class_names == ["background", "cat", "dog", "cup"]
    assert dataset.num_classes == 4
    _, target = dataset[0]
    numpy.testing.assert_array_equal(target["labels"], [2, 3, 1])


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    grey = numpy.arange(HEIGHT * WIDTH, dtype=numpy.uint8).reshape(HEIGHT, WIDTH)
    rgba = numpy.zeros((HEIGHT, WIDTH, 4), dtype=numpy.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 128
    images = [{"id": 1, "file_name": "grey.png", "height": HEIGHT, "width": WIDTH},
              {"id": 2, "file_name": "rgba.png", "height": HEIGHT, "width": WIDTH}]
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1)], images=images,
                                        pixels={"grey.png": grey, "rgba.png": rgba})
    assert Image.open(image_dir / "grey.png").mode == "L"
    assert Image.open(image_dir / "rgba.png").mode == "RGBA"
    dataset = CocoDataset(ann_file, image_dir)
    grey_image, _ = dataset[0]
    rgba_image, _ = dataset[1]
    assert grey_image.shape == rgba_image.shape == (HEIGHT, WIDTH, 3)
    assert grey_image.dtype == rgba_image.dtype == numpy.uint8
    numpy.testing.assert_array_equal(grey_image, numpy.repeat(grey[:, :, None], 3, axis=2))
    numpy.testing.assert_array_equal(rgba_image[0, 0], [10, 20, 30])  # alpha dropped


# ---- bad input: each raises DataError with a message naming the problem ------------------------

def test_missing_annotation_file(tmp_path):
    with pytest.raises(DataError, match="annotation file .* not found"):
        CocoDataset(tmp_path / "nope.json", tmp_path)


def test_malformed_json(tmp_path):
    ann_file = tmp_path / "bad.json"
    ann_file.write_text('{"images": [')
    with pytest.raises(DataError, match="is not valid JSON"):
        CocoDataset(ann_file, tmp_path)
    ann_file.write_text("[1, 2]")
    with pytest.raises(DataError, match="must hold a JSON object"):
        CocoDataset(ann_file, tmp_path)


@pytest.mark.parametrize("missing", ["images", "annotations", "categories"])
def test_json_missing_a_section(tmp_path, missing):
    data = {"images": [], "annotations": [], "categories": []}
    del data[missing]
    ann_file = tmp_path / "a.json"
    ann_file.write_text(json.dumps(data))
    with pytest.raises(DataError, match=f"has no \\['{missing}'\\] list"):
        CocoDataset(ann_file, tmp_path)


def test_entry_missing_a_key(tmp_path):
    broken = annotation(1)
    del broken["bbox"]
    ann_file, image_dir = write_dataset(tmp_path, [broken])
    with pytest.raises(DataError, match=r"an entry of 'annotations' .* lacks \['bbox'\]"):
        CocoDataset(ann_file, image_dir)


def test_missing_image_file(tmp_path):
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1)])
    (image_dir / "a.png").unlink()
    with pytest.raises(DataError, match="image id 1: file 'a.png' not found in image_dir"):
        CocoDataset(ann_file, image_dir)


@pytest.mark.parametrize("bbox", [(2, 3, 0, 5), (2, 3, 5, -1)])
def test_box_with_zero_or_negative_size(tmp_path, bbox):
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1, bbox=bbox)])
    with pytest.raises(DataError, match="annotation id 1 .* zero or negative width/height"):
        CocoDataset(ann_file, image_dir)


def test_box_that_is_not_four_numbers(tmp_path):
    broken = annotation(1)
    broken["bbox"] = [2, 3, "5", 5]
    ann_file, image_dir = write_dataset(tmp_path, [broken])
    with pytest.raises(DataError, match=r"bbox must be \[x, y, width, height\]"):
        CocoDataset(ann_file, image_dir)


def test_crowd_region_may_have_an_empty_box(tmp_path):
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1, bbox=(0, 0, 0, 0), iscrowd=1)])
    _, target = CocoDataset(ann_file, image_dir)[0]
    assert target["boxes"].shape == (0, 4)


def test_rle_of_the_wrong_size(tmp_path):
    wrong = encode_mask(numpy.ones((HEIGHT + 1, WIDTH), dtype=numpy.uint8))
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1, segmentation=wrong)])
    dataset = CocoDataset(ann_file, image_dir)  # found when the mask is decoded
    with pytest.raises(DataError, match=r"annotation id 1 .* RLE mask is \[11, 12\] .* "
                                        r"its image is \[10, 12\]"):
        dataset[0]


def test_uncompressed_rle_counts_that_do_not_add_up(tmp_path):
    short = {"size": [HEIGHT, WIDTH], "counts": [5, 10]}
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1, segmentation=short)])
    with pytest.raises(DataError, match="counts sum to 15, not height \\* width = 120"):
        CocoDataset(ann_file, image_dir)[0]


def test_polygon_too_short(tmp_path):
    # 4 numbers: pycocotools would quietly read this as a box
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1, segmentation=[[2, 3, 7, 8]])])
    with pytest.raises(DataError, match="at least 3 points"):
        CocoDataset(ann_file, image_dir)[0]


def test_annotation_for_an_unknown_image(tmp_path):
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1, image_id=99)])
    with pytest.raises(DataError, match="refers to image_id 99, which is not in 'images'"):
        CocoDataset(ann_file, image_dir)


def test_annotation_for_an_unknown_category(tmp_path):
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1, category_id=5)])
    with pytest.raises(DataError, match="category_id 5, which is not in 'categories'"):
        CocoDataset(ann_file, image_dir)


def test_annotation_id_zero_and_duplicate_ids(tmp_path):
    ann_file, image_dir = write_dataset(tmp_path, [annotation(0)])
    with pytest.raises(DataError, match="ids must be integers >= 1"):
        CocoDataset(ann_file, image_dir)
    ann_file, image_dir = write_dataset(tmp_path, [annotation(4), annotation(4)])
    with pytest.raises(DataError, match="annotation id 4 appears twice"):
        CocoDataset(ann_file, image_dir)


def test_image_file_of_another_size(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "height": HEIGHT, "width": WIDTH}]
    pixels = {"a.png": numpy.zeros((HEIGHT, WIDTH + 3, 3), dtype=numpy.uint8)}
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1)], images=images, pixels=pixels)
    with pytest.raises(DataError, match="is 10x15 .* says 10x12"):
        CocoDataset(ann_file, image_dir)[0]


def test_unreadable_image_file(tmp_path):
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1)])
    (image_dir / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read .* as an image"):
        CocoDataset(ann_file, image_dir)[0]


def test_uncompressed_rle_helper_matches_pycocotools():
    # the hand-written encoder above is itself checked against pycocotools' reading of it
    mask = square_mask(0, 0, 3, 2)  # starts with a 1: counts begin with a zero-length run
    rle = uncompressed_rle(mask)
    assert rle["counts"][0] == 0
    decoded = mask_utils.decode(mask_utils.frPyObjects(rle, HEIGHT, WIDTH))
    numpy.testing.assert_array_equal(decoded, mask)


# ---- values a file can get wrong that pycocotools or Pillow would take silently -------------

def test_compressed_rle_parser_matches_pycocotools():
    rng = numpy.random.default_rng(0)
    for _ in range(50):
        height, width = (int(side) for side in rng.integers(1, 30, size=2))
        mask = (rng.random((height, width)) < rng.random()).astype(numpy.uint8)
        runs = compressed_rle_runs(encode_mask(mask)["counts"])
        assert sum(runs) == height * width
        values = numpy.concatenate([numpy.full(run, index % 2) for index, run in
                                    enumerate(runs)])
        numpy.testing.assert_array_equal(values.reshape(width, height).T, mask)


def test_compressed_rle_of_another_pixel_total(tmp_path):
    # a valid string of a 9 x 12 mask under the size of a 10 x 12 image: pycocotools would
    # decode it into a garbage mask
    other = encode_mask(numpy.ones((HEIGHT - 1, WIDTH), dtype=numpy.uint8))
    wrong_total = {"size": [HEIGHT, WIDTH], "counts": other["counts"]}
    ann_file, image_dir = write_dataset(tmp_path, [annotation(7, segmentation=wrong_total)])
    with pytest.raises(DataError, match=r"annotation id 7 in .*annotations.json.*add up to 108 "
                                        r"pixels, not height \* width = 120"):
        CocoDataset(ann_file, image_dir)[0]


@pytest.mark.parametrize("counts", ["xyz~~~", "0000", "1", "ab"])
def test_garbage_rle_string_names_the_file_and_annotation(tmp_path, counts):
    garbage = {"size": [HEIGHT, WIDTH], "counts": counts}
    ann_file, image_dir = write_dataset(tmp_path, [annotation(5, segmentation=garbage)])
    with pytest.raises(DataError, match=r"annotation id 5 in '.*annotations.json'.*compressed "
                                        r"RLE"):
        CocoDataset(ann_file, image_dir)[0]


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    deep = (numpy.arange(HEIGHT * WIDTH, dtype=numpy.uint16).reshape(HEIGHT, WIDTH) * 550)
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1)])
    Image.fromarray(deep).save(image_dir / "a.png")
    assert Image.open(image_dir / "a.png").mode.startswith("I")
    image, _ = CocoDataset(ann_file, image_dir)[0]
    expected = numpy.round(deep / 257).astype(numpy.uint8)  # 65535 -> 255
    numpy.testing.assert_array_equal(image[:, :, 0], expected)
    numpy.testing.assert_array_equal(image[:, :, 2], expected)
    # Pillow's own convert("RGB") clips: 255 everywhere but the first pixel
    assert len(numpy.unique(image)) == HEIGHT * WIDTH


def test_image_over_the_decompression_bomb_limit(tmp_path, monkeypatch):
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1)])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # 120 pixels: over twice the limit
    with pytest.raises(DataError, match="image id 1: .* too large to read safely.*downscale"):
        CocoDataset(ann_file, image_dir)[0]


def test_nan_and_infinite_boxes(tmp_path):
    for bad in (float("nan"), float("inf")):
        broken = annotation(1)
        broken["bbox"][1] = bad
        ann_file, image_dir = write_dataset(tmp_path, [broken])
        with pytest.raises(DataError, match="annotation id 1 .* four finite numbers"):
            CocoDataset(ann_file, image_dir)


@pytest.mark.parametrize("bbox", [(12, 3, 5, 5), (2, 10, 5, 5), (-6, 3, 5, 5), (2, -5, 5, 5)])
def test_box_wholly_outside_the_image(tmp_path, bbox):
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1, bbox=bbox)])
    with pytest.raises(DataError, match=r"lies wholly outside its 12x10"):
        CocoDataset(ann_file, image_dir)


def test_box_partly_outside_the_image_is_kept(tmp_path):
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1, bbox=(-2, 8, 5, 5))])
    _, target = CocoDataset(ann_file, image_dir)[0]
    numpy.testing.assert_array_equal(target["boxes"], [[-2, 8, 3, 13]])


def test_ids_and_sizes_given_as_strings(tmp_path):
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1, category_id="1")],
                                        categories=[{"id": "1", "name": "thing"}])
    with pytest.raises(DataError, match="'id' must be an integer"):
        CocoDataset(ann_file, image_dir)
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1, category_id="1")])
    with pytest.raises(DataError, match="category_id must be an integer, got '1'"):
        CocoDataset(ann_file, image_dir)
    images = [{"id": 1, "file_name": "a.png", "height": HEIGHT, "width": WIDTH}]
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1)], images=images)
    data = json.loads(ann_file.read_text())
    data["images"][0]["height"] = "10"
    ann_file.write_text(json.dumps(data))
    with pytest.raises(DataError, match="'height' and 'width' must be whole numbers"):
        CocoDataset(ann_file, image_dir)


def test_empty_categories(tmp_path):
    ann_file, image_dir = write_dataset(tmp_path, [], categories=[])
    with pytest.raises(DataError, match="empty 'categories' list"):
        CocoDataset(ann_file, image_dir)


def test_polygon_with_a_nan(tmp_path):
    polygon = [[2, 3, 7, 3, float("nan"), 8, 2, 8]]
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1, segmentation=polygon)])
    with pytest.raises(DataError, match="not a finite number"):
        CocoDataset(ann_file, image_dir)[0]


def test_float_image_file_is_refused(tmp_path):
    ann_file, image_dir = write_dataset(tmp_path, [annotation(1)])
    Image.fromarray(numpy.full((HEIGHT, WIDTH), 0.5, dtype=numpy.float32)).save(
        image_dir / "a.tiff")
    data = json.loads(ann_file.read_text())
    data["images"][0]["file_name"] = "a.tiff"
    ann_file.write_text(json.dumps(data))
    with pytest.raises(DataError, match="floating-point pixels"):
        CocoDataset(ann_file, image_dir)[0]


def test_data_errors_are_user_errors():
    assert issubclass(DataError, UserError) and issubclass(DataError, ValueError)
