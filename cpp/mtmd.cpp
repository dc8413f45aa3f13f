// libmtmd (llama.cpp's tools/mtmd): images and audio for every projector type llama.cpp
// supports. An MtmdContext loads a projector (mmproj GGUF) for a text Model; Bitmaps
// hold decoded images (RGB) or audio (PCM f32); tokenize() splits text with media
// markers into InputChunks (text tokens, image or audio chunks); eval_chunks() encodes
// the media and decodes everything into a Context sequence with llama.cpp's helpers
// (mtmd_helper_*), the GIL released. The facade (llamanb.media) decides policy.
#include "context.h"

#include "mtmd.h"
#include "mtmd-helper.h"

#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/pair.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <atomic>
#include <mutex>

namespace {

// mtmd_context_params without the raw pointers (device, callbacks); the marker is
// kept here and lent to mtmd_init_from_file, which copies it.
struct MtmdParams {
    mtmd_context_params p = mtmd_context_params_default();
    std::string media_marker = mtmd_default_marker();
};

// Owns an mtmd_context. It reads the text model (vocabulary, embedding width) for its
// whole life, so it holds the Model open. libmtmd's encode is not thread-safe: every
// call takes `mutex` with the GIL released, and close() waits for a running one.
struct MtmdContext {
    mtmd_context *ptr = nullptr;
    nb::object model_obj;
    Model *model = nullptr;
    std::mutex mutex;
    // Set under `mutex` by close(): a call that was waiting for the mutex then sees the
    // context closed instead of running while close() frees it.
    std::atomic<bool> closing{false};
    std::string path;
    int32_t n_embd = 0;  // the text model's input embedding width (mtmd's output rows)

    mtmd_context *get() const {  // GIL held
        if (!ptr || closing) throw ClosedError("MtmdContext is closed");
        return ptr;
    }
    // Runs fn(mtmd_context*) with the GIL released and the mutex held.
    template <typename F>
    auto locked(F &&fn) -> decltype(fn(ptr)) {
        nb::gil_scoped_release nogil;
        std::lock_guard<std::mutex> guard(mutex);
        if (!ptr || closing) throw ClosedError("MtmdContext is closed");
        return fn(ptr);
    }
    void free_now() {  // GIL held, no call running
        if (ptr) {
            mtmd_free(ptr);
            ptr = nullptr;
            if (model) model->release();
        }
    }
    ~MtmdContext() { free_now(); }
};

// Owns an mtmd_bitmap. Immutable once made (its id is given at creation), so a call
// that reads it without the GIL cannot race with Python.
struct Bitmap {
    mtmd_bitmap *ptr = nullptr;
    ~Bitmap() { if (ptr) mtmd_bitmap_free(ptr); }
};

// Owns the chunks of one tokenize() call, and keeps the MtmdContext that made them.
struct InputChunks {
    mtmd_input_chunks *ptr = nullptr;
    nb::object mctx_obj;
    MtmdContext *mctx = nullptr;
    size_t size() const { return mtmd_input_chunks_size(ptr); }
    ~InputChunks() { if (ptr) mtmd_input_chunks_free(ptr); }
};

// One chunk, borrowed from its InputChunks (kept alive; chunks never change).
struct InputChunk {
    nb::object parent;
    InputChunks *chunks = nullptr;
    const mtmd_input_chunk *ptr = nullptr;
};

[[noreturn]] void raise_missing_file(const char *what, const std::filesystem::path &path) {
    PyErr_Format(std::filesystem::exists(path) ? PyExc_IsADirectoryError : PyExc_FileNotFoundError,
                 "%s file not found: '%s'", what, path.string().c_str());
    throw nb::python_error();
}

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
        throw nb::value_error(("the image is " + std::to_string(x) + "x" + std::to_string(y) + " pixels, over the limit of " +
                               std::to_string(max_pixels)).c_str());
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
    Bitmap *b = bitmap_or_raise(w.bitmap, "could not decode the media: not an image (PNG, JPEG, BMP, GIF, ...) "
                                          "or audio (WAV, MP3, FLAC) file, or a corrupt one");
    set_id(*b, id);
    return b;
}

void check_chunks_of(MtmdContext &m, const InputChunks &chunks) {
    if (chunks.mctx != &m)
        throw nb::value_error("these chunks were tokenized by another MtmdContext; tokenize them with this one");
}

struct EvalResult {
    int32_t rc = 0;
    bool encode_failed = false;
    llama_pos n_past = 0;
};

// The chunks [begin, end) of `chunks` into sequence `seq` of `c` from position n_past,
// as mtmd_helper_eval_chunks does it (text: mtmd_helper_eval_chunk_single; media:
// mtmd_encode_chunk, then mtmd_helper_decode_image_chunk), one chunk at a time so that
// an encode failure is told apart from a decode status. GIL released, both locks held.
llama_pos eval_range(MtmdContext &m, Context &c, InputChunks &chunks, size_t begin, size_t end, llama_pos n_past,
                     llama_seq_id seq, int32_t n_batch, bool logits_last) {
    c.check_open();
    check_chunks_of(m, chunks);
    if (c.model != m.model)
        throw nb::value_error("the Context runs another Model than the one this MtmdContext was made for");
    if (n_past < 0) throw nb::value_error("n_past must be >= 0");
    if (n_batch == 0) n_batch = (int32_t) c.n_batch;
    if (n_batch < 1 || (uint32_t) n_batch > c.n_batch)
        throw nb::value_error(("n_batch must be in [1, " + std::to_string(c.n_batch) + "] (the context's), or 0").c_str());
    mtmd_context *mp = m.get();
    for (size_t i = begin; i < end; ++i) {
        const mtmd_input_chunk *ch = mtmd_input_chunks_get(chunks.ptr, i);
        if (mtmd_input_chunk_get_type(ch) != MTMD_INPUT_CHUNK_TYPE_TEXT && mtmd_decode_use_non_causal(mp, ch) &&
            mtmd_input_chunk_get_n_tokens(ch) > c.n_ubatch)
            throw nb::value_error(("this model decodes media with non-causal attention, which needs a whole chunk "
                                   "in one ubatch: " + std::to_string(mtmd_input_chunk_get_n_tokens(ch)) +
                                   " tokens > n_ubatch=" + std::to_string(c.n_ubatch) +
                                   "; create the context with a larger n_ubatch (and n_batch)").c_str());
    }
    // Every decode here outputs at most one row (the last text token), or every row
    // with embeddings on: the output buffer must not grow under live views.
    const int64_t outputs = c.embeddings ? n_batch : 1;
    if (c.live_views > 0 && outputs > c.output_capacity)
        throw LlamaError("this evaluation may need more outputs than the context has produced before, which "
                         "reallocates llama.cpp's output buffer, while zero-copy logits/embeddings views are "
                         "alive. Delete them or take copies first.");
    EvalResult r = c.locked([&](llama_context *lctx) {
        check_seq(lctx, seq, false);
        std::lock_guard<std::mutex> guard(m.mutex);
        EvalResult out;
        out.n_past = n_past;
        if (!m.ptr || m.closing) throw ClosedError("MtmdContext is closed");
        clear_last_error_log();
        c.abort.last_poll_us = llama_time_us();
        for (size_t i = begin; i < end && out.rc == 0; ++i) {
            const mtmd_input_chunk *ch = mtmd_input_chunks_get(chunks.ptr, i);
            const bool last = logits_last && i + 1 == end;
            if (mtmd_input_chunk_get_type(ch) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
                out.rc = mtmd_helper_eval_chunk_single(m.ptr, lctx, ch, out.n_past, seq, n_batch, last, &out.n_past);
            } else {
                if (mtmd_encode_chunk(m.ptr, ch) != 0) {
                    out.rc = 1;
                    out.encode_failed = true;
                    break;
                }
                out.rc = mtmd_helper_decode_image_chunk(m.ptr, lctx, ch, mtmd_get_output_embd(m.ptr), out.n_past, seq,
                                                        n_batch, &out.n_past, nullptr, nullptr);
            }
        }
        return out;
    });
    c.output_capacity = std::max<int64_t>(c.output_capacity, outputs);
    c.last_n_outputs = r.rc == 0 && logits_last && !c.embeddings ? 1 : 0;
    if (r.encode_failed) throw LlamaError(with_log_reason("mtmd_encode_chunk: encoding the media failed"));
    check_decode_result(c, r.rc, "mtmd eval");
    return r.n_past;
}

InputChunks *tokenize_impl(MtmdContext &m, nb::handle self, std::vector<std::string> texts, std::vector<int> text_special,
                           std::vector<nb::object> items, bool add_special, const std::string *marked_text,
                           bool parse_special) {
    // items: one entry per part (None for a text part, a Bitmap otherwise); the
    // references keep every bitmap alive while the GIL is released.
    std::vector<const mtmd_bitmap *> bitmaps;
    for (auto &o : items)
        if (o.is_valid() && !o.is_none()) bitmaps.push_back(nb::cast<Bitmap &>(o).ptr);
    auto *out = new InputChunks();
    out->ptr = mtmd_input_chunks_init();
    out->mctx_obj = nb::borrow(self);
    out->mctx = &m;
    int32_t rc = m.locked([&](mtmd_context *ctx) {
        clear_last_error_log();
        if (marked_text) {
            mtmd_input_text t{marked_text->data(), marked_text->size(), add_special, parse_special};
            return mtmd_tokenize(ctx, out->ptr, &t, bitmaps.data(), bitmaps.size());
        }
        std::vector<mtmd_input_text> text_parts(texts.size());
        std::vector<mtmd_input_part> parts(items.size());
        std::vector<const mtmd_input_part *> part_ptrs(items.size());
        size_t i_text = 0, i_bm = 0;
        for (size_t i = 0; i < items.size(); ++i) {
            if (items[i].is_none()) {
                auto &s = texts[i_text];
                text_parts[i_text] = {s.data(), s.size(), false, text_special[i_text] != 0};
                parts[i] = {&text_parts[i_text], nullptr};
                ++i_text;
            } else {
                parts[i] = {nullptr, bitmaps[i_bm++]};
            }
            part_ptrs[i] = &parts[i];
        }
        return mtmd_tokenize_from_parts(ctx, out->ptr, part_ptrs.data(), part_ptrs.size(), add_special);
    });
    if (rc != 0) {
        std::string reason = with_log_reason(
            rc == 1 ? "mtmd_tokenize: the number of media markers in the text does not match the number of bitmaps"
                    : "mtmd_tokenize failed (media markers and bitmaps differ in number, or the projector cannot "
                      "take a bitmap: audio for a vision-only one, an image for an audio-only one)");
        delete out;
        throw nb::value_error(reason.c_str());
    }
    return out;
}

}  // namespace

#define MPARAM(name, doc) \
    def_prop_rw(#name, [](MtmdParams &s) { return s.p.name; }, \
                [](MtmdParams &s, decltype(mtmd_context_params::name) v) { s.p.name = v; }, doc)

void init_mtmd(nb::module_ &m) {
    // llama.cpp's log callback (llamanb's trampoline, set by init_callbacks) for libmtmd too.
    {
        ggml_log_callback cb = nullptr;
        void *ud = nullptr;
        llama_log_get(&cb, &ud);
        mtmd_helper_log_set(cb, ud);
    }
    m.def("mtmd_default_marker", []() { return std::string(mtmd_default_marker()); },
          "The media marker tokenize() looks for by default (\"<__media__>\").");

    nb::enum_<mtmd_input_chunk_type>(m, "ChunkType", nb::is_arithmetic(), "mtmd_input_chunk_type: what a chunk holds.")
        .value("TEXT", MTMD_INPUT_CHUNK_TYPE_TEXT)
        .value("IMAGE", MTMD_INPUT_CHUNK_TYPE_IMAGE)
        .value("AUDIO", MTMD_INPUT_CHUNK_TYPE_AUDIO);

    nb::class_<MtmdParams>(m, "MtmdContextParams", "mtmd_context_params, with libmtmd's defaults.")
        .def(nb::init<>())
        .MPARAM(use_gpu, "Run the projector on the GPU (when one is compiled in).")
        .MPARAM(print_timings, "Log encode timings.")
        .MPARAM(n_threads, "Threads for the projector's encode.")
        .MPARAM(flash_attn_type, "Flash attention in the projector.")
        .MPARAM(warmup, "Run a warmup encode when loading.")
        .MPARAM(image_min_tokens, "Fewest tokens per image (dynamic-resolution models; -1: the file's).")
        .MPARAM(image_max_tokens, "Most tokens per image (dynamic-resolution models; -1: the file's).")
        .MPARAM(batch_max_tokens, "Most output tokens of a media batch encode.")
        .def_prop_rw("media_marker", [](const MtmdParams &s) { return s.media_marker; },
                     [](MtmdParams &s, std::string v) {
                         if (v.empty()) throw nb::value_error("media_marker must not be empty");
                         s.media_marker = std::move(v);
                     }, "The text tokenize() replaces by each bitmap, in order.");

    nb::class_<Bitmap>(m, "Bitmap",
        "mtmd_bitmap: a decoded image (RGB, row-major) or audio clip (PCM float32 at the\n"
        "projector's sample rate). Immutable; its id (if any) is given at creation.")
        .def("__init__", [](Bitmap *self, uint32_t nx, uint32_t ny, nb::bytes data, std::optional<std::string> id) {
                if (nx == 0 || ny == 0) throw nb::value_error("an image needs nx > 0 and ny > 0");
                if ((uint64_t) nx * ny * 3 != data.size())
                    throw nb::value_error(("RGB data of a " + std::to_string(nx) + "x" + std::to_string(ny) + " image is " +
                                           std::to_string((uint64_t) nx * ny * 3) + " bytes, got " +
                                           std::to_string(data.size())).c_str());
                new (self) Bitmap();
                self->ptr = mtmd_bitmap_init(nx, ny, (const unsigned char *) data.c_str());
                set_id(*self, id);
            }, "nx"_a, "ny"_a, "data"_a, "id"_a = nb::none(),
             "An image from nx*ny*3 bytes of RGB (rows top to bottom).")
        .def_static("from_array", [](nb::ndarray<const uint8_t, nb::ndim<3>, nb::c_contig, nb::device::cpu> a,
                                     std::optional<std::string> id) {
                if (a.shape(2) != 3) throw nb::value_error(("an image array must be H x W x 3 (RGB), got a last axis of " +
                                                            std::to_string(a.shape(2))).c_str());
                if (a.shape(0) == 0 || a.shape(1) == 0 || a.shape(0) > UINT32_MAX || a.shape(1) > UINT32_MAX)
                    throw nb::value_error("an image array needs H > 0 and W > 0");
                auto *b = new Bitmap();
                b->ptr = mtmd_bitmap_init((uint32_t) a.shape(1), (uint32_t) a.shape(0), a.data());
                set_id(*b, id);
                return b;
            }, "array"_a, "id"_a = nb::none(),
             nb::sig("def from_array(array: numpy.typing.NDArray[numpy.uint8], id: str | None = None) -> Bitmap"),
             "An image from an H x W x 3 uint8 RGB array (libmtmd keeps its own copy).")
        .def_static("from_audio", [](nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu> a,
                                     std::optional<std::string> id) {
                if (a.shape(0) == 0) throw nb::value_error("an audio clip needs at least one sample");
                auto *b = new Bitmap();
                b->ptr = mtmd_bitmap_init_from_audio(a.shape(0), a.data());
                set_id(*b, id);
                return b;
            }, "samples"_a, "id"_a = nb::none(),
             nb::sig("def from_audio(samples: numpy.typing.NDArray[numpy.float32], id: str | None = None) -> Bitmap"),
             "Audio from mono PCM float32 samples at the projector's sample rate (MtmdContext.audio_sample_rate).")
        .def_prop_ro("nx", [](const Bitmap &b) { return mtmd_bitmap_get_nx(b.ptr); }, "Width (audio: samples).")
        .def_prop_ro("ny", [](const Bitmap &b) { return mtmd_bitmap_get_ny(b.ptr); }, "Height (audio: 1).")
        .def_prop_ro("is_audio", [](const Bitmap &b) { return mtmd_bitmap_is_audio(b.ptr); }, "Whether this is audio.")
        .def_prop_ro("n_bytes", [](const Bitmap &b) { return mtmd_bitmap_get_n_bytes(b.ptr); }, "Size of the data.")
        .def_prop_ro("id", [](const Bitmap &b) -> std::optional<std::string> {
                const char *id = mtmd_bitmap_get_id(b.ptr);
                if (!id || !*id) return std::nullopt;
                return std::string(id);
            }, "The id chunks of this bitmap carry (files and bytes: their SHA-256), or None.")
        .def_prop_ro("data", [](nb::handle self) {
                Bitmap &b = nb::cast<Bitmap &>(self);
                const unsigned char *d = mtmd_bitmap_get_data(b.ptr);
                if (mtmd_bitmap_is_audio(b.ptr))
                    return nb::cast(nb::ndarray<nb::numpy, const float, nb::ndim<1>>(
                        (const float *) d, {(size_t) mtmd_bitmap_get_n_bytes(b.ptr) / sizeof(float)}, self));
                return nb::cast(nb::ndarray<nb::numpy, const uint8_t, nb::ndim<3>>(
                    d, {(size_t) mtmd_bitmap_get_ny(b.ptr), (size_t) mtmd_bitmap_get_nx(b.ptr), (size_t) 3}, self));
            }, nb::rv_policy::automatic,
             nb::sig("def data(self) -> numpy.typing.NDArray[numpy.uint8] | numpy.typing.NDArray[numpy.float32]"),
             "A read-only view of the pixels (H x W x 3 uint8) or samples (float32); it keeps the bitmap alive.")
        .def("__repr__", [](const Bitmap &b) {
                return mtmd_bitmap_is_audio(b.ptr) ? "<Bitmap audio " + std::to_string(mtmd_bitmap_get_nx(b.ptr)) + " samples>"
                                                   : "<Bitmap " + std::to_string(mtmd_bitmap_get_nx(b.ptr)) + "x" +
                                                         std::to_string(mtmd_bitmap_get_ny(b.ptr)) + ">";
            });

    nb::class_<InputChunk>(m, "InputChunk", "mtmd_input_chunk: text tokens, or an image or audio clip's tokens.")
        .def_prop_ro("type", [](const InputChunk &c) { return mtmd_input_chunk_get_type(c.ptr); }, "TEXT, IMAGE or AUDIO.")
        .def_prop_ro("n_tokens", [](const InputChunk &c) { return mtmd_input_chunk_get_n_tokens(c.ptr); },
                     "Tokens (KV-cache cells) the chunk takes.")
        .def_prop_ro("n_pos", [](const InputChunk &c) { return mtmd_input_chunk_get_n_pos(c.ptr); },
                     "Positions it advances (n_tokens, except for M-RoPE media).")
        .def_prop_ro("id", [](const InputChunk &c) -> std::optional<std::string> {
                const char *id = mtmd_input_chunk_get_id(c.ptr);
                if (!id || !*id) return std::nullopt;
                return std::string(id);
            }, "The media's id (its bitmap's), or None for text and bitmaps without one.")
        .def_prop_ro("tokens", [](const InputChunk &c) {
                size_t n = 0;
                const llama_token *t = mtmd_input_chunk_get_type(c.ptr) == MTMD_INPUT_CHUNK_TYPE_TEXT
                                           ? mtmd_input_chunk_get_tokens_text(c.ptr, &n) : nullptr;
                return to_numpy(std::vector<llama_token>(t, t + (t ? n : 0)));
            }, nb::rv_policy::automatic, nb::sig("def tokens(self) -> numpy.typing.NDArray[numpy.int32]"),
             "A text chunk's token ids (a copy); empty for media.")
        .def("__repr__", [](const InputChunk &c) {
                static const char *names[] = {"TEXT", "IMAGE", "AUDIO"};
                auto t = mtmd_input_chunk_get_type(c.ptr);
                return std::string("<InputChunk ") + (t < 3 ? names[t] : "?") + " n_tokens=" +
                       std::to_string(mtmd_input_chunk_get_n_tokens(c.ptr)) + ">";
            });

    nb::class_<InputChunks>(m, "InputChunks", "mtmd_input_chunks: the result of MtmdContext.tokenize().")
        .def("__len__", &InputChunks::size)
        .def("__getitem__", [](nb::handle self, Py_ssize_t i) {
                InputChunks &cs = nb::cast<InputChunks &>(self);
                Py_ssize_t n = (Py_ssize_t) cs.size();
                if (i < 0) i += n;
                if (i < 0 || i >= n) throw nb::index_error("chunk index out of range");
                return InputChunk{nb::borrow(self), &cs, mtmd_input_chunks_get(cs.ptr, (size_t) i)};
            }, "i"_a, "Chunk i (it keeps these chunks alive).")
        .def_prop_ro("n_tokens", [](const InputChunks &cs) { return mtmd_helper_get_n_tokens(cs.ptr); },
                     "Tokens of all chunks (KV-cache cells).")
        .def_prop_ro("n_pos", [](const InputChunks &cs) { return mtmd_helper_get_n_pos(cs.ptr); },
                     "Positions of all chunks.");

    nb::class_<MtmdContext>(m, "MtmdContext",
        "libmtmd's context: a multimodal projector (mmproj GGUF) for a text Model, which it\n"
        "keeps open. Encodes and evaluations release the GIL and run one at a time.")
        .def("__init__", [](MtmdContext *self, const std::filesystem::path &path, nb::object model_obj,
                            const MtmdParams *params) {
                Model &model = nb::cast<Model &>(model_obj);
                llama_model *mp = model.get();
                if (model.no_alloc) throw nb::value_error("this model was loaded with no_alloc: it has no weights");
                if (!std::filesystem::is_regular_file(path)) raise_missing_file("projector", path);
                MtmdParams defaults;
                const MtmdParams &prm = params ? *params : defaults;
                mtmd_context_params p = prm.p;
                std::string marker = prm.media_marker;
                p.media_marker = marker.c_str();
                p.image_marker = nullptr;
                std::string fname = path.string();
                model.acquire();  // the projector reads the model for its whole life
                mtmd_context *ctx;
                {
                    nb::gil_scoped_release nogil;
                    clear_last_error_log();
                    ctx = mtmd_init_from_file(fname.c_str(), mp, p);
                }
                if (!ctx) {
                    std::string reason = with_log_reason("failed to load the projector " + fname +
                                                         " (not an mmproj GGUF, or not one for this model)");
                    model.release();
                    throw ModelLoadError(reason);
                }
                new (self) MtmdContext();
                self->ptr = ctx;
                self->model_obj = model_obj;
                self->model = &model;
                self->path = fname;
                self->n_embd = llama_model_n_embd_inp(mp);
            }, "mmproj_path"_a, "model"_a, "params"_a = nb::none(),
             nb::sig("def __init__(self, mmproj_path: str | os.PathLike[str], model: Model, "
                     "params: MtmdContextParams | None = None) -> None"),
             "Load a projector for `model`. FileNotFoundError if there is no file; ModelLoadError\n"
             "if it is not an mmproj GGUF llama.cpp can load, or its width does not match the model.")
        .def("close", [](MtmdContext &c) {
                {
                    nb::gil_scoped_release nogil;
                    std::lock_guard<std::mutex> guard(c.mutex);  // waits for a running call
                    c.closing = true;
                }
                c.free_now();
            }, "Free the projector. Idempotent.")
        .def_prop_ro("closed", [](const MtmdContext &c) { return c.ptr == nullptr || c.closing; }, "True after close().")
        .def("__enter__", [](nb::object self) { return self; }, nb::sig("def __enter__(self) -> MtmdContext"))
        .def("__exit__", [](nb::handle self, nb::handle, nb::handle, nb::handle) { self.attr("close")(); },
             "exc_type"_a.none(), "exc"_a.none(), "tb"_a.none())
        .def_prop_ro("model", [](const MtmdContext &c) { return c.model_obj; }, nb::sig("def model(self) -> Model"),
                     "The text model.")
        .def_prop_ro("path", [](const MtmdContext &c) { return c.path; }, "The projector file.")
        .def_prop_ro("n_embd", [](const MtmdContext &c) { return c.n_embd; }, "Width of an encoded media token.")
        .def_prop_ro("supports_vision", [](const MtmdContext &c) { return mtmd_support_vision(c.get()); },
                     "Whether the projector takes images.")
        .def_prop_ro("supports_audio", [](const MtmdContext &c) { return mtmd_support_audio(c.get()); },
                     "Whether the projector takes audio.")
        .def_prop_ro("audio_sample_rate", [](const MtmdContext &c) { return mtmd_get_audio_sample_rate(c.get()); },
                     "Sample rate audio must have, in Hz (-1 without audio support).")
        .def_prop_ro("uses_mrope", [](const MtmdContext &c) { return mtmd_decode_use_mrope(c.get()); },
                     "Whether the text model uses M-RoPE (media chunks then take fewer positions than tokens).")
        .def_prop_ro("marker", [](const MtmdContext &c) { return std::string(mtmd_get_marker(c.get())); },
                     "The media marker tokenize() replaces by bitmaps.")
        .def("bitmap_from_file", [](MtmdContext &m, const std::filesystem::path &path, std::optional<std::string> id,
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
            }, "path"_a, "id"_a = nb::none(), "max_pixels"_a = 0,
             nb::sig("def bitmap_from_file(self, path: str | os.PathLike[str], id: str | None = None, "
                     "max_pixels: int = 0) -> Bitmap"),
             "Decode an image or audio file (GIL released); its id is its SHA-256 unless given.\n"
             "ValueError if it is not one llama.cpp reads, or (max_pixels > 0) an image larger than\n"
             "max_pixels, checked from its header before decoding.")
        .def("bitmap_from_bytes", [](MtmdContext &m, nb::bytes data, std::optional<std::string> id, uint64_t max_pixels) {
                // The bytes object is immutable and referenced by the caller's frame while the GIL is released.
                nb::object hold = data;
                return bitmap_from_buf(m, (const unsigned char *) data.c_str(), data.size(), id, max_pixels);
            }, "data"_a, "id"_a = nb::none(), "max_pixels"_a = 0,
             "Decode an image or audio file's bytes (GIL released); its id is their SHA-256 unless given.\n"
             "max_pixels > 0 refuses larger images from their header, before decoding.")
        .def("tokenize", [](nb::handle self, const std::string &text, nb::sequence bitmaps, bool add_special, bool parse_special) {
                MtmdContext &m = nb::cast<MtmdContext &>(self);
                std::vector<nb::object> items;
                for (nb::handle b : bitmaps) {
                    if (!nb::isinstance<Bitmap>(b)) throw nb::type_error("bitmaps must hold Bitmap objects");
                    items.push_back(nb::borrow(b));
                }
                return tokenize_impl(m, self, {}, {}, std::move(items), add_special, &text, parse_special);
            }, "text"_a, "bitmaps"_a, "add_special"_a = true, "parse_special"_a = true,
             nb::sig("def tokenize(self, text: str, bitmaps: collections.abc.Sequence[Bitmap], add_special: bool = True, "
                     "parse_special: bool = True) -> InputChunks"),
             "mtmd_tokenize: split `text` at each media marker into text and media chunks, the\n"
             "bitmaps in order (GIL released). ValueError if markers and bitmaps differ in number\n"
             "or the projector cannot take a bitmap (audio for a vision projector, ...).")
        .def("tokenize_parts", [](nb::handle self, nb::sequence parts, bool add_special) {
                MtmdContext &m = nb::cast<MtmdContext &>(self);
                std::vector<std::string> texts;
                std::vector<int> special;
                std::vector<nb::object> items;
                for (nb::handle p : parts) {
                    if (nb::isinstance<Bitmap>(p)) {
                        items.push_back(nb::borrow(p));
                    } else if (nb::isinstance<nb::str>(p)) {
                        texts.push_back(nb::cast<std::string>(p));
                        special.push_back(0);
                        items.push_back(nb::none());
                    } else if (nb::isinstance<nb::tuple>(p) && nb::len(p) == 2 && nb::isinstance<nb::str>(p[0]) &&
                               nb::isinstance<nb::bool_>(p[1])) {
                        texts.push_back(nb::cast<std::string>(p[0]));
                        special.push_back(nb::cast<bool>(p[1]) ? 1 : 0);
                        items.push_back(nb::none());
                    } else {
                        throw nb::type_error("parts must hold str, (str, parse_special: bool) or Bitmap");
                    }
                }
                return tokenize_impl(m, self, std::move(texts), std::move(special), std::move(items), add_special,
                                     nullptr, false);
            }, "parts"_a, "add_special"_a = false,
             nb::sig("def tokenize_parts(self, parts: collections.abc.Sequence[str | tuple[str, bool] | Bitmap], "
                     "add_special: bool = False) -> InputChunks"),
             "mtmd_tokenize_from_parts: text parts and bitmaps in order, no markers. A str part is\n"
             "plain text; (text, True) parses special-token text. GIL released.")
        .def("encode_chunk", [](MtmdContext &m, const InputChunk &chunk) {
                check_chunks_of(m, *chunk.chunks);
                if (mtmd_input_chunk_get_type(chunk.ptr) == MTMD_INPUT_CHUNK_TYPE_TEXT)
                    throw nb::value_error("a text chunk has nothing to encode");
                const size_t rows = mtmd_input_chunk_get_n_tokens(chunk.ptr), cols = (size_t) m.n_embd;
                nb::object hold = chunk.parent;
                auto *v = new std::vector<float>();
                int32_t rc;
                try {
                    rc = m.locked([&](mtmd_context *ctx) {
                        clear_last_error_log();
                        int32_t r = mtmd_encode_chunk(ctx, chunk.ptr);
                        if (r == 0) {
                            const float *e = mtmd_get_output_embd(ctx);
                            v->assign(e, e + rows * cols);
                        }
                        return r;
                    });
                } catch (...) {
                    delete v;
                    throw;
                }
                if (rc != 0) {
                    delete v;
                    throw LlamaError(with_log_reason("mtmd_encode_chunk failed"));
                }
                nb::capsule owner(v, [](void *p) noexcept { delete static_cast<std::vector<float> *>(p); });
                return nb::ndarray<nb::numpy, float, nb::ndim<2>>(v->data(), {rows, cols}, owner);
            }, "chunk"_a, nb::sig("def encode_chunk(self, chunk: InputChunk) -> numpy.typing.NDArray[numpy.float32]"),
             "Encode an image or audio chunk (GIL released): its embeddings, n_tokens x n_embd (a copy).")
        .def("eval_chunks", [](MtmdContext &m, Context &c, InputChunks &chunks, llama_pos n_past, llama_seq_id seq,
                               int32_t n_batch, bool logits_last) {
                return eval_range(m, c, chunks, 0, chunks.size(), n_past, seq, n_batch, logits_last);
            }, "ctx"_a, "chunks"_a, "n_past"_a, "seq_id"_a = 0, "n_batch"_a = 0, "logits_last"_a = true,
             "mtmd_helper_eval_chunks: decode text chunks and encode + decode media chunks into\n"
             "sequence seq_id of ctx from position n_past; returns the next position. GIL released.\n"
             "n_batch 0 takes the context's. Raises ContextFullError / AbortedError as decode() does.")
        .def("eval_chunk", [](MtmdContext &m, Context &c, const InputChunk &chunk, llama_pos n_past, llama_seq_id seq,
                              int32_t n_batch, bool logits_last) {
                InputChunks &cs = *chunk.chunks;
                size_t i = 0;
                while (i < cs.size() && mtmd_input_chunks_get(cs.ptr, i) != chunk.ptr) ++i;
                nb::object hold = chunk.parent;
                return eval_range(m, c, cs, i, i + 1, n_past, seq, n_batch, logits_last);
            }, "ctx"_a, "chunk"_a, "n_past"_a, "seq_id"_a = 0, "n_batch"_a = 0, "logits_last"_a = false,
             "mtmd_helper_eval_chunk_single: one chunk, as eval_chunks(); returns the next position.");
}
