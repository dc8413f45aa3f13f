"""
llama-server's engine in process, and its converters from the Responses and Anthropic APIs.
"""

from collections.abc import Mapping, Sequence


def responses_to_chat_request(body: str) -> str:
    """
    An OpenAI Responses API request (JSON text) as the chat completion request it means
    (JSON text), converted by llama-server's own code: input items to messages,
    instructions to a system message, function tools, max_output_tokens, reasoning
    effort. Raises ValueError for input it cannot convert (previous_response_id,
    input_file, an unknown item type, ...).
    """

def anthropic_to_chat_request(body: str) -> str:
    """
    An Anthropic Messages API request (JSON text) as the chat completion request it
    means (JSON text), converted by llama-server's own code: system blocks, text, image,
    thinking, tool_use and tool_result blocks, tools, tool_choice, stop_sequences,
    max_tokens (4096 when absent). Raises ValueError for input it cannot convert.
    """

class ServerResponse:
    """
    A llama-server route's response: a whole body, or a stream of chunks.
    Made empty, filled by Server.handle(), cancellable all along.
    """

    def __init__(self) -> None: ...

    @property
    def status(self) -> int: ...

    @property
    def content_type(self) -> str: ...

    @property
    def headers(self) -> dict[str, str]: ...

    @property
    def is_stream(self) -> bool: ...

    @property
    def body(self) -> bytes:
        """The whole body (empty for a stream)."""

    def next_chunk(self) -> bytes | None:
        """
        The next chunk of a stream, None after the last; blocks without the GIL until the
        engine produces it (a chunk can be empty).
        """

    def cancel(self) -> None:
        """
        The client went away: the engine cancels the request's task. Thread-safe, also
        while Server.handle() runs.
        """

    @property
    def cancelled(self) -> bool: ...

    def close(self) -> None:
        """Ends the response and frees its request."""

class Server:
    """
    llama-server's engine in process (server_context and its route handlers).
    """

    def __init__(self, args: Sequence[str]) -> None:
        """
        Parses llama-server's command line (without the program name) and LLAMA_ARG_*
        environment variables with llama.cpp's own parser. Raises ValueError if it refuses
        them. -h/--help, --version and --list-devices print and exit, as in llama-server.
        """

    def start(self) -> None:
        """Loads the model and runs the engine, on the engine's own thread."""

    def wait_ready(self, timeout_s: float) -> bool:
        """
        Waits for the model: True once loaded, False if it failed or timeout_s passed.
        """

    @property
    def state(self) -> str:
        """'loading', 'ready', 'failed' or 'stopped'."""

    def handle(self, response: ServerResponse, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], query_string: str, body: bytes, files: Mapping[str, tuple[bytes, str, str]] = {}) -> None:
        """
        Calls llama-server's handler of METHOD PATH (without --api-prefix) into RESPONSE;
        the GIL is released. Unknown routes get llama-server's 404, every route a 503
        while loading. FILES: a multipart form's files (name -> (content, file name,
        content type)), its text fields being BODY as a JSON object.
        """

    def has_route(self, method: str, path: str) -> bool: ...

    @property
    def routes(self) -> list[tuple[str, str]]:
        """(method, path) of every route llama-server serves here, sorted."""

    def stop(self) -> None:
        """Ends the engine loop and joins its thread."""

    @property
    def hostnames(self) -> list[str]: ...

    @property
    def port(self) -> int: ...

    @property
    def api_prefix(self) -> str: ...

    @property
    def api_keys(self) -> list[str]: ...

    @property
    def cors_origins(self) -> str: ...

    @property
    def cors_credentials(self) -> bool: ...

    @property
    def cors_methods(self) -> str: ...

    @property
    def cors_headers(self) -> str: ...

    @property
    def cors_origins_explicit(self) -> bool: ...

    @property
    def ui(self) -> bool: ...

    @property
    def public_path(self) -> str: ...

    @property
    def ssl_file_key(self) -> str: ...

    @property
    def ssl_file_cert(self) -> str: ...

    @property
    def n_threads_http(self) -> int: ...

    @property
    def n_parallel(self) -> int: ...

    @property
    def timeout_read(self) -> int: ...

    @property
    def timeout_write(self) -> int: ...

    @property
    def model_path(self) -> str: ...

def set_remote_media(allowed: bool) -> None:
    """
    Whether llama-server's handlers download http(s) media URLs (process-wide; llama.cpp's
    default is yes, llamanb's front turns it off unless asked; patch 0020).
    """

def log_setup() -> None:
    """
    llama-server's logging: llama.cpp's log lines go through common_log with its
    prefixes and timestamps (the `llamanb serve` process; call once, before Server).
    """

class ChunkFeed:
    """
    The chunks of streamed responses for an event loop: a thread per stream pulls
    it without the GIL, and fileno() turns readable when take() has chunks.
    """

    def __init__(self) -> None: ...

    def fileno(self) -> int:
        """The pipe's read end, for loop.add_reader()."""

    def follow(self, response: ServerResponse) -> int:
        """
        Pulls RESPONSE's stream on a thread of its own; returns the key its chunks come
        under. ValueError when it is not a stream.
        """

    def take(self) -> list[tuple[int, bytes | None]]:
        """
        The chunks pulled since the last call, in order, as (key, bytes), and (key, None)
        after a stream's last chunk. Never blocks.
        """

    @property
    def running(self) -> int:
        """Streams still being pulled."""

    def close(self, timeout_s: float) -> bool:
        """
        Takes no new streams and waits up to TIMEOUT_S for the pulling threads to end
        (cancel their responses first); True when none is left.
        """
