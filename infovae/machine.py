"""What this machine holds: its memory, for the size checks that refuse inputs it could not hold, and
the device JAX computes on."""

import os

__all__ = ["available_memory", "jax_device", "physical_memory"]


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


def jax_device():
    """The device JAX puts new arrays on and runs programs on, as JAX chooses it: the one the user chose
    (``jax.default_device(...)`` or the ``jax_default_device`` setting, a device or a platform's name),
    else this process's first. Imports JAX."""
    import jax

    chosen = jax.config.jax_default_device
    if chosen is None:
        return jax.local_devices()[0]
    return jax.local_devices(backend=chosen)[0] if isinstance(chosen, str) else chosen
