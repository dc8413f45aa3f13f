"""Where every function of the pinned ``llama.h`` lives in llamanb, and what else
``llamanb.core``'s top level holds.

``python -m llamanb.llama_h_coverage`` prints, for each ``LLAMA_API`` function, the Python
path that exposes it or ``excluded: <reason>``; ``--check [llama.h]`` lists what the
map misses (exit 1), as a llama.cpp bump runs it (``make coverage``). The test suite parses
``vendor/llama.cpp/include/llama.h`` and checks that every function is listed
here and that every path resolves in ``llamanb.core``.

Naming: a function becomes a method or property of the object it takes first,
prefix dropped (``llama_model_n_embd(model)`` -> ``Model.n_embd``); free
functions stay functions of ``llamanb.core``.

Layout: the top level of ``llamanb.core`` is llama.h's mirror. ``--check`` also checks
that every top-level name is a path of the map, a llama.h type, enum or constant
(``TOP_LEVEL_TYPES``), or listed with its reason (``TOP_LEVEL_EXTRAS``); everything
else lives in a submodule (``SUBMODULES``), as MLX keeps ``mx.fast`` apart.
(Not named ``coverage``: that is the code-coverage tool.)
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

# The pinned header in a source checkout (python -m llamanb.llama_h_coverage --check [HEADER]).
DEFAULT_HEADER = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "include" / "llama.h"

DEPRECATED = "excluded: deprecated in llama.h"

COVERAGE: dict[str, str] = {
    # --- process
    "llama_backend_init": "excluded: called once when llamanb.core is imported",
    "llama_backend_free": "excluded: process teardown; llama.cpp frees its backends at exit",
    "llama_numa_init": "numa_init",
    "llama_version": "version",
    "llama_time_us": "time_us",
    "llama_max_devices": "max_devices",
    "llama_max_parallel_sequences": "max_parallel_sequences",
    "llama_max_tensor_buft_overrides": "max_tensor_buft_overrides",
    "llama_supports_mmap": "supports_mmap",
    "llama_supports_mlock": "supports_mlock",
    "llama_supports_gpu_offload": "supports_gpu_offload",
    "llama_supports_rpc": "supports_rpc",
    "llama_print_system_info": "system_info",
    "llama_log_set": "log_to_callback",
    "llama_log_get": "excluded: returns the raw C callback; llamanb owns the callback (log_to_callback/log_to_stderr/log_disable)",
    "llama_ftype_name": "ftype_name",
    "llama_flash_attn_type_name": "flash_attn_type_name",
    "llama_load_mode_name": "load_mode_name",
    "llama_load_mode_from_str": "load_mode_from_str",
    "llama_split_path": "split_path",
    "llama_split_prefix": "split_prefix",
    "llama_chat_apply_template": "chat_apply_template",
    "llama_chat_builtin_templates": "chat_builtin_templates",
    "llama_attach_threadpool": "Context.attach_threadpool",
    "llama_detach_threadpool": "Context.detach_threadpool",
    # --- params
    "llama_model_default_params": "ModelParams",
    "llama_context_default_params": "ContextParams",
    "llama_sampler_chain_default_params": "Sampler.chain",
    "llama_model_quantize_default_params": "QuantizeParams",
    # --- model
    "llama_model_load_from_file": "Model",
    "llama_model_load_from_splits": "Model.from_splits",
    "llama_model_load_from_file_ptr": "excluded: takes a C FILE*; use Model(path)",
    "llama_model_init_from_user": "excluded: needs a gguf_context plus a C callback filling raw tensors; use Model(path)",
    "llama_model_save_to_file": "Model.save",
    "llama_model_free": "Model.close",
    "llama_model_get_vocab": "Model.vocab",
    "llama_model_rope_type": "Model.rope_type",
    "llama_model_n_ctx_train": "Model.n_ctx_train",
    "llama_model_n_embd": "Model.n_embd",
    "llama_model_n_embd_inp": "Model.n_embd_inp",
    "llama_model_n_embd_out": "Model.n_embd_out",
    "llama_model_n_layer": "Model.n_layer",
    "llama_model_n_layer_nextn": "Model.n_layer_nextn",
    "llama_model_n_head": "Model.n_head",
    "llama_model_n_head_kv": "Model.n_head_kv",
    "llama_model_n_swa": "Model.n_swa",
    "llama_model_rope_freq_scale_train": "Model.rope_freq_scale_train",
    "llama_model_n_cls_out": "Model.n_cls_out",
    "llama_model_cls_label": "Model.cls_label",
    "llama_model_meta_val_str": "Model.meta_val_str",
    "llama_model_meta_count": "Model.meta",
    "llama_model_meta_key_str": "model_meta_key_str",
    "llama_model_meta_key_by_index": "Model.meta",
    "llama_model_meta_val_str_by_index": "Model.meta",
    "llama_model_desc": "Model.desc",
    "llama_model_ftype": "Model.ftype",
    "llama_model_size": "Model.size",
    "llama_model_chat_template": "Model.chat_template",
    "llama_model_n_params": "Model.n_params",
    "llama_model_has_encoder": "Model.has_encoder",
    "llama_model_has_decoder": "Model.has_decoder",
    "llama_model_decoder_start_token": "Model.decoder_start_token",
    "llama_model_is_recurrent": "Model.is_recurrent",
    "llama_model_is_hybrid": "Model.is_hybrid",
    "llama_model_is_diffusion": "Model.is_diffusion",
    "llama_model_quantize": "model_quantize",
    # --- adapters
    "llama_adapter_lora_init": "LoraAdapter",
    "llama_adapter_lora_init_from_file_ptr": "excluded: takes a C FILE*; use LoraAdapter(model, path)",
    "llama_adapter_meta_val_str": "LoraAdapter.meta_val_str",
    "llama_adapter_meta_count": "LoraAdapter.meta_count",
    "llama_adapter_meta_key_by_index": "LoraAdapter.meta_key_by_index",
    "llama_adapter_meta_val_str_by_index": "LoraAdapter.meta_val_str_by_index",
    "llama_adapter_lora_free": "LoraAdapter.close",
    "llama_adapter_get_alora_n_invocation_tokens": "LoraAdapter.alora_invocation_tokens",
    "llama_adapter_get_alora_invocation_tokens": "LoraAdapter.alora_invocation_tokens",
    "llama_set_adapters_lora": "Context.set_adapters_lora",
    "llama_set_adapter_cvec": "Context.set_adapter_cvec",
    # --- context
    "llama_init_from_model": "Context",
    "llama_free": "Context.close",
    "llama_n_ctx": "Context.n_ctx",
    "llama_n_ctx_seq": "Context.n_ctx_seq",
    "llama_n_batch": "Context.n_batch",
    "llama_n_ubatch": "Context.n_ubatch",
    "llama_n_seq_max": "Context.n_seq_max",
    "llama_n_rs_seq": "Context.n_rs_seq",
    "llama_get_model": "Context.model",
    "llama_get_memory": "Context.memory_clear",
    "llama_pooling_type": "Context.pooling_type",
    "llama_set_n_threads": "Context.set_n_threads",
    "llama_n_threads": "Context.n_threads",
    "llama_n_threads_batch": "Context.n_threads_batch",
    "llama_set_embeddings": "Context.set_embeddings",
    "llama_set_causal_attn": "Context.set_causal_attn",
    "llama_get_causal_attn": "Context.causal_attn",
    "llama_set_abort_callback": "Context.set_abort_callback",
    "llama_synchronize": "Context.synchronize",
    "llama_encode": "Context.encode",
    "llama_decode": "Context.decode",
    "llama_get_logits": "Context.get_logits",
    "llama_get_logits_ith": "Context.get_logits_ith",
    "llama_get_embeddings": "Context.get_embeddings",
    "llama_get_embeddings_ith": "Context.get_embeddings_ith",
    "llama_get_embeddings_seq": "Context.get_embeddings_seq",
    "llama_set_sampler": "Context.set_sampler",
    "llama_get_sampled_token_ith": "Context.get_sampled_token_ith",
    "llama_get_sampled_probs_ith": "Context.get_sampled_probs_ith",
    "llama_get_sampled_probs_count_ith": "Context.get_sampled_probs_ith",
    "llama_get_sampled_logits_ith": "Context.get_sampled_logits_ith",
    "llama_get_sampled_logits_count_ith": "Context.get_sampled_logits_ith",
    "llama_get_sampled_candidates_ith": "Context.get_sampled_candidates_ith",
    "llama_get_sampled_candidates_count_ith": "Context.get_sampled_candidates_ith",
    "llama_perf_context": "Context.perf",
    "llama_perf_context_print": "Context.perf_print",
    "llama_perf_context_reset": "Context.perf_reset",
    # --- memory
    "llama_memory_clear": "Context.memory_clear",
    "llama_memory_seq_rm": "Context.memory_seq_rm",
    "llama_memory_seq_cp": "Context.memory_seq_cp",
    "llama_memory_seq_keep": "Context.memory_seq_keep",
    "llama_memory_seq_add": "Context.memory_seq_add",
    "llama_memory_seq_div": "Context.memory_seq_div",
    "llama_memory_seq_pos_min": "Context.memory_seq_pos_min",
    "llama_memory_seq_pos_max": "Context.memory_seq_pos_max",
    "llama_memory_can_shift": "Context.memory_can_shift",
    # --- state
    "llama_state_get_size": "Context.state_get_size",
    "llama_state_get_data": "Context.state_get_data",
    "llama_state_set_data": "Context.state_set_data",
    "llama_state_load_file": "Context.state_load_file",
    "llama_state_save_file": "Context.state_save_file",
    "llama_state_seq_get_size": "Context.state_seq_get_size",
    "llama_state_seq_get_data": "Context.state_seq_get_data",
    "llama_state_seq_set_data": "Context.state_seq_set_data",
    "llama_state_seq_save_file": "Context.state_seq_save_file",
    "llama_state_seq_load_file": "Context.state_seq_load_file",
    "llama_state_seq_get_size_ext": "Context.state_seq_get_size",
    "llama_state_seq_get_data_ext": "Context.state_seq_get_data_ext",
    "llama_state_seq_set_data_ext": "Context.state_seq_set_data_ext",
    # --- batches
    "llama_batch_get_one": "Context.decode_tokens",
    "llama_batch_init": "Batch",
    "llama_batch_free": "Batch",
    "llama_batch_ext_init": "BatchExt",
    "llama_batch_ext_free": "BatchExt.close",
    "llama_batch_ext_clear": "BatchExt.clear",
    "llama_batch_ext_add": "BatchExt.add",
    "llama_batch_ext_add_token": "BatchExt.add_token",
    "llama_batch_ext_add_embd": "BatchExt.add_embd",
    "llama_batch_ext_add_seq": "BatchExt.add_seq",
    "llama_batch_ext_set_embd_token": "BatchExt.set_embd_token",
    "llama_batch_ext_set_embd_state": "BatchExt.set_embd_state",
    "llama_batch_ext_set_output_embd": "BatchExt.set_output_embd",
    "llama_batch_ext_set_output_logits": "BatchExt.set_output_logits",
    "llama_batch_ext_set_pos": "BatchExt.set_pos",
    "llama_process": "Context.process",
    # --- vocab
    "llama_vocab_type": "Vocab.type",
    "llama_vocab_n_tokens": "Vocab.n_tokens",
    "llama_vocab_get_text": "Vocab.get_text",
    "llama_vocab_get_score": "Vocab.get_score",
    "llama_vocab_get_attr": "Vocab.get_attr",
    "llama_vocab_is_eog": "Vocab.is_eog",
    "llama_vocab_is_control": "Vocab.is_control",
    "llama_vocab_bos": "Vocab.bos",
    "llama_vocab_eos": "Vocab.eos",
    "llama_vocab_eot": "Vocab.eot",
    "llama_vocab_sep": "Vocab.sep",
    "llama_vocab_nl": "Vocab.nl",
    "llama_vocab_pad": "Vocab.pad",
    "llama_vocab_mask": "Vocab.mask",
    "llama_vocab_get_add_bos": "Vocab.add_bos",
    "llama_vocab_get_add_eos": "Vocab.add_eos",
    "llama_vocab_get_add_sep": "Vocab.add_sep",
    "llama_vocab_get_suppress_tokens": "Vocab.suppress_tokens",
    "llama_vocab_fim_pre": "Vocab.fim_pre",
    "llama_vocab_fim_suf": "Vocab.fim_suf",
    "llama_vocab_fim_mid": "Vocab.fim_mid",
    "llama_vocab_fim_pad": "Vocab.fim_pad",
    "llama_vocab_fim_rep": "Vocab.fim_rep",
    "llama_vocab_fim_sep": "Vocab.fim_sep",
    "llama_tokenize": "Vocab.tokenize",
    "llama_token_to_piece": "Vocab.token_to_piece",
    "llama_detokenize": "Vocab.detokenize",
    # --- samplers
    "llama_sampler_init": "Sampler.from_python",
    "llama_sampler_name": "Sampler.name",
    "llama_sampler_accept": "Sampler.accept",
    "llama_sampler_apply": "Sampler.apply",
    "llama_sampler_reset": "Sampler.reset",
    "llama_sampler_clone": "Sampler.clone",
    "llama_sampler_copy": "Sampler.copy",
    "llama_sampler_free": "Sampler.close",
    "llama_sampler_chain_init": "Sampler.chain",
    "llama_sampler_chain_add": "Sampler.add",
    "llama_sampler_chain_get": "Sampler.get",
    "llama_sampler_chain_n": "Sampler.n",
    "llama_sampler_chain_remove": "Sampler.remove",
    "llama_sampler_init_greedy": "Sampler.greedy",
    "llama_sampler_init_dist": "Sampler.dist",
    "llama_sampler_init_top_k": "Sampler.top_k",
    "llama_sampler_init_top_p": "Sampler.top_p",
    "llama_sampler_init_min_p": "Sampler.min_p",
    "llama_sampler_init_typical": "Sampler.typical",
    "llama_sampler_init_temp": "Sampler.temp",
    "llama_sampler_init_temp_ext": "Sampler.temp_ext",
    "llama_sampler_init_xtc": "Sampler.xtc",
    "llama_sampler_init_top_n_sigma": "Sampler.top_n_sigma",
    "llama_sampler_init_mirostat": "Sampler.mirostat",
    "llama_sampler_init_mirostat_v2": "Sampler.mirostat_v2",
    "llama_sampler_init_grammar": "Sampler.grammar",
    "llama_sampler_init_grammar_lazy_patterns": "Sampler.grammar_lazy_patterns",
    "llama_sampler_init_penalties": "Sampler.penalties",
    "llama_sampler_init_dry": "Sampler.dry",
    "llama_sampler_init_adaptive_p": "Sampler.adaptive_p",
    "llama_sampler_init_logit_bias": "Sampler.logit_bias",
    "llama_sampler_init_infill": "Sampler.infill",
    "llama_sampler_get_seed": "Sampler.seed",
    "llama_sampler_sample": "Sampler.sample",
    "llama_perf_sampler": "Sampler.perf",
    "llama_perf_sampler_print": "Sampler.perf_print",
    "llama_perf_sampler_reset": "Sampler.perf_reset",
    # --- training
    "llama_opt_param_filter_all": "excluded: training API (ggml_opt datasets and C callbacks); llamanb covers inference",
    "llama_opt_init": "excluded: training API (ggml_opt datasets and C callbacks); llamanb covers inference",
    "llama_opt_epoch": "excluded: training API (ggml_opt datasets and C callbacks); llamanb covers inference",
    # --- deprecated aliases the header still declares
    "llama_get_state_size": DEPRECATED,
    "llama_copy_state_data": DEPRECATED,
    "llama_set_state_data": DEPRECATED,
    "llama_load_session_file": DEPRECATED,
    "llama_save_session_file": DEPRECATED,
}


# Top-level names of llamanb.core that mirror a type, enum or constant of llama.h: name ->
# the C name, which llama.h must declare or use (its functions are COVERAGE's paths).
TOP_LEVEL_TYPES: dict[str, str] = {
    "ModelParams": "llama_model_params",
    "ContextParams": "llama_context_params",
    "QuantizeParams": "llama_model_quantize_params",
    "TokenDataArray": "llama_token_data_array",
    "SplitMode": "llama_split_mode",
    "LoadMode": "llama_load_mode",
    "RopeType": "llama_rope_type",
    "ModelMetaKey": "llama_model_meta_key",
    "VocabType": "llama_vocab_type",
    "TokenAttr": "llama_token_attr",
    "PoolingType": "llama_pooling_type",
    "AttentionType": "llama_attention_type",
    "FlashAttnType": "llama_flash_attn_type",
    "RopeScalingType": "llama_rope_scaling_type",
    "ProcessType": "llama_process_type",
    "NumaStrategy": "ggml_numa_strategy",  # llama_numa_init's argument
    "Threadpool": "ggml_threadpool_t",  # llama_attach_threadpool's
    "STATE_SEQ_FLAGS_NONE": "LLAMA_STATE_SEQ_FLAGS_NONE",
    "STATE_SEQ_FLAGS_PARTIAL_ONLY": "LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY",
    "STATE_SEQ_FLAGS_ON_DEVICE": "LLAMA_STATE_SEQ_FLAGS_ON_DEVICE",
    "DEFAULT_SEED": "LLAMA_DEFAULT_SEED",
}

_ERRORS = "the exceptions llama.h's failures raise (its return codes with llama.cpp's logged reason)"
_LOGS = "llama_log_set with a callback of llamanb's (log_to_callback is the general one)"

# Top-level names that mirror nothing in llama.h but belong beside it: name -> why.
TOP_LEVEL_EXTRAS: dict[str, str] = {
    "LlamaError": _ERRORS,
    "ClosedError": _ERRORS,
    "ModelLoadError": _ERRORS,
    "DecodeError": _ERRORS,
    "ContextFullError": _ERRORS,
    "AbortedError": _ERRORS,
    "RpcConnectionError": _ERRORS,
    "LogLevel": "ggml_log_level, the level llama_log_set's callback is given",
    "log_to_stderr": _LOGS,
    "log_to_logging": _LOGS,
    "log_disable": _LOGS,
    "kv_cache_host_bytes": "the KV cache size Context() checks against the RAM before llama_init_from_model",
    "LLAMA_CPP_COMMIT": "which llama.cpp this module mirrors (vendor/llama.cpp/pin.json)",
    "LLAMA_CPP_BUILD": "which llama.cpp this module mirrors (vendor/llama.cpp/pin.json)",
}

# The submodules of llamanb.core: what is not llama.h, by the library it comes from.
SUBMODULES: dict[str, str] = {
    "common": "llama.cpp's common/ library: chat engine, JSON schema to grammar, speculative decoding",
    "mtmd": "libmtmd (tools/mtmd): images and audio",
    "server": "llama-server (tools/server): its engine in process and its request converters",
    "fast": "llamanb's own loops in C++: sample_and_decode, sample_and_accept_n",
    "ggml": "ggml.h, ggml-backend.h, ggml-rpc.h: tensors, backends, devices, RPC",
    "gguf": "gguf.h: GGUF files without a model",
}


def is_excluded(path: str) -> bool:
    return path.startswith("excluded:")


def summary() -> tuple[int, int, int]:
    """(bound, excluded, total) over the functions of llama.h."""
    excluded = sum(1 for p in COVERAGE.values() if is_excluded(p))
    return len(COVERAGE) - excluded, excluded, len(COVERAGE)


def header_functions(text: str) -> tuple[set[str], set[str]]:
    """(all LLAMA_API functions, those declared DEPRECATED(LLAMA_API ...)) of llama.h's TEXT."""
    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)
    found: set[str] = set()
    deprecated: set[str] = set()
    for m in re.finditer(r"(DEPRECATED\s*\(\s*)?LLAMA_API\b[^;{]*?\b(llama_\w+)\s*\(", text):
        (deprecated if m.group(1) else found).add(m.group(2))
    return found - deprecated, deprecated


def resolve(path: str) -> object:
    """The object of llamanb.core that PATH (``Model.n_embd``) names."""
    from llamanb import core

    obj: object = core
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def top_level_problems(header_text: str) -> list[str]:
    """What keeps llamanb.core's top level from being llama.h's mirror: names that are no
    path of COVERAGE, type of llama.h (TOP_LEVEL_TYPES) or listed extra, unlisted
    submodules, and stale entries of those tables."""
    from llamanb import core

    mirrors = {path.split(".")[0] for path in COVERAGE.values() if not is_excluded(path)}
    problems: list[str] = []
    names = {name for name in vars(core) if not name.startswith("_")}
    for name in sorted(names):
        if isinstance(getattr(core, name), types.ModuleType):
            if name not in SUBMODULES:
                problems.append(f"llamanb.core.{name}: a submodule missing from SUBMODULES")
        elif name not in mirrors and name not in TOP_LEVEL_TYPES and name not in TOP_LEVEL_EXTRAS:
            problems.append(
                f"llamanb.core.{name} mirrors nothing in llama.h: move it to a submodule "
                f"({', '.join(SUBMODULES)}) or list it in TOP_LEVEL_EXTRAS with its reason"
            )
    for name, c_name in sorted(TOP_LEVEL_TYPES.items()):
        if not re.search(rf"\b{re.escape(c_name)}\b", header_text):
            problems.append(f"TOP_LEVEL_TYPES: llama.h has no {c_name} (llamanb.core.{name})")
    for table, what in (
        (TOP_LEVEL_TYPES, "TOP_LEVEL_TYPES"),
        (TOP_LEVEL_EXTRAS, "TOP_LEVEL_EXTRAS"),
        (SUBMODULES, "SUBMODULES"),
    ):
        problems += [f"{what}: llamanb.core has no {name}" for name in sorted(table.keys() - names)]
    return problems


def check(header: Path) -> list[str]:
    """What keeps the map from covering HEADER: unmapped or stale names, broken paths, and
    top-level names of llamanb.core that are not llama.h's (top_level_problems)."""
    text = header.read_text()
    functions, deprecated = header_functions(text)
    problems = [
        f"not in the map (bind it or exclude it with a reason): {n}" for n in sorted(functions - COVERAGE.keys())
    ]
    problems += [f"in the map but not in llama.h: {n}" for n in sorted(COVERAGE.keys() - functions - deprecated)]
    for name, path in sorted(COVERAGE.items()):
        if is_excluded(path):
            continue
        try:
            resolve(path)
        except AttributeError:
            problems.append(f"{name}: llamanb.core.{path} does not exist")
    return problems + top_level_problems(text)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--check"]:
        header = Path(args[1]) if len(args) > 1 else DEFAULT_HEADER
        functions, _ = header_functions(header.read_text())
        problems = check(header)
        for problem in problems:
            print(problem)
        covered = len(functions & COVERAGE.keys())
        print(
            f"llama.h coverage: {covered}/{len(functions)} functions mapped "
            f"({100.0 * covered / max(len(functions), 1):.0f}%), {len(problems)} problem(s) ({header})"
        )
        return 1 if problems else 0
    width = max(len(name) for name in COVERAGE)
    for name, path in sorted(COVERAGE.items()):
        target = path if is_excluded(path) else f"llamanb.core.{path}"
        print(f"{name:<{width}}  {target}")
    bound, excluded, total = summary()
    print(
        f"\n{bound} bound, {excluded} excluded, {total} functions in llama.h "
        "(deprecated ones the header marks DEPRECATED(...) are listed as excluded)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
