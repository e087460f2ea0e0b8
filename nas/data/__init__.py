"""Data sets without torch: reading their files (numpy, Pillow), fetching the official archives, the shipped subset.

``load_images(name, data_dir)`` gives uint8 arrays; ``nas.evaluate.data.load_dataset`` turns them into
normalised tensors with a held-out split. ``fetch(name, root)`` is ``nas data fetch``.
"""

from .catalog import NAMES, Images, check_name, fashion_subset, load_images
from .fetch import fetch
from .sources import SOURCES, data_root

__all__ = ["NAMES", "SOURCES", "Images", "check_name", "data_root", "fashion_subset", "fetch", "load_images"]
