"""What this machine holds: its memory, for the size checks that refuse inputs it could not hold."""

import os

__all__ = ["available_memory", "physical_memory"]


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory() -> int | None:
    """Bytes of memory a new allocation can still take without swapping: Linux's ``MemAvailable`` (free
    memory and the caches the kernel can drop), else the physical memory; None where neither is known."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return physical_memory()
