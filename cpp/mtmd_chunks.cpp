// Chunks (mtmd_chunks.h).
#include "mtmd_chunks.h"

void check_chunks_of(MtmdContext &m, const InputChunks &chunks) {
    if (chunks.mctx != &m)
        throw nb::value_error("these chunks were tokenized by another MtmdContext; tokenize them with this one");
}

namespace {

InputChunks *tokenize_impl(MtmdContext &m, nb::handle self, std::vector<std::string> texts,
                           std::vector<int> text_special, std::vector<nb::object> items, bool add_special,
                           const std::string *marked_text, bool parse_special) {
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

InputChunks *mtmd_tokenize_text(nb::handle self, const std::string &text, nb::sequence bitmaps, bool add_special,
                                bool parse_special) {
    MtmdContext &m = nb::cast<MtmdContext &>(self);
    std::vector<nb::object> items;
    for (nb::handle b : bitmaps) {
        if (!nb::isinstance<Bitmap>(b)) throw nb::type_error("bitmaps must hold Bitmap objects");
        items.push_back(nb::borrow(b));
    }
    return tokenize_impl(m, self, {}, {}, std::move(items), add_special, &text, parse_special);
}

InputChunks *mtmd_tokenize_parts(nb::handle self, nb::sequence parts, bool add_special) {
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
    return tokenize_impl(m, self, std::move(texts), std::move(special), std::move(items), add_special, nullptr, false);
}

nb::ndarray<nb::numpy, float, nb::ndim<2>> encode_chunk(MtmdContext &m, const InputChunk &chunk) {
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
}

void init_mtmd_chunks(nb::module_ &m) {
    nb::enum_<mtmd_input_chunk_type>(m, "ChunkType", nb::is_arithmetic(), "mtmd_input_chunk_type: what a chunk holds.")
        .value("TEXT", MTMD_INPUT_CHUNK_TYPE_TEXT)
        .value("IMAGE", MTMD_INPUT_CHUNK_TYPE_IMAGE)
        .value("AUDIO", MTMD_INPUT_CHUNK_TYPE_AUDIO);

    nb::class_<InputChunk>(m, "InputChunk", "mtmd_input_chunk: text tokens, or an image or audio clip's tokens.")
        .def_prop_ro(
            "type", [](const InputChunk &c) { return mtmd_input_chunk_get_type(c.ptr); }, "TEXT, IMAGE or AUDIO.")
        .def_prop_ro(
            "n_tokens", [](const InputChunk &c) { return mtmd_input_chunk_get_n_tokens(c.ptr); },
            "Tokens (KV-cache cells) the chunk takes.")
        .def_prop_ro(
            "n_pos", [](const InputChunk &c) { return mtmd_input_chunk_get_n_pos(c.ptr); },
            "Positions it advances (n_tokens, except for M-RoPE media).")
        .def_prop_ro(
            "id",
            [](const InputChunk &c) -> std::optional<std::string> {
                const char *id = mtmd_input_chunk_get_id(c.ptr);
                if (!id || !*id) return std::nullopt;
                return std::string(id);
            },
            "The media's id (its bitmap's), or None for text and bitmaps without one.")
        .def_prop_ro(
            "tokens",
            [](const InputChunk &c) {
                size_t n = 0;
                const llama_token *t = mtmd_input_chunk_get_type(c.ptr) == MTMD_INPUT_CHUNK_TYPE_TEXT
                                           ? mtmd_input_chunk_get_tokens_text(c.ptr, &n)
                                           : nullptr;
                return to_numpy(std::vector<llama_token>(t, t + (t ? n : 0)));
            },
            nb::rv_policy::automatic, nb::sig("def tokens(self) -> numpy.typing.NDArray[numpy.int32]"),
            "A text chunk's token ids (a copy); empty for media.")
        .def("__repr__", [](const InputChunk &c) {
            static const char *names[] = {"TEXT", "IMAGE", "AUDIO"};
            auto t = mtmd_input_chunk_get_type(c.ptr);
            return std::string("<InputChunk ") + (t < 3 ? names[t] : "?") +
                   " n_tokens=" + std::to_string(mtmd_input_chunk_get_n_tokens(c.ptr)) + ">";
        });

    nb::class_<InputChunks>(m, "InputChunks", "mtmd_input_chunks: the result of MtmdContext.tokenize().")
        .def("__len__", &InputChunks::size)
        .def(
            "__getitem__",
            [](nb::handle self, Py_ssize_t i) {
                InputChunks &cs = nb::cast<InputChunks &>(self);
                Py_ssize_t n = (Py_ssize_t) cs.size();
                if (i < 0) i += n;
                if (i < 0 || i >= n) throw nb::index_error("chunk index out of range");
                return InputChunk{nb::borrow(self), &cs, mtmd_input_chunks_get(cs.ptr, (size_t) i)};
            },
            "i"_a, "Chunk i (it keeps these chunks alive).")
        .def_prop_ro(
            "n_tokens", [](const InputChunks &cs) { return mtmd_helper_get_n_tokens(cs.ptr); },
            "Tokens of all chunks (KV-cache cells).")
        .def_prop_ro(
            "n_pos", [](const InputChunks &cs) { return mtmd_helper_get_n_pos(cs.ptr); }, "Positions of all chunks.");
}
