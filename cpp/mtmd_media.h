// Media (mtmd_media.cpp): Bitmaps, images and audio decoded by llama.cpp's helper
// (stb_image, miniaudio), with an image's size checked from its header first.
#pragma once

#include "mtmd_context.h"

// Owns an mtmd_bitmap. Immutable once made (its id is given at creation), so a call
// that reads it without the GIL cannot race with Python.
struct Bitmap {
    mtmd_bitmap *ptr = nullptr;
    ~Bitmap() {
        if (ptr) mtmd_bitmap_free(ptr);
    }
};

// Decode an image or audio file (GIL released); ValueError if llama.cpp cannot, or
// (max_pixels > 0) if the image is larger.
Bitmap *bitmap_from_file(MtmdContext &m, const std::filesystem::path &path, std::optional<std::string> id,
                         uint64_t max_pixels);
// The same from a file's bytes.
Bitmap *bitmap_from_bytes(MtmdContext &m, nb::bytes data, std::optional<std::string> id, uint64_t max_pixels);

// Bitmap, on M.
void init_mtmd_bitmap(nb::module_ &m);
