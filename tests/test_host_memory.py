"""keep_freed_memory: set where glibc is the C library, a no-op elsewhere."""

import platform
import sys

from tinymask.host_memory import keep_freed_memory


def test_thresholds_are_set_with_glibc_and_nothing_breaks_elsewhere():
    with_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is with_glibc
    assert keep_freed_memory(mmap_threshold_mb=32, trim_threshold_mb=128) is with_glibc
