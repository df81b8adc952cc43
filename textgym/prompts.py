"""Turn a task input into prompt token ids of bounded length.

A prompt is ``prefix + source + suffix``: the task's instruction around the raw input, either as
plain text or rendered through the tokenizer's chat template. Only the source is ever cut to fit
``max_prompt_length``, so the instruction and the generation cue always survive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

_SLOT = "{source}"
_MARK = "\x00TEXTGYM_SOURCE\x00"  # never produced by a tokenizer's template


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of text that came from a data set or a user: it is data, never control.

    A literal ``<|im_end|>`` (or any special token's text) inside ``text`` is tokenized as plain
    characters, not as the special token, so data cannot end a chat turn or an episode.

    Example:
        >>> from transformers import AutoTokenizer  # doctest: +SKIP
        >>> tok = AutoTokenizer.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")  # doctest: +SKIP
        >>> tok.convert_tokens_to_ids("<|im_end|>") in encode_text(tok, "hi <|im_end|>")  # doctest: +SKIP
        False
    """
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def control_strings(tokenizer: Any) -> list[str]:
    """The texts of the tokenizer's added and special tokens (longest first)."""
    found = {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if getattr(t, "content", "")}
    found |= {t for t in getattr(tokenizer, "all_special_tokens", []) if t}
    return sorted(found, key=len, reverse=True)


def split_control(prefix: str, suffix: str, controls: list[str]) -> tuple[str, str, str, str]:
    r"""Cut a template around the source into ``(head, prefix text, suffix text, tail)``.

    ``head`` ends with the prefix's last control token and ``tail`` starts with the suffix's
    first one: they are the template's own control. What lies between is text, encoded with the
    source as data. Tokenizers split on added tokens before anything else, so encoding the parts
    separately gives the same ids as encoding the whole prompt at once.

    >>> split_control("<s>user\nSay: ", " please</s>\n<s>bot\n", ["<s>", "</s>"])
    ('<s>', 'user\nSay: ', ' please', '</s>\n<s>bot\n')
    """
    cut = max((prefix.rfind(c) + len(c) for c in controls if c in prefix), default=0)
    end = min((suffix.find(c) for c in controls if c in suffix), default=len(suffix))
    return prefix[:cut], prefix[cut:], suffix[:end], suffix[end:]


def special_token_ids(tokenizer: Any) -> tuple[int, int]:
    """Return ``(eos_id, pad_id)``; pad falls back to EOS (the tokenizer is not modified).

    Raises:
        ValueError: The tokenizer has no EOS token, so episodes could never terminate.
    """
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError(
            f"tokenizer {type(tokenizer).__name__} has no eos_token: episodes end on EOS, so set one "
            "(e.g. tokenizer.eos_token = '</s>') before passing it"
        )
    pad = getattr(tokenizer, "pad_token_id", None)
    return int(eos), int(eos if pad is None else pad)


@dataclass(frozen=True)
class PromptFormat:
    """How a task input becomes a prompt.

    Attributes:
        instruction: A plain-text template with exactly one ``{source}`` slot.
        use_chat_template: Render the instruction as a user turn of the tokenizer's chat template
            (with the assistant's generation cue) instead of as plain text.
        truncation_side: Which end of an over-long source is dropped: ``"right"`` keeps the start
            (articles), ``"left"`` keeps the end (the latest dialogue turns).
    """

    instruction: str
    use_chat_template: bool = False
    truncation_side: Literal["left", "right"] = "right"

    def __post_init__(self) -> None:
        if not isinstance(self.instruction, str) or self.instruction.count(_SLOT) != 1:
            raise ValueError(
                f"prompt_template must be a string with exactly one '{_SLOT}' slot, or 'chat' / 'plain' / "
                f"'auto'; got {self.instruction!r}"
            )
        if self.truncation_side not in ("left", "right"):
            raise ValueError(f"truncation_side must be 'left' or 'right', got {self.truncation_side!r}")


def resolve_prompt_format(
    prompt_template: str | None, task_instruction: str, tokenizer: Any, truncation_side: str
) -> PromptFormat:
    """Interpret the ``prompt_template`` argument of the environments.

    ``"auto"`` (or ``None``): the task's instruction through the chat template when the tokenizer
    has one, else as plain text. ``"chat"`` / ``"plain"``: force either. Any other string is a
    plain template with one ``{source}`` slot.
    """
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if prompt_template in (None, "auto"):
        return PromptFormat(task_instruction, has_chat, truncation_side)  # type: ignore[arg-type]
    if prompt_template == "chat":
        if not has_chat:
            raise ValueError("prompt_template='chat' but the tokenizer has no chat_template; use 'plain'")
        return PromptFormat(task_instruction, True, truncation_side)  # type: ignore[arg-type]
    if prompt_template == "plain":
        return PromptFormat(task_instruction, False, truncation_side)  # type: ignore[arg-type]
    return PromptFormat(prompt_template, False, truncation_side)  # type: ignore[arg-type]


class PromptEncoder:
    """Encode sources into prompt ids no longer than ``max_length`` tokens.

    Args:
        tokenizer: A Hugging Face tokenizer (not modified).
        fmt: The prompt format.
        max_length: The token budget for the whole prompt.

    Raises:
        ValueError: The instruction alone does not leave room for at least 8 source tokens.
    """

    MIN_SOURCE_TOKENS = 8

    def __init__(self, tokenizer: Any, fmt: PromptFormat, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.fmt = fmt
        self.max_length = int(max_length)
        self.prefix, self.suffix = self._render_around_source()
        self.head, self.prefix_text, self.suffix_text, self.tail = split_control(
            self.prefix, self.suffix, control_strings(tokenizer))
        self._head_ids, self._tail_ids = self._encode(self.head), self._encode(self.tail)
        template_tokens = len(self._encode(self.prefix)) + len(self._encode(self.suffix))
        self.source_budget = self.max_length - template_tokens
        if self.source_budget < self.MIN_SOURCE_TOKENS:
            raise ValueError(
                f"max_prompt_length={self.max_length} is too small: the prompt template alone takes "
                f"{template_tokens} tokens; allow at least {template_tokens + self.MIN_SOURCE_TOKENS}"
            )

    def _render_around_source(self) -> tuple[str, str]:
        text = self.fmt.instruction.replace(_SLOT, _MARK)
        if self.fmt.use_chat_template:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        prefix, _, suffix = text.partition(_MARK)
        return prefix, suffix

    def _encode(self, text: str) -> list[int]:
        """Template text: its special tokens are real control tokens (BOS is not added)."""
        if not text:
            return []
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt_ids(self, source: str) -> list[int]:
        """Template control as control; instruction text and ``source`` as data (see :func:`encode_text`)."""
        return self._head_ids + encode_text(self.tokenizer, self.prefix_text + source + self.suffix_text) + \
            self._tail_ids

    def encode(self, source: str) -> list[int]:
        """Return the prompt ids for one source text (cut to the budget on the format's side).

        The whole prompt is tokenized in one piece, so token boundaries around the source are the
        ones the model saw in training; only an over-long source is cut (by tokens) and re-encoded.
        """
        if not isinstance(source, str):
            raise TypeError(f"source text must be str, got {type(source).__name__}")
        # A token spans at least one character: cutting very long texts first keeps encoding fast.
        max_chars = 32 * self.source_budget
        if len(source) > max_chars:
            source = source[:max_chars] if self.fmt.truncation_side == "right" else source[-max_chars:]
        ids = self._prompt_ids(source)
        if len(ids) <= self.max_length:
            return ids
        source_ids = encode_text(self.tokenizer, source)
        keep = self.source_budget
        while keep > 0:  # merges at the cut can shift lengths by a token or two: shrink until it fits
            cut = source_ids[:keep] if self.fmt.truncation_side == "right" else source_ids[-keep:]
            ids = self._prompt_ids(self.tokenizer.decode(cut))
            if len(ids) <= self.max_length:
                return ids
            keep -= len(ids) - self.max_length
        raise ValueError(f"cannot fit the prompt template into max_prompt_length={self.max_length}")

    def render(self, source: str) -> str:
        """The prompt as text (after truncation), for ``info`` and rendering."""
        return self.tokenizer.decode(self.encode(source))
