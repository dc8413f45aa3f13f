"""The model and what runs on it: the batching engine for generation, an embedding
context for ``/v1/embeddings``, and the chat template. HTTP-free: it turns validated
requests into engine jobs and vectors, and refuses what cannot run with ApiError."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from .. import core, logs
from ..chat import ChatPrompt, ChatTemplate, constrain, encode_chat
from ..embedding import Embedder
from ..generation import GenerateOptions, SequenceText, Step, encode_prompt
from ..loading import ModelOptions, default_threads, open_model, resolve_model
from ..lora import load_adapters
from ..media import MEDIA_TYPES, MediaError, MediaPolicy, MediaPrompt, Projector, ProjectorParams
from ..sampling import SamplingParams
from .config import ServerConfig
from .engine import Engine, Job, LoraSet, QueueFull
from .schema import ApiError, ChatRequest, CompletionRequest, invalid, shutting_down

OVERFLOW = "context_length_exceeded"


@dataclass(frozen=True)
class LoadedLora:
    """A LoRA adapter the server loaded (its id is its index) and its default scale."""

    path: str
    adapter: core.LoraAdapter
    scale: float


@dataclass(eq=False)
class Backend:
    model: core.Model
    model_id: str
    created: int
    engine: Engine
    template: ChatTemplate
    embedder: Embedder
    embed_lock: threading.Lock  # the embedding context serves one request at a time
    verbose: bool
    timeout: float | None = None  # seconds a generation may take (ServerConfig.timeout)
    loras: tuple[LoadedLora, ...] = ()
    projector: Projector | None = None  # --mmproj: image and audio parts in chat
    draft_model: core.Model | None = None  # --model-draft: drafts for every slot (the engine's)
    # A server reads no local files and fetches nothing unless --allow-remote-media.
    media_policy: MediaPolicy = MediaPolicy(allow_files=False)

    @classmethod
    def open(cls, config: ServerConfig) -> Backend:
        logs.route_to_logging()  # llama.cpp's log goes to the "llamanb" logger
        if config.verbose:
            logs.stderr_view.acquire()
        options = ModelOptions(n_gpu_layers=config.n_gpu_layers, rpc_servers=config.rpc_servers,
                               repack=config.repack)
        try:
            path = resolve_model(config.model)
            model = open_model(path, options)
        except BaseException:
            if config.verbose:
                logs.stderr_view.release()
            raise
        threads = config.n_threads or default_threads()
        loras: list[LoadedLora] = []
        projector: Projector | None = None
        draft_model: core.Model | None = None
        try:
            loras = [LoadedLora(str(path), adapter, scale)
                     for (path, _), (adapter, scale) in zip(config.lora, load_adapters(model, config.lora))]
            if config.mmproj is not None:
                projector = Projector(config.mmproj, model, ProjectorParams(), threads)
            if config.draft_model is not None:
                draft_model = open_model(resolve_model(config.draft_model), options)
            engine = Engine(model, slots=config.parallel, n_ctx_slot=config.n_ctx_slot,
                            n_batch=config.n_batch, n_threads=threads, max_waiting=config.max_queue,
                            adapters=[lora.adapter for lora in loras], speculative=config.speculative,
                            draft_model=draft_model)
        except BaseException:
            for lora in loras:
                lora.adapter.close()
            if projector is not None:
                projector.close()
            if draft_model is not None:
                draft_model.close()
            model.close()
            if config.verbose:
                logs.stderr_view.release()
            raise
        embed_tokens = min(config.n_batch, model.n_ctx_train or config.n_batch)
        return cls(
            model=model,
            model_id=config.alias or path.name,
            created=int(time.time()),
            engine=engine,
            template=ChatTemplate.for_model(model, config.chat_template),
            embedder=Embedder(model, threads, embed_tokens),
            embed_lock=threading.Lock(),
            verbose=config.verbose,
            timeout=config.timeout,
            loras=tuple(loras),
            projector=projector,
            draft_model=draft_model,
            media_policy=MediaPolicy(allow_files=False, allow_remote=config.allow_remote_media,
                                     max_bytes=config.max_media_bytes),
        )

    def close(self) -> None:
        self.engine.close()
        for lora in self.loras:
            lora.adapter.close()
        if self.projector is not None:
            self.projector.close()
        if self.draft_model is not None:
            self.draft_model.close()
        with self.embed_lock:
            self.embedder.close()
        self.model.close()
        if self.verbose:
            logs.stderr_view.release()

    @property
    def n_ctx_slot(self) -> int:
        return self.engine.n_ctx_slot

    def check_model(self, name: str) -> None:
        if name not in (self.model_id, self.model.path):
            raise ApiError(404, f"The model '{name}' does not exist; this server has '{self.model_id}'",
                           param="model", code="model_not_found")

    # -- generation -----------------------------------------------------------

    def completion_prompt(self, request: CompletionRequest) -> tuple[list[int], str]:
        """Token ids and text of the prompt (text may spell special tokens, as in
        llama.cpp's server)."""
        vocab = self.model.vocab
        if not isinstance(request.prompt, str):
            bad = [t for t in request.prompt if not 0 <= t < vocab.n_tokens]
            if bad:
                raise invalid(f"token ids must be in [0, {vocab.n_tokens}), got {bad[0]}", "prompt", "invalid_value")
        try:
            # The context check is ours (below), to answer it with its own code.
            ids, text = encode_prompt(vocab, request.prompt, sys.maxsize)
        except (ValueError, TypeError) as err:
            raise invalid(str(err), "prompt") from None
        self._check_length(len(ids), "prompt")
        return ids, text

    def chat_prompt(self, request: ChatRequest) -> tuple[ChatPrompt, GenerateOptions, SamplingParams]:
        """The rendered chat, and the request's options and sampling with what it asks
        (the format's stops, preserved tokens and grammar)."""
        try:
            prompt = encode_chat(self.model.vocab, self.template, request.messages, request.chat,
                                 projector=self.projector, media_policy=self.media_policy)
        except MediaError as err:
            raise invalid(str(err), "messages", "invalid_media") from None
        except (ValueError, TypeError) as err:
            if self.projector is None and _has_media_parts(request.messages):
                raise invalid("image and audio parts need a projector: start the server with --mmproj",
                              "messages", "invalid_media") from None
            raise invalid(f"the chat template cannot render these messages: {err}", "messages") from None
        self._check_length(prompt.n_tokens, "messages")
        try:
            options, sampling = constrain(prompt, request.options, request.sampling)
        except ValueError as err:
            raise invalid(str(err), "response_format") from None
        return prompt, options, sampling

    def set_lora_scales(self, scales: dict[int, float]) -> None:
        """The scales requests that name no adapters get from now on (POST
        /lora-adapters); ids left out get 0, as llama-server does. Running requests
        keep theirs."""
        self.lora_set(scales)  # refuses unknown ids
        self.loras = tuple(replace(lora, scale=scales.get(i, 0.0)) for i, lora in enumerate(self.loras))

    def lora_set(self, scales: dict[int, float] | None) -> LoraSet:
        """The adapters a request runs under: the scales it gives by adapter id (ids it
        leaves out: 0, as llama-server does), or without any, the server's defaults."""
        if scales is None:
            return tuple((i, lora.scale) for i, lora in enumerate(self.loras) if lora.scale != 0)
        unknown = sorted(i for i in scales if not 0 <= i < len(self.loras))
        if unknown:
            loaded = f"ids 0 to {len(self.loras) - 1}" if self.loras else "none"
            raise invalid(f"no LoRA adapter has id {unknown[0]}; this server loaded {loaded} (see /lora-adapters)",
                          "lora", "invalid_value")
        return tuple((i, scales[i]) for i in sorted(scales) if scales[i] != 0)

    def start(self, prompt: list[int], options: GenerateOptions, sampling: SamplingParams,
              prompt_text: str = "", *, cache_prompt: bool = True,
              lora: dict[int, float] | None = None, media: MediaPrompt | None = None) -> tuple[Job, list[Step]]:
        """Queue a generation; its steps arrive on the running event loop. Returns the
        job and the echoed prompt's step (recorded before the engine sees the job).
        ``cache_prompt``: start from a slot's cached prefix of the prompt; ``lora``:
        adapter scales by id (None: the server's defaults); ``media``: the prompt as
        text and media chunks (``prompt`` then holds its text tokens)."""
        adapters = self.lora_set(lora)
        seq = SequenceText(self.model.vocab, options)
        seq.prompt_tokens = len(prompt) if media is None else media.chunks.n_tokens
        echo = seq.echo_prompt(prompt_text)
        try:
            sampler = sampling.build(self.model.vocab, prompt)
        except ValueError as err:  # logit_bias out of range, a grammar that does not parse
            raise invalid(str(err)) from None
        job = Job(prompt, seq, sampler, asyncio.get_running_loop(), cache_prompt=cache_prompt, lora=adapters,
                  media=media)
        if self.timeout is not None:
            job.deadline = job.submitted + self.timeout
        try:
            self.engine.submit(job)
        except QueueFull as err:
            self.engine.metrics.rejected += 1
            raise ApiError(503, f"the server is busy: {err}; retry later", type="server_error",
                           code="queue_full", headers={"Retry-After": "1"}) from None
        except RuntimeError as err:  # the engine stopped or is draining (shutting down)
            raise shutting_down(str(err)) from None
        return job, echo

    def _check_length(self, n_tokens: int, param: str) -> None:
        if n_tokens >= self.n_ctx_slot:
            raise invalid(
                f"This model's maximum context length per request is {self.n_ctx_slot} tokens; "
                f"the {param} is {n_tokens} tokens (with room for at least one more needed)",
                param, OVERFLOW,
            )

    # -- embeddings -----------------------------------------------------------

    async def embed(self, texts: list[str]) -> tuple[npt.NDArray[np.float32], int]:
        """Unit-length mean-pooled vectors (OpenAI's are unit length) and the token count.
        All of it, the token counts too, runs off the event loop."""
        return await asyncio.to_thread(self._embed, texts)

    async def rerank(self, query: str, documents: list[str]) -> tuple[npt.NDArray[np.float32], int]:
        """Relevance scores (reranker models; others: 400) and the token count, off the
        event loop (the query is tokenized once per document)."""
        try:
            return await asyncio.to_thread(self._rerank, query, documents)
        except ValueError as err:
            raise invalid(str(err), "model", "unsupported_model") from None

    def _rerank(self, query: str, documents: list[str]) -> tuple[npt.NDArray[np.float32], int]:
        with self.embed_lock:
            scores = self.embedder.rerank(query, documents)  # a model that is no reranker raises first
        vocab = self.model.vocab
        return scores, sum(len(vocab.tokenize(query + d, True, False)) for d in documents)

    def _embed(self, texts: list[str]) -> tuple[npt.NDArray[np.float32], int]:
        vocab = self.model.vocab
        counts = [len(vocab.tokenize(t, True, False)) for t in texts]  # as the embedder tokenizes
        for i, n in enumerate(counts):
            if n > self.embedder.max_tokens:
                raise invalid(f"input {i} is {n} tokens; this server embeds at most {self.embedder.max_tokens} "
                              "per input", "input", OVERFLOW)
            if n == 0:
                raise invalid(f"input {i} is empty", "input", "invalid_value")
        with self.embed_lock:
            return self.embedder.embed(texts, normalize=True), sum(counts)


def _has_media_parts(messages: object) -> bool:
    if not isinstance(messages, list):
        return False
    return any(isinstance(m, dict) and isinstance(m.get("content"), list)
               and any(isinstance(p, dict) and p.get("type") in MEDIA_TYPES for p in m["content"]) for m in messages)
