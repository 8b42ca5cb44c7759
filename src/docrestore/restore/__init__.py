"""Restore users' real page and line images of any size: image I/O and the tiled restorer."""

from .io import IMAGE_EXTENSIONS, ImageReadError, find_images, read_image, write_image
from .tiling import (RestoreReport, blend_window, check_tile, count_tiles, output_names,
                     restore_files, restore_image, tile_positions)

__all__ = ["IMAGE_EXTENSIONS", "ImageReadError", "find_images", "read_image", "write_image",
           "RestoreReport", "blend_window", "check_tile", "count_tiles", "output_names",
           "restore_files", "restore_image", "tile_positions"]
