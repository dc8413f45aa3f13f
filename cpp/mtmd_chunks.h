// Chunks (mtmd_chunks.cpp): mtmd_tokenize splits text and media into InputChunks;
// encode_chunk encodes one media chunk.
#pragma once

#include "mtmd_media.h"

// Owns the chunks of one tokenize() call, and keeps the MtmdContext that made them.
struct InputChunks {
    mtmd_input_chunks *ptr = nullptr;
    nb::object mctx_obj;
    MtmdContext *mctx = nullptr;
    size_t size() const { return mtmd_input_chunks_size(ptr); }
    ~InputChunks() {
        if (ptr) mtmd_input_chunks_free(ptr);
    }
};

// One chunk, borrowed from its InputChunks (kept alive; chunks never change).
struct InputChunk {
    nb::object parent;
    InputChunks *chunks = nullptr;
    const mtmd_input_chunk *ptr = nullptr;
};

// ValueError unless CHUNKS were tokenized by M.
void check_chunks_of(MtmdContext &m, const InputChunks &chunks);

// MtmdContext.tokenize: text with media markers and the bitmaps, in order.
InputChunks *mtmd_tokenize_text(nb::handle self, const std::string &text, nb::sequence bitmaps, bool add_special,
                                bool parse_special);
// MtmdContext.tokenize_parts: text parts and bitmaps in order, no markers.
InputChunks *mtmd_tokenize_parts(nb::handle self, nb::sequence parts, bool add_special);
// MtmdContext.encode_chunk: a media chunk's embeddings, n_tokens x n_embd (a copy).
nb::ndarray<nb::numpy, float, nb::ndim<2>> encode_chunk(MtmdContext &m, const InputChunk &chunk);

// ChunkType, InputChunk and InputChunks, on M.
void init_mtmd_chunks(nb::module_ &m);
