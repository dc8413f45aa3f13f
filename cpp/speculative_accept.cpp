// Acceptance (speculative_accept.h).
#include "speculative_accept.h"

void speculative_accept(Speculative &s, llama_seq_id seq, int32_t n_accepted) {
    s.check_open();
    s.check_seq(seq);
    size_t drafted = s.last_draft[(size_t) seq];
    if (n_accepted < 0 || (size_t) n_accepted > drafted)
        throw nb::value_error(("n_accepted=" + std::to_string(n_accepted) + " but the last draft of sequence " +
                               std::to_string(seq) + " had " + std::to_string(drafted) +
                               " token(s) (accept() once per draft)")
                                  .c_str());
    if (drafted > 0) {
        s.locked([&] { common_speculative_accept(s.ptr, seq, (uint16_t) n_accepted); });
        s.n_accept_calls += 1;
        s.n_accepted += (uint64_t) n_accepted;
    }
    s.last_draft[(size_t) seq] = 0;
}

namespace {

// common_sampler_sample_and_accept_n over a core Sampler chain: sample (and accept)
// the target's token at output idxs[i]; go on while it equals draft[i], and never past
// an end-of-generation token. The tokens are exactly those plain decoding samples at
// those positions (same chain, same order of draws).
nb::ndarray<nb::numpy, llama_token, nb::ndim<1>> sample_and_accept_n(Sampler &s, Context &c,
                                                                     const std::vector<llama_token> &draft,
                                                                     std::vector<int32_t> idxs) {
    c.check_open();
    if (idxs.empty()) {
        idxs.resize(draft.size() + 1);
        for (size_t i = 0; i < idxs.size(); ++i) idxs[i] = (int32_t) i;
    }
    if (idxs.size() != draft.size() + 1)
        throw nb::value_error(("idxs must hold len(draft) + 1 = " + std::to_string(draft.size() + 1) +
                               " output indices, got " + std::to_string(idxs.size()))
                                  .c_str());
    const llama_vocab *vocab = llama_model_get_vocab(c.model->ptr);
    check_tokens(vocab, draft.data(), draft.size());
    std::vector<llama_token> result;
    result.reserve(idxs.size());
    s.locked([&](llama_sampler *smpl) {
        std::lock_guard<CallMutex> cg(c.mutex);  // lock order: sampler, then context
        if (!c.ptr || c.close_requested) throw ClosedError("Context is closed");
        clear_last_error_log();
        for (size_t i = 0; i < idxs.size(); ++i) {
            llama_token id = sample_locked_public(s, smpl, c.ptr, idxs[i]);
            if (id == LLAMA_TOKEN_NULL) return;  // a Python sampler raised: re-raised below
            result.push_back(id);
            if (i == draft.size()) break;
            if (draft[i] != id || (llama_vocab_is_eog(vocab, id) && i + 1 < draft.size())) break;
        }
    });
    raise_py_sampler_error();
    return to_numpy(std::move(result));
}

}  // namespace

void init_sample_and_accept_n(nb::module_ &m) {
    m.def("sample_and_accept_n", &sample_and_accept_n, "sampler"_a, "ctx"_a, "draft"_a,
          "idxs"_a = std::vector<int32_t>{},
          "llama.cpp's acceptance rule (common_sampler_sample_and_accept_n) over a sampler chain:\n"
          "sample (and accept) the token at output idxs[i] of ctx's last decode (default: 0, 1,\n"
          "...) while it equals draft[i], never past an end-of-generation token, and the one after\n"
          "a fully kept draft. Returns those 1..len(draft)+1 tokens: exactly what sampling one\n"
          "token at a time would pick at those positions. GIL released.");
}
