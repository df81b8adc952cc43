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
import sqlite3
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


MAX_BODY = 65536
MAX_NAME = 200  # annotator names and pair ids are short


class _Handler(BaseHTTPRequestHandler):
    """The page and its JSON API, for the browser on this machine only.

    Every request must name this server in ``Host`` (a DNS-rebinding page names its own host);
    a POST must come from the page's own origin (``Origin``, when the browser sends one) with
    ``Content-Type: application/json`` (a cross-site form or ``text/plain`` fetch cannot set it
    without a CORS preflight, which this server never grants). A client that stalls is dropped
    after ``timeout`` seconds.
    """

    store: PreferenceStore  # set on the subclass made by make_server
    server_version = "textgym-rlhf"
    timeout = 15  # seconds a request may take to arrive (a short body no longer blocks a thread)

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

    def _origins(self) -> set[str]:
        port = self.server.server_address[1]
        return {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}

    def _refused(self, post: bool) -> str | None:
        """Why this request is refused (Host, Origin, Sec-Fetch-Site, Content-Type), or None."""
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self._origins():
            return f"Host {host[:80]!r} is not this server; open http://127.0.0.1:{self.server.server_address[1]}/"
        site = self.headers.get("Sec-Fetch-Site")
        if post and site is not None and site not in ("same-origin", "none"):
            return f"cross-site requests are refused (Sec-Fetch-Site: {site[:40]})"
        origin = self.headers.get("Origin")
        if post and origin is not None and origin.strip().lower() not in {f"http://{o}" for o in self._origins()}:
            return f"requests from origin {origin[:80]!r} are refused; only this page may post answers"
        if post and self.headers.get_content_type() != "application/json":
            return f"Content-Type must be application/json, got {self.headers.get('Content-Type', '')[:60]!r}"
        return None

    def _state(self, annotator: str) -> dict[str, Any]:
        pending = self.store.pending(annotator, limit=1)
        pair = None
        if pending:
            p = pending[0]
            pair = {"pair_id": p.pair_id, "prompt": p.prompt, "a": p.a, "b": p.b,
                    "display": p.meta.get("display", "")}
        return {"pair": pair, "progress": self.store.progress(annotator)}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        why = self._refused(post=False)
        if why:
            return self._json({"error": why}, HTTPStatus.FORBIDDEN)
        url = urlparse(self.path)
        if url.path in ("/", "/index.html"):
            return self._send(HTTPStatus.OK, _static("page.html"), "text/html")
        if url.path.startswith("/static/") and url.path[8:] in _STATIC:
            name = url.path[8:]
            return self._send(HTTPStatus.OK, _static(name), _STATIC[name])
        if url.path == "/api/next":
            annotator = parse_qs(url.query).get("annotator", [DEFAULT_ANNOTATOR])[0][:MAX_NAME]
            return self._guarded(lambda: self._json(self._state(annotator)))
        self._json({"error": f"no such page {url.path[:80]}"}, HTTPStatus.NOT_FOUND)

    def _read_answer(self) -> tuple[str, str, str]:
        """``(pair_id, choice, annotator)`` from the request body; ValueError says what is wrong."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            raise ValueError(f"body must be 1..{MAX_BODY} bytes of JSON")
        raw = self.rfile.read(length)
        if len(raw) != length:
            raise ValueError(f"body ended after {len(raw)} of {length} bytes")
        try:
            body = json.loads(raw)
        except RecursionError:
            raise ValueError("body is nested too deeply; send a flat JSON object") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"body is not UTF-8 JSON ({err})") from None
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        fields = {"pair_id": body.get("pair_id"), "choice": body.get("choice"),
                  "annotator": body.get("annotator", DEFAULT_ANNOTATOR) or DEFAULT_ANNOTATOR}
        for key, value in fields.items():
            if not isinstance(value, str) or len(value) > MAX_NAME:
                raise ValueError(f"{key} must be a string of at most {MAX_NAME} characters")
        return fields["pair_id"], fields["choice"], fields["annotator"]

    def _guarded(self, respond: Any) -> None:
        try:
            respond()
        except sqlite3.Error as err:  # a locked, full or corrupt database: say so, keep serving
            self._json({"error": f"the preference store failed: {err}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def do_POST(self) -> None:  # noqa: N802
        why = self._refused(post=True)
        if why:
            return self._json({"error": why}, HTTPStatus.FORBIDDEN)
        if urlparse(self.path).path != "/api/answer":
            return self._json({"error": "POST only to /api/answer"}, HTTPStatus.NOT_FOUND)
        try:
            pair_id, choice, annotator = self._read_answer()
        except TimeoutError:
            self.close_connection = True
            return self._json({"error": "the request body did not arrive in time"}, HTTPStatus.REQUEST_TIMEOUT)
        except ValueError as err:
            return self._json({"error": str(err)}, HTTPStatus.BAD_REQUEST)

        def respond() -> None:
            try:
                stored = self.store.answer(pair_id, choice, annotator)
            except ValueError as err:  # unknown pair or choice
                return self._json({"error": f"{err}; choices: {list(CHOICES)}"}, HTTPStatus.BAD_REQUEST)
            self._json({"stored": stored, **self._state(annotator)})

        self._guarded(respond)


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
