"""COCO-format instance segmentation, in and out (REFERENCE.md §11), over pycocotools.

A COCO annotation file is JSON with three lists:
    images       {id, file_name, height, width}
    annotations  {id >= 1, image_id, category_id, bbox (x, y, w, h), area, iscrowd,
                  segmentation: polygons [[x1, y1, x2, y2, ...], ...] or RLE {size, counts}}
    categories   {id, name}; ids need not be contiguous (COCO's own run 1..90 with gaps)

``CocoDataset(ann_file, image_dir)[i] -> (image, target)`` in the same format as
``ShapesDataset``: image (H, W, 3) uint8 RGB; target boxes (M, 4) float32 xyxy pixels (the
file's xywh box converted), labels (M,) int64 in 1..K, masks (M, H, W) uint8, image_id the
file's id. Category ids are mapped to labels 1..K in increasing id order (label 0 is
background) and back with ``label_to_category_id`` when results are written.

Crowd regions (iscrowd=1) are left out of the training targets but stay in ``ds.coco``,
where COCOeval uses them to ignore detections that land on a crowd.

COCO keypoint files (person_keypoints_*.json, or ``tinymask data figures``): a category
lists its ``keypoints`` names (and a ``skeleton`` of 1-based pairs), an annotation its
``keypoints`` [x1, y1, v1, ...] and ``num_keypoints``. Then every target also holds
``keypoints`` (M, K, 3) float32 ``(x, y, v)``, and the dataset ``keypoint_names``,
``num_keypoints``, ``skeleton`` and ``keypoint_flip`` (left <-> right when mirrored).

Checks: what is cheap (the JSON's structure and value types, ids, boxes, image files
existing) is checked when the dataset is built; what needs decoding (the image itself, each
mask) when an item is read. Every problem raises ``DataError`` naming the file, the id and
what to fix; nothing wrong is passed on silently (a compressed RLE is parsed and its runs
counted before pycocotools decodes it, 16-bit images are scaled to 8 bits, not clipped).

The second half writes any dataset of (image, target) pairs as PNGs plus a COCO JSON with
RLE masks: ``write_coco``, the format ``generate_shapes`` puts on disk.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import numbers
import os
from pathlib import Path

import numpy
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from tinymask.boxes import box_xywh_to_xyxy, box_xyxy_to_xywh
from tinymask.errors import UserError
from tinymask.keypoints import keypoint_flip_index

REQUIRED_KEYS = {
    "images": ("id", "file_name", "height", "width"),
    "annotations": ("id", "image_id", "category_id", "bbox", "area", "segmentation"),
    "categories": ("id", "name"),
}


class DataError(UserError):
    """A dataset file or image that tinymask cannot use; the message says what to fix."""


# ---- reading ----------------------------------------------------------------------------------

def load_coco_json(ann_file) -> dict:
    """Read a COCO annotation file and check its structure; raises DataError."""
    path = Path(ann_file)
    if not path.is_file():
        raise DataError(f"annotation file {str(path)!r} not found; pass the path of a COCO "
                        f"JSON file (e.g. instances_val2017.json or out_dir/train.json)")
    try:
        with open(path) as file:
            data = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"annotation file {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"annotation file {str(path)!r} must hold a JSON object with 'images', "
                        f"'annotations' and 'categories', got a {type(data).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise DataError(f"annotation file {str(path)!r} has no {missing} list; a COCO file "
                        f"needs 'images', 'annotations' and 'categories'")
    for section, keys in REQUIRED_KEYS.items():
        if not isinstance(data[section], list):
            raise DataError(f"{section!r} in {str(path)!r} must be a list, got "
                            f"{type(data[section]).__name__}")
        for entry in data[section]:
            absent = [key for key in keys if not isinstance(entry, dict) or key not in entry]
            if absent:
                raise DataError(f"an entry of {section!r} in {str(path)!r} lacks {absent}: "
                                f"{_short(entry)}; every entry needs {list(keys)}")
    return data


def _short(entry, limit: int = 120) -> str:
    text = repr(entry)
    return text if len(text) <= limit else text[:limit] + "...}"


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def check_coco_types(data: dict, source: str) -> None:
    """Ids, sizes and category ids are integers, names strings, areas finite numbers, and
    there is at least one category: a "1" where 1 belongs would match nothing, or match by
    accident, and be trained on silently."""
    if not data["categories"]:
        raise DataError(f"{source!r} has an empty 'categories' list; list every class as "
                        f"{{\"id\": 1, \"name\": \"...\"}}")
    for category in data["categories"]:
        if not _is_integer(category["id"]) or not isinstance(category["name"], str):
            raise DataError(f"category {_short(category)} in {source!r}: 'id' must be an "
                            f"integer and 'name' a string")
    for image in data["images"]:
        where = f"image {_short(image)} in {source!r}"
        if not _is_integer(image["id"]) or not isinstance(image["file_name"], str):
            raise DataError(f"{where}: 'id' must be an integer and 'file_name' a string")
        if not all(_is_integer(image[key]) and image[key] >= 1 for key in ("height", "width")):
            raise DataError(f"{where}: 'height' and 'width' must be whole numbers of pixels "
                            f">= 1, got {image['height']!r} and {image['width']!r}")
    for annotation in data["annotations"]:
        where = f"annotation id {annotation['id']!r} in {source!r}"
        for key in ("image_id", "category_id"):
            if not _is_integer(annotation[key]):
                raise DataError(f"{where}: {key} must be an integer, got {annotation[key]!r}")
        if not _is_number(annotation["area"]):
            raise DataError(f"{where}: area must be a finite number, got "
                            f"{annotation['area']!r}")
        iscrowd = annotation.get("iscrowd", 0)
        if not _is_integer(iscrowd) or iscrowd not in (0, 1):
            raise DataError(f"{where}: iscrowd must be 0 or 1, got {annotation['iscrowd']!r}")


def check_coco_ids(data: dict, source: str) -> None:
    """Unique image/annotation/category ids, annotation ids >= 1, references that resolve,
    and finite boxes with positive width and height that overlap their image (crowd regions
    may have empty boxes)."""
    image_ids = _unique_ids(data["images"], "image", source)
    category_ids = _unique_ids(data["categories"], "category", source)
    _unique_ids(data["annotations"], "annotation", source)
    image_sizes = {image["id"]: (image["height"], image["width"]) for image in data["images"]}
    for annotation in data["annotations"]:
        where = f"annotation id {annotation['id']} in {source!r}"
        # COCOeval stores the id of the matched ground truth and treats 0 as "unmatched"
        if not _is_integer(annotation["id"]) or annotation["id"] < 1:
            raise DataError(f"{where}: annotation ids must be integers >= 1 (COCOeval takes "
                            f"id 0 for 'no match'); renumber the annotations from 1")
        if annotation["image_id"] not in image_ids:
            raise DataError(f"{where} refers to image_id {annotation['image_id']}, which is "
                            f"not in 'images'; add the image or remove the annotation")
        if annotation["category_id"] not in category_ids:
            raise DataError(f"{where} has category_id {annotation['category_id']}, which is "
                            f"not in 'categories' {sorted(category_ids)}")
        box = annotation["bbox"]
        if not (isinstance(box, list | tuple) and len(box) == 4
                and all(_is_number(value) for value in box)):
            raise DataError(f"{where}: bbox must be [x, y, width, height], four finite "
                            f"numbers, got {box!r}")
        if annotation.get("iscrowd", 0) == 1:
            continue
        if box[2] <= 0 or box[3] <= 0:
            raise DataError(f"{where}: bbox {box} has zero or negative width/height; "
                            f"fix the box (COCO boxes are [x, y, width, height]) or remove the "
                            f"annotation")
        height, width = image_sizes[annotation["image_id"]]
        x, y, box_width, box_height = box
        if x >= width or y >= height or x + box_width <= 0 or y + box_height <= 0:
            raise DataError(f"{where}: bbox {box} lies wholly outside its {width}x{height} "
                            f"(width x height) image; fix the box or the image size")
        if annotation["area"] < 0:  # COCOeval would leave it out of every area range
            raise DataError(f"{where}: area {annotation['area']} is negative; it is the "
                            f"object's pixel count")


def check_coco_keypoints(data: dict, source: str):
    """The keypoint names shared by every category that lists ``keypoints`` (None when no
    category does), after checking each annotation's ``keypoints``: 3K numbers, every
    visibility 0, 1 or 2."""
    listed = [category for category in data["categories"] if "keypoints" in category]
    if not listed:
        return None
    names = listed[0]["keypoints"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise DataError(f"category {_short(listed[0])} in {source!r}: 'keypoints' must be a "
                        f"list of keypoint names")
    for category in listed[1:]:
        if category["keypoints"] != names:
            raise DataError(f"categories in {source!r} list different keypoints "
                            f"({names} and {category['keypoints']}); tinymask predicts one set "
                            f"of keypoints for every class")
    for annotation in data["annotations"]:
        keypoints = annotation.get("keypoints")
        if keypoints is None:
            continue
        where = f"annotation id {annotation['id']!r} in {source!r}"
        if not (isinstance(keypoints, list) and len(keypoints) == 3 * len(names)
                and all(_is_number(value) for value in keypoints)):
            raise DataError(f"{where}: keypoints must be {3 * len(names)} numbers [x1, y1, v1, "
                            f"...] for the {len(names)} keypoints {names}")
        if any(visibility not in (0, 1, 2) for visibility in keypoints[2::3]):
            raise DataError(f"{where}: keypoint visibilities must be 0 (not labelled), 1 "
                            f"(hidden) or 2 (visible), got {keypoints[2::3]}")
    return names


def _unique_ids(entries, kind: str, source: str) -> set:
    ids = [entry["id"] for entry in entries]
    seen = set()
    for entry_id in ids:
        if entry_id in seen:
            raise DataError(f"{kind} id {entry_id} appears twice in {source!r}; ids must be "
                            f"unique")
        seen.add(entry_id)
    return seen


def coco_from_dict(data: dict) -> COCO:
    """A pycocotools COCO object over an in-memory dict (without its progress prints)."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


class CocoDataset:
    """Any COCO-format instance segmentation dataset: ``ds[i] -> (image, target)``.

    Args:
        ann_file: the COCO JSON file.
        image_dir: the folder that ``file_name`` entries are relative to.

    Attributes:
        coco: the pycocotools ``COCO`` object (crowd regions included), for ``coco_evaluate``.
        class_names: ``["background", name of label 1, ...]``; num_classes = K + 1.
        category_id_to_label, label_to_category_id: dicts between file ids and 1..K.
    """

    def __init__(self, ann_file, image_dir):
        data = load_coco_json(ann_file)
        self.ann_file = str(ann_file)
        self.image_dir = Path(image_dir)
        check_coco_types(data, self.ann_file)
        check_coco_ids(data, self.ann_file)
        for annotation in data["annotations"]:
            annotation.setdefault("iscrowd", 0)  # COCOeval reads it on every ground truth
        self.images = data["images"]  # items follow the file's order
        for image in self.images:
            if not (self.image_dir / image["file_name"]).is_file():
                raise DataError(f"image id {image['id']}: file {image['file_name']!r} not "
                                f"found in image_dir {str(self.image_dir)!r}; check image_dir "
                                f"or the file_name in {self.ann_file!r}")

        categories = sorted(data["categories"], key=lambda category: category["id"])
        self.category_id_to_label = {category["id"]: label
                                     for label, category in enumerate(categories, start=1)}
        self.label_to_category_id = {label: category_id
                                     for category_id, label in self.category_id_to_label.items()}
        self.class_names = ["background"] + [category["name"] for category in categories]
        self.num_classes = len(self.class_names)
        keypoint_names = check_coco_keypoints(data, self.ann_file)
        self.keypoint_names = None
        if keypoint_names is not None:  # a COCO keypoint file: targets hold keypoints
            for annotation in data["annotations"]:  # COCOeval reads both on every object
                annotation.setdefault("keypoints", [0] * (3 * len(keypoint_names)))
                annotation.setdefault("num_keypoints", sum(
                    visibility > 0 for visibility in annotation["keypoints"][2::3]))
            self.keypoint_names = tuple(keypoint_names)
            self.num_keypoints = len(keypoint_names)
            self.skeleton = next(tuple(tuple(bone) for bone in category.get("skeleton", []))
                                 for category in categories if "keypoints" in category)
            self.keypoint_flip = keypoint_flip_index(keypoint_names)

        self.annotations_by_image = {image["id"]: [] for image in self.images}
        for annotation in data["annotations"]:
            if annotation["iscrowd"] == 0:
                self.annotations_by_image[annotation["image_id"]].append(annotation)
        self.coco = coco_from_dict(data)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self.images)
        if not 0 <= index < len(self.images):
            raise IndexError(f"index {index} out of range for a CocoDataset of "
                             f"{len(self.images)} images")
        info = self.images[index]
        height, width = info["height"], info["width"]
        image = self.load_image(info)
        annotations = self.annotations_by_image[info["id"]]
        masks = numpy.zeros((len(annotations), height, width), dtype=numpy.uint8)
        for row, annotation in enumerate(annotations):
            masks[row] = decode_segmentation(annotation, height, width, self.ann_file)
        boxes = numpy.array([annotation["bbox"] for annotation in annotations],
                            dtype=numpy.float32).reshape(-1, 4)
        labels = numpy.array([self.category_id_to_label[annotation["category_id"]]
                              for annotation in annotations], dtype=numpy.int64)
        target = {"boxes": box_xywh_to_xyxy(boxes), "labels": labels, "masks": masks,
                  "image_id": info["id"]}
        if self.keypoint_names is not None:
            # objects without keypoints (another category) have K unlabelled points
            target["keypoints"] = numpy.array(
                [annotation["keypoints"] for annotation in annotations],
                dtype=numpy.float32).reshape(-1, self.num_keypoints, 3)
        return image, target

    def load_image(self, info: dict) -> numpy.ndarray:
        """The image of an ``images`` entry as (H, W, 3) uint8 RGB (see ``read_rgb_image``)."""
        path = self.image_dir / info["file_name"]
        try:
            image = read_rgb_image(path)
        except DataError as exc:
            raise DataError(f"image id {info['id']}: cannot read it as an image: {exc}") from exc
        if image.shape[:2] != (info["height"], info["width"]):
            raise DataError(f"image id {info['id']}: {str(path)!r} is {image.shape[0]}x"
                            f"{image.shape[1]} (height x width) but {self.ann_file!r} says "
                            f"{info['height']}x{info['width']}; fix height/width in the file")
        return image


def read_rgb_image(path) -> numpy.ndarray:
    """An image file as (H, W, 3) uint8 RGB: grey repeated, alpha dropped, palettes expanded,
    and 16-bit grey scaled to 8 bits (Pillow's own conversion would clip it to white).

    Raises ``DataError`` for what is not an image file, for float images, and for images
    above Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, which a user
    who trusts a huge file may raise)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a folder, not an image; pass image files "
                        f"(e.g. {str(path / '*.png')!r})")
    try:
        with Image.open(path) as file:
            if file.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
                return _sixteen_bits_to_rgb(numpy.asarray(file), path)
            if file.mode == "F":
                raise DataError(f"{str(path)!r} holds floating-point pixels; save it as an "
                                f"8-bit (or 16-bit) image")
            return numpy.asarray(file.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise DataError(f"{str(path)!r} is too large to read safely ({exc}); downscale it, "
                        f"or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file") from exc
    except OSError as exc:
        raise DataError(f"{str(path)!r} is not an image file that Pillow can read ({exc})") \
            from exc


def _sixteen_bits_to_rgb(pixels: numpy.ndarray, path: Path) -> numpy.ndarray:
    """Grey 0..65535 -> 0..255 (x / 257, rounded: 65535 maps to 255), repeated to RGB."""
    pixels = pixels.astype(numpy.int64)
    if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
        raise DataError(f"{str(path)!r} holds pixel values outside 0..65535 (a 32-bit image); "
                        f"save it as an 8-bit or 16-bit image")
    grey = ((pixels * 255 + 32767) // 65535).astype(numpy.uint8)
    return numpy.repeat(grey[:, :, None], 3, axis=2)


def decode_segmentation(annotation: dict, height: int, width: int, source: str = ""):
    """An annotation's polygons or RLE as an (H, W) uint8 mask, decoded by pycocotools.

    Polygons: a list of [x1, y1, x2, y2, ...] lists (each part rasterised, then merged).
    Uncompressed RLE: {"size": [H, W], "counts": [run lengths]}; compressed RLE: counts is
    a string. RLE runs go down columns (Fortran order), starting with a run of zeros.
    pycocotools decodes runs without bounds checks, so both RLE forms are checked here
    first: their runs must add up to H * W."""
    segmentation = annotation["segmentation"]
    where = f"annotation id {annotation['id']} in {source!r}"
    if isinstance(segmentation, list):
        if not segmentation:
            raise DataError(f"{where} has an empty segmentation; give at least one polygon "
                            f"or an RLE")
        for polygon in segmentation:
            # a 4-number list would also be taken by pycocotools for a box, silently
            if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
                raise DataError(f"{where}: each polygon must be a flat list [x1, y1, x2, y2, "
                                f"...] of at least 3 points, got {_short(polygon)}")
            if not all(_is_number(value) for value in polygon):
                raise DataError(f"{where}: a polygon holds a value that is not a finite "
                                f"number: {_short(polygon)}")
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            raise DataError(f"{where}: its RLE mask is {segmentation['size']} (height, width) "
                            f"but its image is [{height}, {width}]; the mask belongs to another "
                            f"image or the image entry is wrong")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if not all(_is_integer(run) and run >= 0 for run in counts):
                raise DataError(f"{where}: uncompressed RLE counts must be run lengths "
                                f"(integers >= 0), got {_short(counts)}")
            # pycocotools writes the runs without bounds checks: a wrong total would overflow
            if sum(counts) != height * width:
                raise DataError(f"{where}: its uncompressed RLE counts sum to "
                                f"{sum(counts)}, not height * width = {height * width}")
            rle = mask_utils.frPyObjects(segmentation, height, width)
        elif isinstance(counts, str | bytes):
            text = counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts
            try:
                runs = compressed_rle_runs(text)
            except ValueError as exc:
                raise DataError(f"{where}: its compressed RLE string is not valid ({exc})") \
                    from exc
            if sum(runs) != height * width:
                raise DataError(f"{where}: its compressed RLE runs add up to {sum(runs)} "
                                f"pixels, not height * width = {height * width}; the string "
                                f"is corrupt or belongs to another image size")
            rle = {"size": [height, width], "counts": text.encode("ascii")}
        else:
            raise DataError(f"{where}: RLE counts must be a list of run lengths or a string, "
                            f"got {type(counts).__name__}")
    else:
        raise DataError(f"{where}: segmentation must be a list of polygons or an RLE dict "
                        f"with 'size' and 'counts', got {_short(segmentation)}")
    mask = mask_utils.decode(rle)
    if mask.shape != (height, width):
        raise DataError(f"{where}: its mask decodes to {mask.shape} but its image is "
                        f"({height}, {width})")
    return mask


def compressed_rle_runs(text: str) -> list[int]:
    """The run lengths of COCO's compressed RLE string, as pycocotools reads it.

    Each run is a variable-length number written 5 bits per character (the character's
    code minus 48; bit 0x20 says "more characters follow", bit 0x10 of the last one is the
    sign). From the fourth run on, the number is a difference: run i = number + run i-2.
    Raises ValueError for a character outside the alphabet, a number cut short, or a
    negative run."""
    runs = []
    position = 0
    while position < len(text):
        number, shift, more = 0, 0, True
        while more:
            if position == len(text):
                raise ValueError("the string ends inside a number")
            chunk = ord(text[position]) - 48
            if not 0 <= chunk < 64:
                raise ValueError(f"character {text[position]!r} at position {position} is "
                                 f"not part of the RLE alphabet '0'..'o'")
            number |= (chunk & 0x1F) << shift
            more = bool(chunk & 0x20)
            position += 1
            shift += 5
            if not more and chunk & 0x10:  # negative: sign-extend
                number -= 1 << shift
        if len(runs) > 2:
            number += runs[-2]
        if number < 0:
            raise ValueError(f"run {len(runs) + 1} has a negative length {number}")
        runs.append(number)
    return runs


# ---- writing ----------------------------------------------------------------------------------

def encode_mask(mask) -> dict:
    """(H, W) binary mask -> compressed RLE with ``counts`` as str, ready for JSON.

    pycocotools wants a Fortran-ordered uint8 array and returns counts as bytes
    (REFERENCE.md §11)."""
    rle = mask_utils.encode(numpy.asfortranarray(numpy.asarray(mask, dtype=numpy.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def coco_dict_from_dataset(dataset, image_dir=None) -> dict:
    """The COCO dict of a dataset of (image, target) pairs with ``class_names``.

    Category ids are the labels (1..K); annotation ids run from 1; ``bbox`` is the target's
    box in xywh, ``area`` the mask's pixel count, masks are compressed RLE. Image i is named
    ``{image_id:06d}.png``; with ``image_dir`` it is also written there (one pass, so a
    generated dataset draws each image once)."""
    images, annotations = [], []
    for index in range(len(dataset)):
        image, target = dataset[index]
        image_id = int(target["image_id"])
        file_name = f"{image_id:06d}.png"
        if image_dir is not None:
            Image.fromarray(numpy.asarray(image, dtype=numpy.uint8)).save(
                Path(image_dir) / file_name)
        images.append({"id": image_id, "file_name": file_name,
                       "height": int(image.shape[0]), "width": int(image.shape[1])})
        boxes = box_xyxy_to_xywh(numpy.asarray(target["boxes"], dtype=numpy.float64))
        keypoints = target.get("keypoints")
        for row, (box, label, mask) in enumerate(zip(boxes, target["labels"], target["masks"])):
            annotation = {"id": len(annotations) + 1, "image_id": image_id,
                          "category_id": int(label), "bbox": [float(v) for v in box],
                          "area": float(mask.sum()), "iscrowd": 0,
                          "segmentation": encode_mask(mask)}
            if keypoints is not None:
                annotation.update(keypoints_to_coco(keypoints[row]))
            annotations.append(annotation)
    categories = [{"id": label, "name": name}
                  for label, name in enumerate(dataset.class_names) if label > 0]
    if getattr(dataset, "keypoint_names", None):  # COCO's person category lists its keypoints
        for category in categories:
            category["keypoints"] = list(dataset.keypoint_names)
            category["skeleton"] = [list(bone) for bone in dataset.skeleton]
    return {"images": images, "annotations": annotations, "categories": categories}


def keypoints_to_coco(keypoints) -> dict:
    """(K, 3) ``(x, y, v)`` -> COCO's flat ``keypoints`` [x1, y1, v1, ...] (v an integer)
    and ``num_keypoints``, the labelled ones (v > 0)."""
    flat = []
    for x, y, visibility in numpy.asarray(keypoints, dtype=numpy.float64):
        flat += [float(x), float(y), int(visibility)]
    return {"keypoints": flat,
            "num_keypoints": int((numpy.asarray(keypoints)[:, 2] > 0).sum())}


def write_coco(dataset, out_dir, split_name: str) -> str:
    """Write ``out_dir/split_name/{image_id:06d}.png`` and ``out_dir/split_name.json``.

    Returns the JSON path; ``CocoDataset(that path, out_dir/split_name)`` reads it back."""
    image_dir = Path(out_dir) / split_name
    os.makedirs(image_dir, exist_ok=True)
    data = coco_dict_from_dataset(dataset, image_dir=image_dir)
    ann_file = Path(out_dir) / f"{split_name}.json"
    with open(ann_file, "w") as file:
        json.dump(data, file)
    return str(ann_file)
