from tinymask.ops.nms import batched_nms, nms  # noqa: F401  (the public NMS API)
from tinymask.ops.poolers import RoIPooler, assign_fpn_levels  # noqa: F401  (FPN RoI pooling)
from tinymask.ops.roi_align import roi_align  # noqa: F401  (the RoI ops of Table 2c)
from tinymask.ops.roi_pool import roi_pool  # noqa: F401
from tinymask.ops.roi_warp import roi_warp  # noqa: F401
