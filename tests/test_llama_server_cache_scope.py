"""Hardening round 3, finding 10: one client's cached prompt must not leak to another.

llama-server reuses a slot's tokens (and its RAM prompt cache, ``--cache-ram``) for any
request whose prompt shares a prefix with them, and says how much it reused in
``usage.prompt_tokens_details.cached_tokens``: a client could guess another client's
system prompt token by token. With patch 0040 and the front's scope header, requests
with different API keys reuse none of each other's prompts, and a prompt sent with
``cache_prompt: false`` is reusable by no one, keyless server included.

Each probe's ``cached_tokens`` must be explained by the prober's own earlier prompts:
at most the longest common token prefix with one of them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support.server_process import start_server, stop_server

KEY_A, KEY_B = "sk-alice-cache", "sk-bob-cache"
SECRET = "The vault code is 4711. Never tell anyone the vault code."
http = httpx.Client(timeout=120.0)


def system(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": text}, {"role": "user", "content": "What is the weather like?"}]


SENT: dict[tuple[str, str | None], list[list[int]]] = {}  # (server, key): the prompts it sent, cached


class Client:
    """One API key's requests, and the prompts (as tokens) that key has sent with the cache
    on (on a keyless server, everybody's)."""

    def __init__(self, url: str, key: str | None) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.sent = SENT.setdefault((url, key), [])

    def tokens(self, messages: list[dict[str, str]]) -> list[int]:
        prompt = http.post(self.url + "/apply-template", headers=self.headers, json={"messages": messages})
        assert prompt.status_code == 200, prompt.text
        r = http.post(
            self.url + "/tokenize", headers=self.headers, json={"content": prompt.json()["prompt"], "add_special": True}
        )
        assert r.status_code == 200, r.text
        tokens: list[int] = r.json()["tokens"]
        return tokens

    def chat(self, messages: list[dict[str, str]], **extra: Any) -> int:
        """cached_tokens of a one-token chat."""
        r = http.post(
            self.url + "/v1/chat/completions",
            headers=self.headers,
            json={"model": "m", "messages": messages, "max_tokens": 1, "temperature": 0, **extra},
        )
        assert r.status_code == 200, r.text
        self.last = self.tokens(messages)
        cached: int = r.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
        self.explains = self.explained(self.last)
        if extra.get("cache_prompt", True):
            self.sent.append(self.last)
        return cached

    def explained(self, tokens: list[int]) -> int:
        """The most cached tokens this key's own earlier prompts explain."""
        best = 0
        for earlier in self.sent:
            n = 0
            while n < min(len(earlier), len(tokens)) and earlier[n] == tokens[n]:
                n += 1
            best = max(best, n)
        return best

    def probe(self, messages: list[dict[str, str]]) -> tuple[int, int]:
        """(cached_tokens, what this client's own earlier prompts explain)."""
        cached = self.chat(messages)
        return cached, self.explains


@pytest.fixture(scope="module")
def keyed(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # the module's own: its tests save slots and check which key's prompt each slot holds.
    # two slots: llama-server picks a slot by prompt similarity, and keeps the other's
    # prompt in its RAM cache (on by default) when it reuses a slot
    slots = tmp_path_factory.mktemp("slots")
    proc, url = start_server(
        [
            "-m",
            str(model_path),
            "-c",
            "2048",
            "-np",
            "2",
            "-t",
            "2",
            "--api-key",
            f"{KEY_A},{KEY_B}",
            "--slot-save-path",
            str(slots),
        ]
    )
    try:
        yield url
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def keyless(model_path: Path) -> Iterator[str]:
    # the module's own: its tests assert that every cached token is explained by a prompt
    # this module sent (on the shared server other files' chats explain the template's
    # first tokens: cached 3, own 0)
    proc, url = start_server(["-m", str(model_path), "-c", "2048", "-np", "1", "-t", "2"])
    try:
        yield url
    finally:
        stop_server(proc)


def test_another_keys_prompt_is_not_reused(keyed: str) -> None:
    alice, bob = Client(keyed, KEY_A), Client(keyed, KEY_B)
    alice.chat(system(SECRET))
    # alice's own prefix is reused: cached_tokens does see the cache
    assert alice.chat(system(SECRET)) > 10
    # bob's first request: nothing of his own to reuse, so nothing at all
    cached, own = bob.probe(system(SECRET))
    assert own == 0 and cached == 0, cached
    # bob's guesses: what he is told depends on his own prompts only, not on alice's
    for guess in ("1234", "4710", "9999"):
        alice.chat(system(SECRET))  # alice's prompt is back in a slot
        cached, own = bob.probe(system(SECRET.replace("4711", guess)))
        assert cached <= own, (guess, cached, own)


def test_the_ram_prompt_cache_is_scoped_too(keyed: str) -> None:
    """alice's prompt pushed out of both slots lives in the RAM prompt cache (llama-server
    saves idle slots there): bob's exact guess must not load it."""
    alice, bob = Client(keyed, KEY_A), Client(keyed, KEY_B)
    secret = "Walrus rules apply. " + SECRET.replace("4711", "8642") + " Also: the door code is 1357."

    def push_out() -> None:  # other prompts of alice's take both slots
        for slot in (1, 0):
            alice.chat(system(f"Unrelated instructions for slot {slot}: answer in French."), id_slot=slot)

    alice.chat(system(secret), id_slot=0)
    push_out()
    assert alice.chat(system(secret)) > 10  # alice gets hers back from the RAM cache
    push_out()
    cached, own = bob.probe(system(secret))
    assert cached <= own < 10, (cached, own)


def test_cache_prompt_false_stays_private_without_keys(keyless: str) -> None:
    """Keyless, every client shares one scope (llama-server's behaviour), except a prompt
    sent with cache_prompt: false: nobody's later request reuses it."""
    alice, bob = Client(keyless, None), Client(keyless, None)
    secret = "Narwhal mode. " + SECRET.replace("4711", "2468")
    alice.chat(system(secret), cache_prompt=False)
    cached, own = bob.probe(system(secret))
    assert cached <= own < 10, (cached, own)
    # shared otherwise: bob's prompt (sent with the cache) is reused by the next client
    carol = Client(keyless, None)
    assert carol.chat(system(secret)) > 10


def test_a_client_cannot_forge_its_scope(keyed: str) -> None:
    """The scope header is the front's: one sent by a client is replaced."""
    alice = Client(keyed, KEY_A)
    secret = "Zebra protocol in force. " + SECRET.replace("4711", "5555")
    alice.chat(system(secret))
    bob = Client(keyed, KEY_B)
    bob.headers["x-llamanb-cache-scope"] = "key:" + hashlib.sha256(KEY_A.encode()).hexdigest()  # alice's
    cached, own = bob.probe(system(secret))
    assert cached <= own < 10, (cached, own)


def test_a_slot_holding_another_keys_prompt_is_not_saved(keyed: str) -> None:
    alice, bob = Client(keyed, KEY_A), Client(keyed, KEY_B)
    alice.chat(system(SECRET.replace("4711", "3141")), id_slot=1)
    r = http.post(keyed + "/slots/1?action=save", headers=bob.headers, json={"filename": "bobs.bin"})
    assert r.status_code == 403, r.text
    r = http.post(keyed + "/slots/1?action=save", headers=alice.headers, json={"filename": "alices.bin"})
    assert r.status_code == 200, r.text


def test_cache_share_across_keys_shares(model_path: Path) -> None:
    """--cache-share-across-keys: the keys share one scope again (llama-server's behaviour)."""
    proc, url = start_server(
        [
            "-m",
            str(model_path),
            "-c",
            "2048",
            "-np",
            "1",
            "-t",
            "2",
            "--api-key",
            f"{KEY_A},{KEY_B}",
            "--cache-share-across-keys",
        ]
    )
    try:
        alice, bob = Client(url, KEY_A), Client(url, KEY_B)
        alice.chat(system(SECRET))
        cached, own = bob.probe(system(SECRET))
        assert own == 0 and cached > 10, cached
    finally:
        stop_server(proc)


def slots_seen_by(url: str, client: Client) -> dict[int, dict[str, Any]]:
    r = http.get(url + "/slots", headers=client.headers)
    assert r.status_code == 200, r.text
    return {slot["id"]: slot for slot in r.json()}


def test_slot_files_and_slots_are_per_key(keyed: str) -> None:
    """Patch 0045: one key's slot files are out of another's reach (each key saves to and
    restores from its own directory under --slot-save-path, so the same name is two files),
    a slot holding one key's prompt is neither erased nor restored over by another key,
    and /slots shows a slot's prompt size and task only to the key whose they are."""
    alice, bob = Client(keyed, KEY_A), Client(keyed, KEY_B)
    alice.chat(system(SECRET.replace("4711", "2718")), id_slot=1)
    saved = http.post(keyed + "/slots/1?action=save", headers=alice.headers, json={"filename": "mine.bin"})
    assert saved.status_code == 200, saved.text
    alices_tokens = saved.json()["n_saved"]

    # bob cannot load alice's file: under his key there is no such file
    r = http.post(keyed + "/slots/0?action=restore", headers=bob.headers, json={"filename": "mine.bin"})
    assert 400 <= r.status_code < 500, r.text
    # nor erase or restore over the slot that holds her prompt
    r = http.post(keyed + "/slots/1?action=erase", headers=bob.headers, json={})
    assert r.status_code == 403, r.text
    bob.chat(system("Bob's own instructions: reply briefly."), id_slot=0)
    r = http.post(keyed + "/slots/0?action=save", headers=bob.headers, json={"filename": "mine.bin"})
    assert r.status_code == 200, r.text  # his own file of that name
    r = http.post(keyed + "/slots/1?action=restore", headers=bob.headers, json={"filename": "mine.bin"})
    assert r.status_code == 403, r.text

    # /slots: bob sees that slot 1 exists, not what it holds; alice sees hers
    seen = slots_seen_by(keyed, bob)[1]
    assert "n_prompt_tokens" not in seen and "params" not in seen and "id_task" not in seen, seen
    assert slots_seen_by(keyed, alice)[1]["n_prompt_tokens"] == alices_tokens
    assert slots_seen_by(keyed, bob)[0]["n_prompt_tokens"] > 0  # his own slot

    # alice's file was not overwritten by bob's save of the same name
    r = http.post(keyed + "/slots/1?action=erase", headers=alice.headers, json={})
    assert r.status_code == 200, r.text
    r = http.post(keyed + "/slots/1?action=restore", headers=alice.headers, json={"filename": "mine.bin"})
    assert r.status_code == 200 and r.json()["n_restored"] == alices_tokens, r.text
