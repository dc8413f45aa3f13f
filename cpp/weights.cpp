// Weights in whatever buffer type holds them: host/repacked checks, reads in the
// file's layout (from the GGUF file for repacked buffers), and Model.save.
//
// Private llama.cpp headers (vendor/llama.cpp/src, not its public include/):
// - llama-model.h: llama_model::tensors_by_name, to walk a model's weight tensors (where
//   they live, buffer sizes, the save). llama.h has no call that lists a model's tensors.
// - llama-model-saver.h: llama_model_saver, the GGUF metadata and tensor table that
//   llama_model_save_to_file writes, so that repacked weights (AMX, CPU_REPACK) can be
//   saved with their bytes from the model's file. llama.h has only
//   llama_model_save_to_file, which reads every buffer and cannot read repacked ones.
#include "weights.h"

#include "gguf.h"
#include "llama-model.h"
#include "llama-model-saver.h"

#include <cstdio>
#include <fstream>

namespace {

// The CPU device's extra buffer types (AMX, CPU_REPACK, ...), asked through the
// registry so that it works with dynamically loaded CPU variants too.
const std::vector<ggml_backend_buffer_type_t> &cpu_extra_bufts() {
    static const std::vector<ggml_backend_buffer_type_t> bufts = [] {
        std::vector<ggml_backend_buffer_type_t> out;
        ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
        if (!cpu) return out;
        auto get = (ggml_backend_dev_get_extra_bufts_t) ggml_backend_reg_get_proc_address(
            ggml_backend_dev_backend_reg(cpu), "ggml_backend_dev_get_extra_bufts");
        if (!get) return out;
        for (ggml_backend_buffer_type_t *b = get(cpu); b && *b; ++b) out.push_back(*b);
        return out;
    }();
    return bufts;
}

std::string gguf_str(const gguf_context *ctx, const char *key) {
    int64_t id = gguf_find_key(ctx, key);
    return id < 0 ? std::string() : std::string(gguf_get_val_str(ctx, id));
}

struct GgufHandle {
    gguf_context *ctx;
    explicit GgufHandle(const std::string &path) {
        gguf_init_params params{/*no_alloc =*/true, /*ctx =*/nullptr};
        ctx = gguf_init_from_file(path.c_str(), params);
        if (!ctx) throw LlamaError("cannot read the GGUF file '" + path + "' the model was loaded from");
    }
    ~GgufHandle() { gguf_free(ctx); }
};

// The files of the model: the one it was loaded from, and its other splits.
std::vector<std::string> model_files(const Model &model) {
    if (!model.split_paths.empty()) return model.split_paths;
    GgufHandle first(model.path);
    int64_t id = gguf_find_key(first.ctx, "split.count");
    int n = 1;
    if (id >= 0 && gguf_get_kv_type(first.ctx, id) == GGUF_TYPE_UINT16) n = gguf_get_val_u16(first.ctx, id);
    if (n <= 1) return {model.path};
    char prefix[4096], path[4096];
    if (llama_split_prefix(prefix, sizeof prefix, model.path.c_str(), 0, n) <= 0)
        throw LlamaError("model '" + model.path + "' is split but not named like a split (-00001-of-0000N.gguf)");
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) {
        llama_split_path(path, sizeof path, prefix, i, n);
        out.emplace_back(path);
    }
    return out;
}

// Builds model.file_tensors: where each tensor's bytes are in the model's files.
void index_files(Model &model) {
    if (model.files_indexed) return;
    std::vector<std::string> files = model_files(model);
    for (size_t f = 0; f < files.size(); ++f) {
        GgufHandle g(files[f]);
        const size_t data = gguf_get_data_offset(g.ctx);
        for (int64_t i = 0; i < gguf_get_n_tensors(g.ctx); ++i) {
            model.file_tensors[gguf_get_tensor_name(g.ctx, i)] =
                FileTensor{files[f], data + gguf_get_tensor_offset(g.ctx, i), gguf_get_tensor_size(g.ctx, i),
                           (int) gguf_get_tensor_type(g.ctx, i)};
        }
    }
    model.files_indexed = true;
}

std::vector<uint8_t> read_from_file(Model &model, const ggml_tensor *t) {
    index_files(model);
    auto it = model.file_tensors.find(t->name);
    const size_t nbytes = ggml_nbytes(t);
    if (it == model.file_tensors.end() || it->second.nbytes != nbytes || it->second.type != (int) t->type)
        throw LlamaError(std::string("weight '") + t->name + "' is repacked in memory (" + weight_buffer_type(t) +
                         ") and the model's file no longer holds it as loaded; load the model with "
                         "use_extra_bufts=False to read it");
    std::vector<uint8_t> out(nbytes);
    bool ok;
    {
        nb::gil_scoped_release nogil;
        std::ifstream in(it->second.path, std::ios::binary);
        in.seekg((std::streamoff) it->second.offset);
        in.read(reinterpret_cast<char *>(out.data()), (std::streamsize) nbytes);
        ok = (bool) in;
    }
    if (!ok) throw LlamaError("cannot read weight '" + std::string(t->name) + "' from '" + it->second.path + "'");
    return out;
}

}  // namespace

bool weight_is_repacked(const ggml_tensor *t) {
    if (!t->buffer) return false;
    ggml_backend_buffer_type_t buft = ggml_backend_buffer_get_type(t->buffer);
    const auto &extra = cpu_extra_bufts();
    return std::find(extra.begin(), extra.end(), buft) != extra.end();
}

bool weight_in_host_memory(const ggml_tensor *t) {
    return t->buffer && (ggml_backend_buffer_is_host(t->buffer) || weight_is_repacked(t));
}

std::string weight_buffer_type(const ggml_tensor *t) {
    return t->buffer ? ggml_backend_buft_name(ggml_backend_buffer_get_type(t->buffer)) : "";
}

std::vector<uint8_t> read_weight(Model &model, const ggml_tensor *t) {
    if (model.no_alloc) throw nb::value_error("this model was loaded with no_alloc: its weights are not in memory");
    if (!ggml_is_contiguous(t)) throw nb::value_error("tensor is not contiguous");
    if (weight_is_repacked(t)) return read_from_file(model, t);
    if (!t->buffer) throw LlamaError(std::string("weight '") + t->name + "' has no data");
    std::vector<uint8_t> out(ggml_nbytes(t));
    ModelUse use(&model);
    nb::gil_scoped_release nogil;
    ggml_backend_tensor_get(t, out.data(), 0, out.size());
    return out;
}

bool weights_in_host_memory(const llama_model *model) {
    for (auto &[name, t] : model->tensors_by_name)
        if (!weight_in_host_memory(t)) return false;
    return true;
}

std::map<std::string, size_t> weight_buffer_sizes(const llama_model *model) {
    std::map<std::string, size_t> out;
    for (auto &[name, t] : model->tensors_by_name) out[weight_buffer_type(t)] += ggml_nbytes(t);
    return out;
}

void save_model(Model &model, const std::string &path) {
    llama_model *mp = model.get();
    if (model.no_alloc) throw nb::value_error("this model was loaded with no_alloc: its weights are not in memory");
    ModelUse use(&model);  // a close() from another thread waits for the end of the write
    bool any_repacked = false;
    for (auto &[name, t] : mp->tensors_by_name) any_repacked = any_repacked || weight_is_repacked(t);
    if (!any_repacked) {  // llama.cpp's own writer reads every buffer
        nb::gil_scoped_release nogil;
        llama_model_save_to_file(mp, path.c_str());
        return;
    }
    // llama.cpp's metadata and tensor table, then each weight's bytes in the file's layout.
    index_files(model);
    std::map<std::string, const ggml_tensor *> by_name;
    for (auto &[name, t] : mp->tensors_by_name) by_name[name] = t;
    llama_model_saver saver(mp);
    saver.add_kv_from_model();
    saver.add_tensors_from_model();
    gguf_context *g = saver.gguf_ctx;
    std::vector<uint8_t> meta(gguf_get_meta_size(g));
    gguf_get_meta_data(g, meta.data());
    FILE *out = std::fopen(path.c_str(), "wb");
    if (!out) throw LlamaError("cannot open '" + path + "' for writing");
    bool ok = std::fwrite(meta.data(), 1, meta.size(), out) == meta.size();
    const size_t alignment = gguf_get_alignment(g);
    size_t written = 0;
    for (int64_t i = 0; ok && i < gguf_get_n_tensors(g); ++i) {
        const ggml_tensor *t = by_name.at(gguf_get_tensor_name(g, i));
        std::vector<uint8_t> bytes = read_weight(model, t);
        bytes.resize(GGML_PAD(bytes.size(), alignment), 0);
        ok = written == gguf_get_tensor_offset(g, i) && std::fwrite(bytes.data(), 1, bytes.size(), out) == bytes.size();
        written += bytes.size();
    }
    ok = (std::fclose(out) == 0) && ok;
    if (!ok) throw LlamaError("failed to write the model to '" + path + "'");
}
