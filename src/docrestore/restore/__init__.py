"""Restore users' real page and line images of any size: image I/O and the tiled restorer."""

from .io import (IMAGE_EXTENSIONS, ImageReadError, Inputs, PageInfo, PageInput, find_images, find_inputs,
                 output_name, read_image, read_page, sidecar_name, write_image)
from .tiling import (RestoreReport, blend_window, check_tile, count_tiles, restore_files, restore_image,
                     tile_positions)

__all__ = ["IMAGE_EXTENSIONS", "ImageReadError", "Inputs", "PageInfo", "PageInput", "find_images",
           "find_inputs", "output_name", "read_image", "read_page", "sidecar_name", "write_image",
           "RestoreReport", "blend_window", "check_tile", "count_tiles", "restore_files",
           "restore_image", "tile_positions"]
