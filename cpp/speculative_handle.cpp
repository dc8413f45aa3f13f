// Creating a Speculative (speculative_handle.h): the settings and both contexts are
// checked first, since common_speculative_init asserts on what it cannot use.
#include "speculative_handle.h"
#include "speculative_params.h"

void init_speculative_obj(Speculative *self, const common_params_speculative &p, nb::object target_obj,
                          nb::object draft_obj, uint32_t n_seq) {
    validate_speculative_params(p);
    Context &target = nb::cast<Context &>(target_obj);
    target.check_open();
    Context *draft = draft_obj.is_none() ? nullptr : &nb::cast<Context &>(draft_obj);
    bool wants_draft = std::find(p.types.begin(), p.types.end(), COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE) != p.types.end();
    if (wants_draft && !draft) throw nb::value_error("speculative type 'draft-simple' needs a draft context");
    if (!wants_draft && draft) throw nb::value_error("a draft context is used only by the 'draft-simple' type");
    check_range("n_seq", n_seq, 1, (int64_t) llama_max_parallel_sequences());
    if (draft) {
        if (draft == &target) throw nb::value_error("the draft context must not be the target context");
        draft->check_open();
        if (draft->n_seq_max != n_seq)
            throw nb::value_error(("the draft context holds " + std::to_string(draft->n_seq_max) +
                                   " sequences (n_seq_max) but n_seq is " + std::to_string(n_seq))
                                      .c_str());
        if (draft->n_batch < n_seq) throw nb::value_error("the draft context's n_batch is smaller than n_seq");
        if (draft->embeddings) throw nb::value_error("the draft context must not have embeddings on");
        if (draft->live_views > 0)
            throw LlamaError("zero-copy views of the draft context are alive; delete them first");
    }
    common_params_speculative params = p;
    common_speculative *created = nullptr;
    std::string err;
    {
        // draft-simple's set-up reads both models (vocabulary check) and samples on the draft's.
        nb::gil_scoped_release nogil;
        std::lock_guard<CallMutex> tg(target.mutex);
        std::unique_lock<CallMutex> dg;
        if (draft) dg = std::unique_lock<CallMutex>(draft->mutex);
        if (!target.ptr || target.close_requested) throw ClosedError("the target Context is closed");
        if (draft && (!draft->ptr || draft->close_requested)) throw ClosedError("the draft Context is closed");
        params.draft.ctx_tgt = target.ptr;
        params.draft.ctx_dft = draft ? draft->ptr : nullptr;
        try {
            created = common_speculative_init(params, n_seq);
        } catch (const std::exception &e) {
            err = e.what();
        }
    }
    if (!created)
        throw nb::value_error(("could not set up speculative decoding: " +
                               (err.empty() ? std::string("no implementation for these types") : err))
                                  .c_str());
    auto *s = new (self) Speculative();
    s->ptr = created;
    s->params = params;
    s->n_seq = n_seq;
    s->types = p.types;
    s->hist_len.assign(n_seq, 0);
    s->last_draft.assign(n_seq, 0);
    s->target_obj = target_obj;
    s->target = &target;
    if (draft) {
        s->draft_obj = draft_obj;
        s->draft = draft;
        draft->model->acquire();
        s->draft_model = draft->model;
    }
}
