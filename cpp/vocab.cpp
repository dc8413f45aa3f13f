// llama_vocab: special tokens, token attributes, tokenize/detokenize (GIL released).
#include "model.h"

#include <nanobind/stl/string_view.h>

namespace {

std::vector<llama_token> tokenize(const llama_vocab *vocab, std::string_view text, bool add_special,
                                  bool parse_special) {
    if (text.size() > (size_t) INT32_MAX) throw nb::value_error("text too long to tokenize (over 2 GiB)");
    // One token per byte plus specials is an upper bound for every tokenizer but
    // a retry on a negative count keeps us correct whatever the vocab does.
    std::vector<llama_token> out(text.size() + 4);
    int32_t n = llama_tokenize(vocab, text.data(), (int32_t) text.size(), out.data(), (int32_t) out.size(), add_special,
                               parse_special);
    if (n == INT32_MIN) throw nb::value_error("tokenization result exceeds int32 range");
    if (n < 0) {
        out.resize((size_t) -n);
        n = llama_tokenize(vocab, text.data(), (int32_t) text.size(), out.data(), (int32_t) out.size(), add_special,
                           parse_special);
        if (n < 0) throw LlamaError("llama_tokenize failed");
    }
    out.resize((size_t) n);
    return out;
}

std::string token_to_piece(const llama_vocab *vocab, llama_token token, int32_t lstrip, bool special) {
    char small[64];
    int32_t n = llama_token_to_piece(vocab, token, small, sizeof small, lstrip, special);
    if (n >= 0) return std::string(small, (size_t) n);
    std::string big((size_t) -n, '\0');
    n = llama_token_to_piece(vocab, token, big.data(), (int32_t) big.size(), lstrip, special);
    if (n < 0) throw LlamaError("llama_token_to_piece failed");
    big.resize((size_t) n);
    return big;
}

nb::bytes detokenize(const Vocab &v, const int32_t *tokens, size_t count, bool remove_special, bool unparse_special) {
    const llama_vocab *vocab = v.get();
    check_tokens(vocab, tokens, count);
    if (count > (size_t) INT32_MAX) throw nb::value_error("too many tokens");
    std::string out;
    {
        ModelUse use(v.model);  // a close() from another thread defers the free
        nb::gil_scoped_release nogil;
        out.resize(count * 8 + 16);
        int32_t n = llama_detokenize(vocab, tokens, (int32_t) count, out.data(), (int32_t) out.size(), remove_special,
                                     unparse_special);
        if (n < 0) {
            out.resize((size_t) -n);
            n = llama_detokenize(vocab, tokens, (int32_t) count, out.data(), (int32_t) out.size(), remove_special,
                                 unparse_special);
        }
        if (n < 0) throw LlamaError("llama_detokenize failed");
        out.resize((size_t) n);
    }
    return nb::bytes(out.data(), out.size());
}

}  // namespace

void check_tokens(const llama_vocab *vocab, const int32_t *tokens, size_t n) {
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);
    for (size_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            throw nb::index_error(("token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                                   " out of range [0, " + std::to_string(n_vocab) + ")")
                                      .c_str());
    }
}

#define TOKEN_PROP(name, fn, doc) def_prop_ro(name, [](const Vocab &v) { return fn(v.get()); }, doc)

void init_vocab(nb::module_ &m) {
    nb::enum_<enum llama_vocab_type>(m, "VocabType", nb::is_arithmetic(), "Tokenizer family.")
        .value("NONE", LLAMA_VOCAB_TYPE_NONE)
        .value("SPM", LLAMA_VOCAB_TYPE_SPM)
        .value("BPE", LLAMA_VOCAB_TYPE_BPE)
        .value("WPM", LLAMA_VOCAB_TYPE_WPM)
        .value("UGM", LLAMA_VOCAB_TYPE_UGM)
        .value("RWKV", LLAMA_VOCAB_TYPE_RWKV)
        .value("PLAMO2", LLAMA_VOCAB_TYPE_PLAMO2)
        .value("TEST", LLAMA_VOCAB_TYPE_TEST)
        .value("PLAMO3", LLAMA_VOCAB_TYPE_PLAMO3);
    nb::enum_<llama_token_attr>(m, "TokenAttr", nb::is_arithmetic(),
                                "Token attribute bits; Vocab.get_attr returns their OR as an int.")
        .value("UNDEFINED", LLAMA_TOKEN_ATTR_UNDEFINED)
        .value("UNKNOWN", LLAMA_TOKEN_ATTR_UNKNOWN)
        .value("UNUSED", LLAMA_TOKEN_ATTR_UNUSED)
        .value("NORMAL", LLAMA_TOKEN_ATTR_NORMAL)
        .value("CONTROL", LLAMA_TOKEN_ATTR_CONTROL)
        .value("USER_DEFINED", LLAMA_TOKEN_ATTR_USER_DEFINED)
        .value("BYTE", LLAMA_TOKEN_ATTR_BYTE)
        .value("NORMALIZED", LLAMA_TOKEN_ATTR_NORMALIZED)
        .value("LSTRIP", LLAMA_TOKEN_ATTR_LSTRIP)
        .value("RSTRIP", LLAMA_TOKEN_ATTR_RSTRIP)
        .value("SINGLE_WORD", LLAMA_TOKEN_ATTR_SINGLE_WORD);

    nb::class_<Vocab>(m, "Vocab", "A model's vocabulary (llama_vocab). Keeps its Model alive.")
        .def_prop_ro(
            "model", [](const Vocab &v) { return v.owner; }, nb::sig("def model(self) -> Model"),
            "The model this vocabulary belongs to.")
        .def_prop_ro(
            "type", [](const Vocab &v) { return llama_vocab_type(v.get()); }, "Tokenizer family.")
        .def_prop_ro("n_tokens", &Vocab::n_tokens, "Number of tokens.")
        .def("__len__", &Vocab::n_tokens)
        .TOKEN_PROP("bos", llama_vocab_bos, "Beginning-of-sentence token, or -1.")
        .TOKEN_PROP("eos", llama_vocab_eos, "End-of-sentence token, or -1.")
        .TOKEN_PROP("eot", llama_vocab_eot, "End-of-turn token, or -1.")
        .TOKEN_PROP("sep", llama_vocab_sep, "Sentence separator token, or -1.")
        .TOKEN_PROP("nl", llama_vocab_nl, "Newline token, or -1.")
        .TOKEN_PROP("pad", llama_vocab_pad, "Padding token, or -1.")
        .TOKEN_PROP("mask", llama_vocab_mask, "Mask token, or -1.")
        .TOKEN_PROP("fim_pre", llama_vocab_fim_pre, "Fill-in-the-middle prefix token, or -1.")
        .TOKEN_PROP("fim_suf", llama_vocab_fim_suf, "Fill-in-the-middle suffix token, or -1.")
        .TOKEN_PROP("fim_mid", llama_vocab_fim_mid, "Fill-in-the-middle middle token, or -1.")
        .TOKEN_PROP("fim_pad", llama_vocab_fim_pad, "Fill-in-the-middle pad token, or -1.")
        .TOKEN_PROP("fim_rep", llama_vocab_fim_rep, "Fill-in-the-middle repo token, or -1.")
        .TOKEN_PROP("fim_sep", llama_vocab_fim_sep, "Fill-in-the-middle separator token, or -1.")
        .TOKEN_PROP("add_bos", llama_vocab_get_add_bos, "Whether tokenize(add_special=True) prepends BOS.")
        .TOKEN_PROP("add_eos", llama_vocab_get_add_eos, "Whether tokenize(add_special=True) appends EOS.")
        .TOKEN_PROP("add_sep", llama_vocab_get_add_sep, "Whether tokenize(add_special=True) appends SEP.")
        .def_prop_ro(
            "suppress_tokens",
            [](const Vocab &v) {
                int32_t n = 0;
                const llama_token *t = llama_vocab_get_suppress_tokens(v.get(), &n);
                return std::vector<llama_token>(t, t + (t ? n : 0));
            },
            "Tokens the model asks never to be generated.")
        .def(
            "get_text",
            [](const Vocab &v, llama_token t) {
                v.check_token(t);
                return nb::bytes(llama_vocab_get_text(v.get(), t));
            },
            "token"_a, "The token's raw vocabulary text (bytes; not detokenized).")
        .def(
            "get_score",
            [](const Vocab &v, llama_token t) {
                v.check_token(t);
                return llama_vocab_get_score(v.get(), t);
            },
            "token"_a, "The token's score.")
        .def(
            "get_attr",
            [](const Vocab &v, llama_token t) {
                v.check_token(t);
                return (int) llama_vocab_get_attr(v.get(), t);
            },
            "token"_a, "The token's attribute bits (see TokenAttr).")
        .def(
            "is_eog",
            [](const Vocab &v, llama_token t) {
                v.check_token(t);
                return llama_vocab_is_eog(v.get(), t);
            },
            "token"_a, "True for end-of-generation tokens (EOS, EOT, ...).")
        .def(
            "is_control",
            [](const Vocab &v, llama_token t) {
                v.check_token(t);
                return llama_vocab_is_control(v.get(), t);
            },
            "token"_a, "True for control tokens.")
        .def(
            "tokenize",
            [](const Vocab &v, std::string_view text, bool add_special, bool parse_special) {
                const llama_vocab *vocab = v.get();
                std::vector<llama_token> out;
                {
                    ModelUse use(v.model);  // a close() from another thread defers the free
                    nb::gil_scoped_release nogil;
                    out = tokenize(vocab, text, add_special, parse_special);
                }
                return to_numpy(std::move(out));
            },
            "text"_a, "add_special"_a = true, "parse_special"_a = false,
            "UTF-8 text to token ids (int32 array). The GIL is released.\n\n"
            "add_special adds BOS/EOS as the model is configured; parse_special turns\n"
            "special-token text like '<|im_start|>' into its token instead of plain text.")
        .def(
            "token_to_piece",
            [](const Vocab &v, llama_token t, int32_t lstrip, bool special) {
                v.check_token(t);
                std::string piece = token_to_piece(v.get(), t, lstrip, special);
                return nb::bytes(piece.data(), piece.size());
            },
            "token"_a, "lstrip"_a = 0, "special"_a = false,
            "The bytes of one token (may be a partial UTF-8 sequence).\n"
            "lstrip skips up to that many leading spaces; special renders special tokens.")
        .def(
            "detokenize",
            [](const Vocab &v, TokensIn tokens, bool remove_special, bool unparse_special) {
                return detokenize(v, tokens.data(), tokens.shape(0), remove_special, unparse_special);
            },
            "tokens"_a.noconvert(), "remove_special"_a = false, "unparse_special"_a = false,
            "Token ids to UTF-8 bytes (inverse of tokenize). The GIL is released.")
        .def(
            "detokenize",
            [](const Vocab &v, const std::vector<llama_token> &tokens, bool remove_special, bool unparse_special) {
                return detokenize(v, tokens.data(), tokens.size(), remove_special, unparse_special);
            },
            "tokens"_a, "remove_special"_a = false, "unparse_special"_a = false,
            "Token ids to UTF-8 bytes (inverse of tokenize). The GIL is released.");
}
