"""ggml RPC on loopback: two `python -m llamanb.rpc` workers in subprocesses."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import llamanb
from llamanb import core

PROMPTS = ["The capital of France is", "Once upon a time", "def fibonacci(n):"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_worker(port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "llamanb.rpc", "--port", str(port), "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:  # listening once a plain connect succeeds (the worker treats it as a client that left)
        assert proc.poll() is None, f"the RPC worker exited: {proc.communicate()[0]}"
        assert time.monotonic() < deadline, "the RPC worker did not start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.communicate(timeout=30)


@pytest.fixture(scope="module")
def workers() -> Iterator[list[str]]:
    ports = [free_port(), free_port()]
    procs = [start_worker(port) for port in ports]
    try:
        yield [f"127.0.0.1:{port}" for port in ports]
    finally:
        for proc in procs:
            stop(proc)


def test_model_split_over_two_workers_gives_the_local_result(model_path: Path, workers: list[str]) -> None:
    # Like with like: the workers' CPU backends have no extra buffer types, so the local
    # run keeps its weights in the file's layout too (with AMX its kernels round differently).
    with (
        llamanb.Llama(model_path, n_ctx=1024, n_threads=2, repack=False) as llm,
        llamanb.Llama(model_path, n_ctx=1024, n_threads=2, rpc_servers=workers) as remote,
    ):
        buffers = {t.buffer for t in remote.model.tensors().values()}
        for endpoint in workers:  # layers on both workers
            assert any(endpoint in b for b in buffers), buffers
        for prompt in PROMPTS:
            local = llm.generate(prompt, max_tokens=32, temperature=0)
            assert remote.generate(prompt, max_tokens=32, temperature=0).tokens == local.tokens, prompt


def test_core_lists_a_workers_devices(workers: list[str]) -> None:
    names = core.ggml.rpc_devices(workers[0])
    assert len(names) == 1 and names[0].startswith("RPC")


def test_unreachable_worker_is_a_connection_error(model_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(core.RpcConnectionError, match=f"could not connect to the RPC server at {endpoint}"):
        llamanb.Llama(model_path, rpc_servers=[endpoint])
    assert time.monotonic() - start < 10
    with pytest.raises(ConnectionError):  # also a builtin ConnectionError
        core.ggml.rpc_devices(endpoint)


@pytest.mark.parametrize(
    "endpoint", ["localhost", "127.0.0.1:", ":50052", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:port"]
)
def test_malformed_endpoints_are_refused(model_path: Path, endpoint: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        llamanb.Llama(model_path, rpc_servers=[endpoint])


def test_rpc_servers_must_be_a_list(model_path: Path) -> None:
    with pytest.raises(TypeError, match="list"):
        llamanb.Llama(model_path, rpc_servers="127.0.0.1:50052")


def test_worker_killed_mid_generation_raises(model_path: Path) -> None:
    port = free_port()
    worker = start_worker(port)
    # In a fresh interpreter: were the loss still fatal inside ggml, it would abort
    # that process and fail this test rather than kill pytest.
    code = f"""
        import os, signal, sys, time
        import llamanb
        from llamanb import core
        llm = llamanb.Llama({str(model_path)!r}, n_ctx=2048, n_threads=1, rpc_servers=["127.0.0.1:{port}"])
        never_stop = {{t: float("-inf") for t in range(llm.vocab.n_tokens) if llm.vocab.is_eog(t)}}
        pieces = 0
        try:
            for piece in llm.stream("Once upon a time", max_tokens=1500, temperature=0, logit_bias=never_stop):
                pieces += 1
                if pieces == 8:
                    os.kill({worker.pid}, signal.SIGKILL)
                    killed = time.monotonic()
            print("NO ERROR after", pieces, "pieces", flush=True)
        except core.RpcConnectionError as err:
            print(f"RAISED after {{pieces}} pieces, {{time.monotonic() - killed:.2f}} s: {{err}}", flush=True)
        try:  # the model stays unusable, with the same clear error
            llm.generate("again", max_tokens=2)
        except core.RpcConnectionError:
            print("STILL RAISES", flush=True)
        llm.close()  # frees buffers on the dead connection without aborting
        print("CLOSED", flush=True)
    """
    try:
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=180
        )
    finally:
        stop(worker)
    assert proc.returncode == 0, f"crashed (rc={proc.returncode}): {proc.stdout}{proc.stderr[-2000:]}"
    assert "RAISED after" in proc.stdout and "lost the connection" in proc.stdout, proc.stdout
    assert "STILL RAISES" in proc.stdout and "CLOSED" in proc.stdout, proc.stdout


def test_rpc_server_command_reports_a_busy_port(workers: list[str]) -> None:
    busy = workers[0].rsplit(":", 1)[1]
    proc = subprocess.run(
        [sys.executable, "-m", "llamanb", "rpc-server", "--port", busy], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "could not serve RPC on 127.0.0.1:" + busy in proc.stdout + proc.stderr


def test_compat_takes_llama_cpp_pythons_comma_separated_servers(
    model_path: Path, workers: list[str], llm: llamanb.Llama
) -> None:
    from llamanb.compat import Llama as CompatLlama

    remote = CompatLlama(str(model_path), n_ctx=256, n_gpu_layers=-1, rpc_servers=",".join(workers), verbose=False)
    try:
        out = remote.create_completion(PROMPTS[0], max_tokens=8, temperature=0)
        assert out["choices"][0]["text"] == llm.generate(PROMPTS[0], max_tokens=8, temperature=0).text
    finally:
        remote.close()
