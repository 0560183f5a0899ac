from tinymask.ops.nms import batched_nms, nms  # noqa: F401  (the public NMS API)
