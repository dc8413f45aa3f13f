// libmtmd (llama.cpp's tools/mtmd): images and audio for every projector type llama.cpp
// supports. An MtmdContext loads a projector (mmproj GGUF) for a text Model; Bitmaps
// hold decoded images (RGB) or audio (PCM f32); tokenize() splits text with media
// markers into InputChunks (text tokens, image or audio chunks); eval_chunks() encodes
// the media and decodes everything into a Context sequence with llama.cpp's helpers
// (mtmd_helper_*), the GIL released. The facade (llamanb.media) decides policy.
//
// Files by area: the context (mtmd_context.h), media (mtmd_media.h), chunks
// (mtmd_chunks.h) and evaluation (mtmd_eval.h). This one binds core.mtmd.
#include "mtmd_eval.h"

#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/pair.h>

void init_mtmd(nb::module_ &m) {
    // llama.cpp's log callback (llamanb's trampoline, set by init_callbacks) for libmtmd too.
    {
        ggml_log_callback cb = nullptr;
        void *ud = nullptr;
        llama_log_get(&cb, &ud);
        mtmd_helper_log_set(cb, ud);
    }
    m.def(
        "default_marker", []() { return std::string(mtmd_default_marker()); },
        "The media marker tokenize() looks for by default (\"<__media__>\").");

    init_mtmd_chunks(m);
    init_mtmd_context_params(m);
    init_mtmd_bitmap(m);

    nb::class_<MtmdContext>(m, "MtmdContext",
                            "libmtmd's context: a multimodal projector (mmproj GGUF) for a text Model, which it\n"
                            "keeps open. Encodes and evaluations release the GIL and run one at a time.")
        .def("__init__", &mtmd_context_init, "mmproj_path"_a, "model"_a, "params"_a = nb::none(),
             nb::sig("def __init__(self, mmproj_path: str | os.PathLike[str], model: llamanb.core.Model, "
                     "params: MtmdContextParams | None = None) -> None"),
             "Load a projector for `model`. FileNotFoundError if there is no file; ModelLoadError\n"
             "if it is not an mmproj GGUF llama.cpp can load, or its width does not match the model.")
        .def("close", &mtmd_context_close, "Free the projector. Idempotent.")
        .def_prop_ro(
            "closed", [](const MtmdContext &c) { return c.ptr == nullptr || c.closing; }, "True after close().")
        .def(
            "__enter__", [](nb::object self) { return self; }, nb::sig("def __enter__(self) -> MtmdContext"))
        .def(
            "__exit__", [](nb::handle self, nb::handle, nb::handle, nb::handle) { self.attr("close")(); },
            "exc_type"_a.none(), "exc"_a.none(), "tb"_a.none())
        .def_prop_ro(
            "model", [](const MtmdContext &c) { return c.model_obj; }, nb::sig("def model(self) -> llamanb.core.Model"),
            "The text model.")
        .def_prop_ro(
            "path", [](const MtmdContext &c) { return c.path; }, "The projector file.")
        .def_prop_ro(
            "n_embd", [](const MtmdContext &c) { return c.n_embd; }, "Width of an encoded media token.")
        .def_prop_ro(
            "supports_vision", [](const MtmdContext &c) { return mtmd_support_vision(c.get()); },
            "Whether the projector takes images.")
        .def_prop_ro(
            "supports_audio", [](const MtmdContext &c) { return mtmd_support_audio(c.get()); },
            "Whether the projector takes audio.")
        .def_prop_ro(
            "audio_sample_rate", [](const MtmdContext &c) { return mtmd_get_audio_sample_rate(c.get()); },
            "Sample rate audio must have, in Hz (-1 without audio support).")
        .def_prop_ro(
            "uses_mrope", [](const MtmdContext &c) { return mtmd_decode_use_mrope(c.get()); },
            "Whether the text model uses M-RoPE (media chunks then take fewer positions than tokens).")
        .def_prop_ro(
            "marker", [](const MtmdContext &c) { return std::string(mtmd_get_marker(c.get())); },
            "The media marker tokenize() replaces by bitmaps.")
        .def("bitmap_from_file", &bitmap_from_file, "path"_a, "id"_a = nb::none(), "max_pixels"_a = 0,
             nb::sig("def bitmap_from_file(self, path: str | os.PathLike[str], id: str | None = None, "
                     "max_pixels: int = 0) -> Bitmap"),
             "Decode an image or audio file (GIL released); its id is its SHA-256 unless given.\n"
             "ValueError if it is not one llama.cpp reads, or (max_pixels > 0) an image larger than\n"
             "max_pixels, checked from its header before decoding.")
        .def("bitmap_from_bytes", &bitmap_from_bytes, "data"_a, "id"_a = nb::none(), "max_pixels"_a = 0,
             "Decode an image or audio file's bytes (GIL released); its id is their SHA-256 unless given.\n"
             "max_pixels > 0 refuses larger images from their header, before decoding.")
        .def("tokenize", &mtmd_tokenize_text, "text"_a, "bitmaps"_a, "add_special"_a = true, "parse_special"_a = true,
             nb::sig(
                 "def tokenize(self, text: str, bitmaps: collections.abc.Sequence[Bitmap], add_special: bool = True, "
                 "parse_special: bool = True) -> InputChunks"),
             "mtmd_tokenize: split `text` at each media marker into text and media chunks, the\n"
             "bitmaps in order (GIL released). ValueError if markers and bitmaps differ in number\n"
             "or the projector cannot take a bitmap (audio for a vision projector, ...).")
        .def("tokenize_parts", &mtmd_tokenize_parts, "parts"_a, "add_special"_a = false,
             nb::sig("def tokenize_parts(self, parts: collections.abc.Sequence[str | tuple[str, bool] | Bitmap], "
                     "add_special: bool = False) -> InputChunks"),
             "mtmd_tokenize_from_parts: text parts and bitmaps in order, no markers. A str part is\n"
             "plain text; (text, True) parses special-token text. GIL released.")
        .def("encode_chunk", &encode_chunk, "chunk"_a,
             nb::sig("def encode_chunk(self, chunk: InputChunk) -> numpy.typing.NDArray[numpy.float32]"),
             "Encode an image or audio chunk (GIL released): its embeddings, n_tokens x n_embd (a copy).")
        .def("eval_chunks", &eval_chunks, "ctx"_a, "chunks"_a, "n_past"_a, "seq_id"_a = 0, "n_batch"_a = 0,
             "logits_last"_a = true,
             "mtmd_helper_eval_chunks: decode text chunks and encode + decode media chunks into\n"
             "sequence seq_id of ctx from position n_past; returns the next position. GIL released.\n"
             "n_batch 0 takes the context's. Raises ContextFullError / AbortedError as decode() does.")
        .def("eval_chunk", &eval_chunk, "ctx"_a, "chunk"_a, "n_past"_a, "seq_id"_a = 0, "n_batch"_a = 0,
             "logits_last"_a = false,
             "mtmd_helper_eval_chunk_single: one chunk, as eval_chunks(); returns the next position.");
}
