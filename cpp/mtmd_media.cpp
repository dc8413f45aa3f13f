// Media (mtmd_media.h).
#include "mtmd_media.h"

#include <fstream>
#include <iterator>

namespace {

void set_id(Bitmap &b, const std::optional<std::string> &id) {
    if (id) mtmd_bitmap_set_id(b.ptr, id->c_str());
}

// stb_image's header probe, compiled into libmtmd (mtmd-helper.cpp defines
// STB_IMAGE_IMPLEMENTATION, with external linkage): an image's size without decoding it,
// so that a small file declaring a huge image is refused before stb allocates its pixels.
extern "C" int stbi_info_from_memory(const unsigned char *buffer, int len, int *x, int *y, int *comp);

void check_pixels(const unsigned char *data, size_t n, uint64_t max_pixels) {
    if (max_pixels == 0) return;
    if (n > (size_t) INT32_MAX) throw nb::value_error("media over 2 GiB cannot be decoded");
    int x = 0, y = 0, comp = 0;
    if (stbi_info_from_memory(data, (int) n, &x, &y, &comp) && (uint64_t) x * (uint64_t) y > max_pixels)
        throw nb::value_error(("the image is " + std::to_string(x) + "x" + std::to_string(y) +
                               " pixels, over the limit of " + std::to_string(max_pixels))
                                  .c_str());
}

Bitmap *bitmap_or_raise(mtmd_bitmap *bm, const char *what) {
    if (!bm) throw nb::value_error(with_log_reason(what).c_str());
    auto *b = new Bitmap();
    b->ptr = bm;
    return b;
}

// Decodes an image (stb_image: PNG, JPEG, BMP, GIF, ...) or audio (miniaudio: WAV, MP3,
// FLAC; told apart by magic bytes) with llama.cpp's helper. ValueError if it cannot.
Bitmap *bitmap_from_buf(MtmdContext &m, const unsigned char *data, size_t n, const std::optional<std::string> &id,
                        uint64_t max_pixels) {
    if (n == 0) throw nb::value_error("cannot decode media from empty bytes");
    check_pixels(data, n, max_pixels);
    mtmd_helper_bitmap_wrapper w = m.locked([&](mtmd_context *ctx) {
        clear_last_error_log();
        return mtmd_helper_bitmap_init_from_buf(ctx, data, n, false, mtmd_helper_init_opt_default());
    });
    if (w.video_ctx) {  // not built with video support (MTMD_VIDEO off): never expected
        mtmd_helper_video_free(w.video_ctx);
        if (w.bitmap) mtmd_bitmap_free(w.bitmap);
        throw nb::value_error("video input is not supported");
    }
    Bitmap *b = bitmap_or_raise(w.bitmap,
                                "could not decode the media: not an image (PNG, JPEG, BMP, GIF, ...) "
                                "or audio (WAV, MP3, FLAC) file, or a corrupt one");
    set_id(*b, id);
    return b;
}

}  // namespace

Bitmap *bitmap_from_file(MtmdContext &m, const std::filesystem::path &path, std::optional<std::string> id,
                         uint64_t max_pixels) {
    m.get();
    if (!std::filesystem::is_regular_file(path)) raise_missing_file("media", path);
    // Read here, then decoded as bytes (what mtmd_helper_bitmap_init_from_file does).
    std::vector<unsigned char> buf;
    bool ok;
    {
        nb::gil_scoped_release nogil;
        std::ifstream f(path, std::ios::binary);
        buf.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
        ok = !f.bad();
    }
    if (!ok) raise_missing_file("media", path);
    return bitmap_from_buf(m, buf.data(), buf.size(), id, max_pixels);
}

Bitmap *bitmap_from_bytes(MtmdContext &m, nb::bytes data, std::optional<std::string> id, uint64_t max_pixels) {
    // The bytes object is immutable and referenced by the caller's frame while the GIL is released.
    nb::object hold = data;
    return bitmap_from_buf(m, (const unsigned char *) data.c_str(), data.size(), id, max_pixels);
}

void init_mtmd_bitmap(nb::module_ &m) {
    nb::class_<Bitmap>(m, "Bitmap",
                       "mtmd_bitmap: a decoded image (RGB, row-major) or audio clip (PCM float32 at the\n"
                       "projector's sample rate). Immutable; its id (if any) is given at creation.")
        .def(
            "__init__",
            [](Bitmap *self, uint32_t nx, uint32_t ny, nb::bytes data, std::optional<std::string> id) {
                if (nx == 0 || ny == 0) throw nb::value_error("an image needs nx > 0 and ny > 0");
                if ((uint64_t) nx * ny * 3 != data.size())
                    throw nb::value_error(("RGB data of a " + std::to_string(nx) + "x" + std::to_string(ny) +
                                           " image is " + std::to_string((uint64_t) nx * ny * 3) + " bytes, got " +
                                           std::to_string(data.size()))
                                              .c_str());
                new (self) Bitmap();
                self->ptr = mtmd_bitmap_init(nx, ny, (const unsigned char *) data.c_str());
                set_id(*self, id);
            },
            "nx"_a, "ny"_a, "data"_a, "id"_a = nb::none(), "An image from nx*ny*3 bytes of RGB (rows top to bottom).")
        .def_static(
            "from_array",
            [](nb::ndarray<const uint8_t, nb::ndim<3>, nb::c_contig, nb::device::cpu> a,
               std::optional<std::string> id) {
                if (a.shape(2) != 3)
                    throw nb::value_error(
                        ("an image array must be H x W x 3 (RGB), got a last axis of " + std::to_string(a.shape(2)))
                            .c_str());
                if (a.shape(0) == 0 || a.shape(1) == 0 || a.shape(0) > UINT32_MAX || a.shape(1) > UINT32_MAX)
                    throw nb::value_error("an image array needs H > 0 and W > 0");
                auto *b = new Bitmap();
                b->ptr = mtmd_bitmap_init((uint32_t) a.shape(1), (uint32_t) a.shape(0), a.data());
                set_id(*b, id);
                return b;
            },
            "array"_a, "id"_a = nb::none(),
            nb::sig("def from_array(array: numpy.typing.NDArray[numpy.uint8], id: str | None = None) -> Bitmap"),
            "An image from an H x W x 3 uint8 RGB array (libmtmd keeps its own copy).")
        .def_static(
            "from_audio",
            [](nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu> a, std::optional<std::string> id) {
                if (a.shape(0) == 0) throw nb::value_error("an audio clip needs at least one sample");
                auto *b = new Bitmap();
                b->ptr = mtmd_bitmap_init_from_audio(a.shape(0), a.data());
                set_id(*b, id);
                return b;
            },
            "samples"_a, "id"_a = nb::none(),
            nb::sig("def from_audio(samples: numpy.typing.NDArray[numpy.float32], id: str | None = None) -> Bitmap"),
            "Audio from mono PCM float32 samples at the projector's sample rate (MtmdContext.audio_sample_rate).")
        .def_prop_ro(
            "nx", [](const Bitmap &b) { return mtmd_bitmap_get_nx(b.ptr); }, "Width (audio: samples).")
        .def_prop_ro(
            "ny", [](const Bitmap &b) { return mtmd_bitmap_get_ny(b.ptr); }, "Height (audio: 1).")
        .def_prop_ro(
            "is_audio", [](const Bitmap &b) { return mtmd_bitmap_is_audio(b.ptr); }, "Whether this is audio.")
        .def_prop_ro(
            "n_bytes", [](const Bitmap &b) { return mtmd_bitmap_get_n_bytes(b.ptr); }, "Size of the data.")
        .def_prop_ro(
            "id",
            [](const Bitmap &b) -> std::optional<std::string> {
                const char *id = mtmd_bitmap_get_id(b.ptr);
                if (!id || !*id) return std::nullopt;
                return std::string(id);
            },
            "The id chunks of this bitmap carry (files and bytes: their SHA-256), or None.")
        .def_prop_ro(
            "data",
            [](nb::handle self) {
                Bitmap &b = nb::cast<Bitmap &>(self);
                const unsigned char *d = mtmd_bitmap_get_data(b.ptr);
                if (mtmd_bitmap_is_audio(b.ptr))
                    return nb::cast(nb::ndarray<nb::numpy, const float, nb::ndim<1>>(
                        (const float *) d, {(size_t) mtmd_bitmap_get_n_bytes(b.ptr) / sizeof(float)}, self));
                return nb::cast(nb::ndarray<nb::numpy, const uint8_t, nb::ndim<3>>(
                    d, {(size_t) mtmd_bitmap_get_ny(b.ptr), (size_t) mtmd_bitmap_get_nx(b.ptr), (size_t) 3}, self));
            },
            nb::rv_policy::automatic,
            nb::sig("def data(self) -> numpy.typing.NDArray[numpy.uint8] | numpy.typing.NDArray[numpy.float32]"),
            "A read-only view of the pixels (H x W x 3 uint8) or samples (float32); it keeps the bitmap alive.")
        .def("__repr__", [](const Bitmap &b) {
            return mtmd_bitmap_is_audio(b.ptr)
                       ? "<Bitmap audio " + std::to_string(mtmd_bitmap_get_nx(b.ptr)) + " samples>"
                       : "<Bitmap " + std::to_string(mtmd_bitmap_get_nx(b.ptr)) + "x" +
                             std::to_string(mtmd_bitmap_get_ny(b.ptr)) + ">";
        });
}
