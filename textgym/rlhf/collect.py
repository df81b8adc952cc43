"""Collect human preferences: sample candidate pairs from a policy, label them on a local page.

:func:`sample_pairs` draws prompts from any textgym env id and samples two generations per prompt
from a causal LM (a model name or folder, e.g. a trained agent's policy saved with
``save_pretrained``, or a loaded model); the pairs go into a
:class:`~textgym.rlhf.store.PreferenceStore`. :func:`make_server` serves the labelling page on
127.0.0.1 only: the prompt, candidates A and B, buttons A / B / tie / skip with keyboard shortcuts
(a/1, b/2, t/3, s/4) and a progress count. Each answer is committed before the page shows the
next pair; the page can be closed and reopened (or the server restarted) at any time and goes on
with the first unanswered pair.

HTTP API (JSON): ``GET /api/next?annotator=NAME`` -> ``{"pair": {...} | null, "progress": {...}}``;
``POST /api/answer`` with ``{"pair_id", "choice", "annotator"}`` -> the same plus ``"stored"``.
"""

from __future__ import annotations

import json
import os
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlparse

from textgym.rlhf.store import CHOICES, DEFAULT_ANNOTATOR, PreferenceStore

__all__ = ["make_server", "sample_pairs", "serve"]

LOCALHOST = "127.0.0.1"
_STATIC = {"page.html": "text/html", "page.js": "text/javascript", "page.css": "text/css"}
# The page needs nothing but its own files; inline scripts, images and frames are refused.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _static(name: str) -> bytes:
    return resources.files("textgym.rlhf").joinpath("static", name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    store: PreferenceStore  # set on the subclass made by make_server
    server_version = "textgym-rlhf"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: one line per answer is enough
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, payload: dict[str, Any], status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json")

    def _state(self, annotator: str) -> dict[str, Any]:
        pending = self.store.pending(annotator, limit=1)
        pair = None
        if pending:
            p = pending[0]
            pair = {"pair_id": p.pair_id, "prompt": p.prompt, "a": p.a, "b": p.b,
                    "display": p.meta.get("display", "")}
        return {"pair": pair, "progress": self.store.progress(annotator)}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlparse(self.path)
        if url.path in ("/", "/index.html"):
            return self._send(HTTPStatus.OK, _static("page.html"), "text/html")
        if url.path.startswith("/static/") and url.path[8:] in _STATIC:
            name = url.path[8:]
            return self._send(HTTPStatus.OK, _static(name), _STATIC[name])
        if url.path == "/api/next":
            annotator = parse_qs(url.query).get("annotator", [DEFAULT_ANNOTATOR])[0]
            return self._json(self._state(annotator))
        self._json({"error": f"no such page {url.path}"}, HTTPStatus.NOT_FOUND)

    def do_POST(self) -> None:  # noqa: N802
        if urlparse(self.path).path != "/api/answer":
            return self._json({"error": "POST only to /api/answer"}, HTTPStatus.NOT_FOUND)
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if not 0 < length <= 65536:
                raise ValueError("body must be 1..65536 bytes of JSON")
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            annotator = str(body.get("annotator") or DEFAULT_ANNOTATOR)
            stored = self.store.answer(str(body.get("pair_id", "")), str(body.get("choice", "")), annotator)
        except ValueError as err:  # bad JSON, unknown pair or choice
            return self._json({"error": f"{err}; choices: {list(CHOICES)}"}, HTTPStatus.BAD_REQUEST)
        self._json({"stored": stored, **self._state(annotator)})


def make_server(store: PreferenceStore | str | os.PathLike, port: int = 0,
                host: str = LOCALHOST) -> ThreadingHTTPServer:
    """A labelling server for ``store`` on ``host:port`` (port 0: a free one), not yet started.

    Call ``serve_forever()`` (or use :func:`serve`); ``server.server_address`` has the port.

    Raises:
        ValueError: ``host`` is not a loopback address (the page has no authentication).
    """
    if host not in (LOCALHOST, "localhost", "::1"):
        raise ValueError(f"the labelling page serves on 127.0.0.1 only (it has no login); got host {host!r}")
    store = store if isinstance(store, PreferenceStore) else PreferenceStore(store)
    handler = type("Handler", (_Handler,), {"store": store})
    server = ThreadingHTTPServer((LOCALHOST if host == "localhost" else host, int(port)), handler)
    server.daemon_threads = True
    return server


def serve(store: PreferenceStore | str | os.PathLike, port: int = 0, *, quiet: bool = False,
          background: bool = False) -> ThreadingHTTPServer:
    """Start the labelling server; blocks until Ctrl-C unless ``background``.

    Returns:
        The server (running in a daemon thread when ``background``; stop it with ``shutdown()``).
    """
    server = make_server(store, port)
    url = f"http://{LOCALHOST}:{server.server_address[1]}/"
    if not quiet:
        print(f"labelling page: {url}  (Ctrl-C to stop; answers are saved as you go)", flush=True)
    if background:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return server


def sample_pairs(env_id: str, policy: Any, store: PreferenceStore | str | os.PathLike, n: int = 32, *,
                 split: str = "train", tokenizer: Any = None, temperature: float = 1.0,
                 top_p: float = 1.0, seed: int = 0, device: str = "auto", batch_size: int = 8,
                 **env_kwargs: Any) -> list[str]:
    """Draw ``n`` prompts from ``env_id`` and store two sampled generations for each.

    Args:
        env_id: Any registered textgym id.
        policy: A causal LM: model name or folder (see :mod:`textgym.models`), or a loaded model.
        store: The store (or its file) to add the pairs to.
        n: Number of prompts (drawn in a seeded random order; at most the split's size).
        split: Data split of the env.
        tokenizer: Tokenizer of the policy (default: loaded with ``policy`` when it is a name).
        temperature, top_p: Sampling settings.
        seed: Seeds the prompt order and the sampling.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        batch_size: Prompts generated together.
        **env_kwargs: Passed to ``gym.make`` (``data_dir``, ``max_new_tokens``, ...).

    Returns:
        The ids of the stored pairs (pairs already in the store are not added twice; a prompt
        whose two samples are identical gives no pair).
    """
    import gymnasium as gym
    import numpy as np
    import torch

    from textgym.models import load_causal_lm, load_tokenizer
    from textgym.devices import resolve_device

    store = store if isinstance(store, PreferenceStore) else PreferenceStore(store)
    tok = load_tokenizer(tokenizer if tokenizer is not None else (policy if isinstance(policy, (str, os.PathLike)) else None))
    env = gym.make(env_id, split=split, tokenizer=tok, **env_kwargs).unwrapped
    lm = load_causal_lm(policy).to(resolve_device(device)).eval()
    order = np.random.default_rng(seed).permutation(len(env.samples))[: max(0, int(n))]
    torch.manual_seed(seed)
    ids: list[str] = []
    for start in range(0, len(order), batch_size):
        batch = [int(i) for i in order[start:start + batch_size]]
        obs = [env.reset(options={"sample_index": i}) for i in batch]
        prompt_ids = np.stack([o["input_ids"][: env.max_prompt_length] for o, _ in obs])
        masks = np.stack([o["attention_mask"][: env.max_prompt_length] for o, _ in obs])
        with torch.no_grad():
            out = lm.generate(input_ids=torch.as_tensor(prompt_ids, device=lm.device),
                              attention_mask=torch.as_tensor(masks, device=lm.device),
                              max_new_tokens=env.max_new_tokens, do_sample=True, temperature=temperature,
                              top_p=top_p, num_return_sequences=2, eos_token_id=env.eos_token_id,
                              pad_token_id=env.pad_token_id)[:, env.max_prompt_length:]  # (2B, T)
        texts = [tok.decode(row, skip_special_tokens=True).strip() for row in out.tolist()]
        items, metas = [], []
        for k, (_, info) in enumerate(obs):
            if texts[2 * k] == texts[2 * k + 1]:  # nothing to choose between
                continue
            items.append((info["prompt_text"], texts[2 * k], texts[2 * k + 1]))
            fmt = getattr(getattr(env, "prompt_encoder", None), "fmt", None)
            display = fmt.instruction.replace("{source}", info["source"]) if fmt else info["source"]
            metas.append({"display": display, "sample_id": info["sample_id"],
                          "references": info["references"], "env_id": env_id, "split": split})
        ids += store.add_pairs(items, source=f"{env_id}:{policy if isinstance(policy, str) else type(policy).__name__}",
                               metas=metas)
    return ids
