// The Speculative handle (speculative.cpp binds it): a common_speculative over a
// target context and, for draft-simple, a draft context, with the checks llama.cpp
// leaves to asserts. Its areas: settings (speculative_params.h), drafting
// (speculative_draft.h), mirroring the target's batches (speculative_process.h) and
// acceptance (speculative_accept.h).
#pragma once

#include "binding.h"
#include "context.h"

#include "speculative.h"  // llama.cpp's common/speculative.h

// Owns a common_speculative over a target context and, for draft-simple, a draft
// context. Calls run with the GIL released and this object's mutex held, then the
// draft context's (lock order: Speculative, then Context).
struct Speculative {
    common_speculative *ptr = nullptr;
    common_params_speculative params;
    nb::object target_obj, draft_obj;  // keep the Python Contexts alive
    Context *target = nullptr, *draft = nullptr;
    Model *draft_model = nullptr;  // acquired: its free waits for ours
    uint32_t n_seq = 1;
    std::vector<common_speculative_type> types;
    std::vector<size_t> hist_len;    // history length of the last begin()/draft() per sequence
    std::vector<size_t> last_draft;  // tokens of the last draft per sequence, until accept()
    uint64_t n_drafts = 0, n_drafted = 0, n_accept_calls = 0, n_accepted = 0;
    CallMutex mutex;

    void check_open() const {
        if (!ptr) throw ClosedError("Speculative is closed");
    }
    void check_seq(llama_seq_id seq) const {
        if (seq < 0 || (uint32_t) seq >= n_seq)
            throw nb::index_error(
                ("sequence id " + std::to_string(seq) + " out of range [0, " + std::to_string(n_seq) + ")").c_str());
    }
    void check_tokens_in(const int32_t *t, size_t n) const {
        target->check_open();
        check_tokens(llama_model_get_vocab(target->model->ptr), t, n);
    }
    // GIL held: the draft context may run a decode now (open, and no zero-copy views
    // that a larger output buffer would leave dangling).
    void check_draft_usable() const {
        if (!draft) return;
        draft->check_open();
        if (draft->live_views > 0)
            throw LlamaError(
                "zero-copy logits/embeddings views of the draft context are alive; delete them or "
                "take copies before drafting");
    }
    // Runs fn() with the GIL released, this object's mutex and the draft context's held.
    template <typename F>
    auto locked(F &&fn) -> decltype(fn()) {
        nb::gil_scoped_release nogil;
        std::lock_guard<CallMutex> guard(mutex);
        if (!ptr) throw ClosedError("Speculative is closed");
        if (!draft) return fn();
        std::lock_guard<CallMutex> dguard(draft->mutex);
        if (!draft->ptr || draft->close_requested) throw ClosedError("the draft Context is closed");
        return fn();
    }
    // GIL held, after a call that may have decoded on the draft context.
    void after_draft_decode() {
        if (!draft) return;
        draft->last_n_outputs = 0;  // its get_logits() rows are no longer known
        draft->output_capacity = std::max<int64_t>(draft->output_capacity, draft->n_seq_max);
        if (draft->abort.error.set()) {
            draft->abort.cancel = false;
            draft->abort.error.raise();
        }
    }
    llama_pos draft_pos_next(llama_seq_id seq) const {
        return llama_memory_seq_pos_max(llama_get_memory(draft->ptr), seq) + 1;
    }

    void close() {
        common_speculative *victim = nullptr;
        {
            nb::gil_scoped_release nogil;
            std::lock_guard<CallMutex> guard(mutex);
            victim = ptr;
            ptr = nullptr;
        }
        if (victim) common_speculative_free(victim);
        if (draft_model) {
            draft_model->release();
            draft_model = nullptr;
        }
        target_obj = nb::object();
        draft_obj = nb::object();
        target = draft = nullptr;
    }
    ~Speculative() {
        if (ptr) common_speculative_free(ptr);
        if (draft_model) draft_model->release();
    }
};

// Speculative(params, target, draft, n_seq): checks the settings and contexts, then
// common_speculative_init with both contexts locked.
void init_speculative_obj(Speculative *self, const common_params_speculative &p, nb::object target_obj,
                          nb::object draft_obj, uint32_t n_seq);
