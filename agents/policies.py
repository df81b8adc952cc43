"""TransformerPolicy: a causal LM or an encoder-decoder as an SB3 actor-critic (LM head = actor, value head = critic)."""

from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from agents.logprobs import action_log_probs
from agents import seq2seq
from agents.lora import add_lora, check_lora, merged_lm
from agents.observations import check_obs_shapes, check_text_space, check_token_obs
from textgym.devices import supports_bf16
from textgym.fieldtypes import check_arg_types
from textgym.layouts import layout_of_space, model_kind
from textgym.models import default_model, load_lm, load_tokenizer

PRECISIONS = ("auto", "fp32", "bf16")


def build_causal_lm(model_name: str | None, model_config: dict[str, Any] | None) -> nn.Module:
    """Load a pretrained LM by name/folder, or build a randomly initialised one from a config dict.

    Causal LMs and encoder-decoders (``AutoModelForSeq2SeqLM``: T5, BART, ...) alike, by the config's
    ``is_encoder_decoder``.

    Only names and plain config dicts are accepted so that a saved agent can rebuild its network.
    The weights are fp32 whatever the checkpoint stores (hub models are mostly bf16): they are the
    master weights that the optimizer updates, and in bf16 most updates at RL learning rates would
    round away. Compute runs in bf16 under autocast where the policy's ``precision`` says so.
    """
    if model_config is not None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

        if not isinstance(model_config, dict) or "model_type" not in model_config:
            raise ValueError("model_config must be a dict with a 'model_type' key, e.g. {'model_type': 'llama', ...}")
        cfg = dict(model_config)
        config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
        auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        lm = auto.from_config(config)
    else:
        lm = load_lm(model_name, dtype="fp32")
    if any(p.is_floating_point() and p.dtype != th.float32 for p in lm.parameters()):
        lm = lm.float()  # e.g. a config dict that names a dtype
    return lm


def sampling_logits(logits: th.Tensor, temperature: float, top_k: int | None, top_p: float | None) -> th.Tensor:
    """Apply temperature, top-k and top-p as a mask on the logits. ``(B, V) -> (B, V)``.

    Masked tokens get the lowest finite logit (probability 0), so rollout and update see the same
    distribution and the log-probs stay consistent.
    """
    logits = logits.float() / temperature
    floor = th.finfo(logits.dtype).min
    if top_k is not None and top_k < logits.shape[-1]:
        kth = th.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, floor)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = th.sort(logits, descending=True, dim=-1)
        cum = th.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop_sorted = cum - th.softmax(sorted_logits, dim=-1) > top_p  # keep the token that crosses top_p
        drop = th.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, floor)
    return logits


def last_positions(mask: th.Tensor) -> th.Tensor:
    """Index of the last attended position per row. ``(B, L) -> (B,)``."""
    length = mask.shape[-1]
    return length - 1 - th.argmax(th.flip(mask, dims=[-1]), dim=-1)


def position_ids(mask: th.Tensor) -> th.Tensor:
    """Position ids that ignore left padding. ``(B, L) -> (B, L)``."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def padding_columns(mask: th.Tensor) -> int:
    """How many leading columns of a left-padded batch are padding in every row. ``(B, L) -> int``.

    They can be sliced off before a forward pass without changing any result, since positions come
    from the mask (:func:`position_ids`) and masked keys get no attention. 0 when no row attends to
    anything (nothing is dropped).
    """
    return int(mask.bool().any(0).int().argmax())  # argmax: the first column some row attends to


def hidden_at_last_token(trunk: nn.Module, obs: dict[str, th.Tensor]) -> th.Tensor:
    """Run a transformer trunk on token observations; final hidden state at each row's last token.

    ``input_ids, attention_mask: (B, L)`` (left-padded prompt, right-padded generation) ``-> (B, H)``.
    """
    ids = obs["input_ids"].long()  # SB3's buffers hold floats; ids < 2**24 are exact
    mask = obs["attention_mask"].long()
    last = last_positions(mask)  # (B,)
    width = int(last.max()) + 1  # nothing after the last token can influence it (causal)
    start = padding_columns(mask[:, :width])
    ids, mask = ids[:, start:width], mask[:, start:width]
    hidden = trunk(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).last_hidden_state  # (B, W, H)
    return hidden[th.arange(ids.shape[0], device=ids.device), last - start]


class TransformerPolicy(ActorCriticPolicy):
    """Actor-critic around a Hugging Face causal LM or encoder-decoder, for textgym's token observations.

    The pretrained LM head is the actor (no fresh action layer); a linear value head on the
    trunk's final hidden state is the critic (or on a separate copy of the trunk). Observations are
    used as integer token ids with their attention mask, never as floats. An encoder-decoder
    (``AutoModelForSeq2SeqLM``: T5, BART, Pegasus, mT5) needs envs made with ``layout="seq2seq"``: its
    decoder's LM head is the actor and the value head reads the decoder's hidden state
    (:mod:`agents.seq2seq`).

    Args:
        observation_space: ``Dict(input_ids, attention_mask)`` from a textgym env (with ``decoder_input_ids,
            decoder_attention_mask`` in the seq2seq layout, for an encoder-decoder).
        action_space: ``Discrete(V)``; ``V`` may be at most the LM's output rows.
        lr_schedule: SB3's learning-rate schedule.
        model_name: Model alias, folder or hub id (default: ``$TEXTGYM_DEFAULT_MODEL``, else the offline
            SmolLM2-135M-Instruct).
        model_config: Build a randomly initialised model from this config dict instead (tests).
        tokenizer: Tokenizer name/folder, checked against the action space (default: the model's
            own when ``model_name`` is given).
        temperature, top_k, top_p: Sampling controls, applied to the action distribution.
        separate_critic: Give the critic its own copy of the trunk.
        lora: Train LoRA adapters instead of the whole LM, e.g. ``dict(r=8, alpha=16,
            target_modules=["q_proj", "v_proj"])`` (see :func:`agents.lora.check_lora`; needs
            ``pip install 'textgym[lora]'``). The base weights stay frozen and are the KL reference.
        precision: ``"auto"`` (bf16 autocast on CUDA devices with native bf16, see
            :func:`textgym.devices.supports_bf16`; fp32 elsewhere), ``"fp32"`` or ``"bf16"``
            (autocast on any device; on a CPU with AVX512-BF16 one PPO iteration measured 1.4x
            faster than fp32, see benchmarks/README.md; CPUs without native bf16 emulate it, so it
            is opt-in there). Weights stay fp32 (the optimizer's master copy), frozen ones too (KL
            reference, LoRA base: an fp32 reference computes what the policy does, so the KL starts
            at 0); the log-softmax always runs in fp32.
        recompute_log_probs: Take the old log-probs and values from one teacher-forced pass like
            the update's (one forward without gradients over the rollout), not from sampling.
            ``None``: under bf16, where the KV-cache decode differs by up to a bf16 step (0.4 %);
            in fp32 the two agree to 1e-6 (tests/test_logprobs.py).
        optimizer_class, optimizer_kwargs: As in SB3 (default AdamW, fused unless ``fused`` or
            ``foreach`` is given).
        **kwargs: SB3 ``ActorCriticPolicy`` arguments that make sense here (``use_sde`` must be False).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        model_name: str | None = None,
        model_config: dict[str, Any] | None = None,
        tokenizer: str | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        separate_critic: bool = False,
        lora: dict[str, Any] | None = None,
        precision: str = "auto",
        recompute_log_probs: bool | None = None,
        optimizer_class: type[th.optim.Optimizer] = th.optim.AdamW,
        optimizer_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # policy_kwargs' types, from the annotations (model_name has its own message, below)
        check_arg_types(TransformerPolicy.__init__, {k: v for k, v in locals().items() if k != "model_name"})
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"TransformerPolicy needs a Discrete token action space, got {action_space}")
        self.obs_length = check_text_space(observation_space)  # one error naming the expected space
        if not 0 < temperature < float("inf"):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        if top_p is not None and not 0 < top_p <= 1:  # (NaN fails this too)
            raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")
        if model_config is None and model_name is None:
            model_name = default_model()  # resolved now, so a saved agent names the model it was built from
        if model_config is None and not isinstance(model_name, str):
            raise TypeError(
                "model_name must be a model alias, folder or hub id (a string); to use a model object, save it "
                f"with model.save_pretrained(folder) and pass the folder (got {type(model_name).__name__})"
            )
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
        self.lora = check_lora(lora)
        if self.lora is not None and separate_critic:
            raise ValueError("lora and separate_critic cannot be combined: a separate critic would be a second "
                             "fully trained trunk; use the shared trunk (separate_critic=False) with LoRA")
        self.precision = precision
        if recompute_log_probs not in (None, True, False):
            raise ValueError(f"recompute_log_probs must be True, False or None (auto), got {recompute_log_probs!r}")
        self.recompute_log_probs = recompute_log_probs
        if kwargs.get("use_sde"):
            raise ValueError("TransformerPolicy has a discrete action space: use_sde must be False")
        self.model_name, self.model_config, self.tokenizer_name = model_name, model_config, tokenizer
        self.temperature, self.top_k, self.top_p = float(temperature), top_k, top_p
        self.separate_critic = separate_critic
        self.skipped_updates = 0
        self.entropy_sum, self.entropy_count = 0.0, 0
        optimizer_kwargs = dict(optimizer_kwargs or {})
        if optimizer_class in (th.optim.AdamW, th.optim.Adam) and not {"fused", "foreach"} & optimizer_kwargs.keys():
            # One fused kernel instead of a loop over ~300 tensors: an AdamW step on SmolLM2-135M
            # takes 0.10 s instead of 0.49 s on one CPU core (benchmarks/README.md).
            optimizer_kwargs["fused"] = True
        super().__init__(observation_space, action_space, lr_schedule, optimizer_class=optimizer_class,
                         optimizer_kwargs=optimizer_kwargs, ortho_init=False, **kwargs)

    # --- construction ------------------------------------------------------------------
    def _build(self, lr_schedule: Any) -> None:
        self.lm = build_causal_lm(self.model_name, self.model_config)
        # With LoRA, self.lm is the same model with adapter layers injected (the trunk code is
        # unchanged); the PeftModel wrapper is kept outside the module tree so that its weights
        # are not registered (and saved) twice.
        self.__dict__["peft_model"] = add_lora(self.lm, self.lora) if self.lora is not None else None
        self.reference_lm: nn.Module | None = None
        self.n_actions = int(self.action_space.n)
        rows = self.lm.get_output_embeddings().weight.shape[0]
        if self.n_actions > rows:
            raise ValueError(
                f"the env's action space has {self.n_actions} tokens but the model's LM head has only {rows} "
                "rows: use the tokenizer that belongs to the model"
            )
        self._check_tokenizer()
        self._check_layout()
        hidden = self.lm.config.get_text_config().hidden_size
        self.critic_trunk = copy.deepcopy(self.lm.base_model) if self.separate_critic else None
        self.value_head = nn.Linear(hidden, 1)
        # Start at V = 0: a random head's large early value errors would otherwise send big
        # gradients into the shared pretrained trunk before the head has learned anything.
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        self.action_dist = CategoricalDistribution(self.n_actions)
        # Only trainable weights: with LoRA the adapters and the value head, so the optimizer state is small.
        trainable = [p for p in self.parameters() if p.requires_grad]
        self.optimizer = self.optimizer_class(trainable, lr=lr_schedule(1), **self.optimizer_kwargs)
        self.optimizer.register_step_pre_hook(self._skip_nonfinite_step)

    def _check_tokenizer(self) -> None:
        name = self.tokenizer_name or (self.model_name if self.model_config is None else None)
        if name is None:
            return
        try:
            tokenizer = load_tokenizer(name)
        except OSError:  # a model folder without tokenizer files: nothing to compare against
            if self.tokenizer_name:
                raise
            return
        if len(tokenizer) != self.n_actions:
            raise ValueError(
                f"tokenizer {name!r} has {len(tokenizer)} tokens but the env's action space has {self.n_actions}: "
                "make the env with the same tokenizer as the model"
            )

    def _check_layout(self) -> None:
        """The env's observation layout must fit the model's kind; a seq2seq source must fit the encoder."""
        layout, kind = layout_of_space(self.observation_space), model_kind(self.lm.config)
        name = self.model_name if self.model_config is None else f"model_config {self.lm.config.model_type}"
        if layout != kind:
            raise ValueError(f"the env's observations have layout={layout!r} but {name} is a {kind} model "
                             f"({self.lm.config.model_type}): make the env with layout={kind!r} (or 'auto' with the "
                             "model's tokenizer folder)")
        limit = getattr(self.lm.config, "max_position_embeddings", None)
        source = self.observation_space["input_ids"].shape[0]
        if kind == "seq2seq" and isinstance(limit, int) and source > limit:
            raise ValueError(f"layout='seq2seq': the env's sources take up to {source} tokens (max_prompt_length) but "
                             f"the {kind} model's encoder ({self.lm.config.model_type}) takes at most {limit} "
                             "positions: make the env with a smaller max_prompt_length")

    @property
    def is_seq2seq(self) -> bool:
        """Whether the LM is an encoder-decoder (observations in the seq2seq layout)."""
        return seq2seq.is_seq2seq(self.lm)

    def trunk_hidden(self, trunk: nn.Module, obs: dict[str, th.Tensor]) -> th.Tensor:
        """``trunk``'s final hidden state before each row's next action (causal: the last token; seq2seq: the
        decoder's last token). ``-> (B, H)``."""
        fn = seq2seq.hidden_at_last_token if seq2seq.is_seq2seq(trunk) else hidden_at_last_token
        return fn(trunk, obs)

    def _skip_nonfinite_step(self, optimizer: th.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Drop the whole update when any gradient is NaN/inf (a bad batch must not corrupt weights)."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        # The total norm is non-finite iff some entry is (or the norm overflows: garbage either
        # way); one foreach reduction, ~10x cheaper than an isfinite() pass per tensor.
        if grads and not th.isfinite(th.nn.utils.get_total_norm(grads)):
            self.skipped_updates += 1
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None  # optimizers skip parameters without gradients

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in ("net_arch", "activation_fn", "ortho_init", "features_extractor_class",
                    "features_extractor_kwargs", "share_features_extractor", "log_std_init",
                    "full_std", "use_expln", "squash_output"):
            data.pop(key, None)
        data.update(model_name=self.model_name, model_config=self.model_config, tokenizer=self.tokenizer_name,
                     temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                     separate_critic=self.separate_critic, lora=self.lora, precision=self.precision,
                    recompute_log_probs=self.recompute_log_probs)
        return data

    # --- the KL reference, saving and export ---------------------------------------------------
    def init_reference(self) -> None:
        """Freeze the current LM as the KL reference (the algorithms call this once, at set-up).

        Without LoRA: a frozen copy of the LM (not saved: rebuilt from ``model_name``). With LoRA: nothing to copy,
        the reference is the same LM with its adapters disabled (one copy of the base weights).
        """
        if self.peft_model is None and self.reference_lm is None:
            self.reference_lm = copy.deepcopy(self.lm).eval().requires_grad_(False)

    @contextmanager
    def reference(self) -> Iterator[nn.Module]:
        """Context in which the yielded LM is the frozen reference (with LoRA: adapters disabled)."""
        if self.peft_model is not None:
            with self.peft_model.disable_adapter():
                yield self.lm
        elif self.reference_lm is not None:
            yield self.reference_lm
        else:
            raise RuntimeError("this policy has no KL reference: call init_reference() first "
                               "(agents.PPO and agents.A2C do)")

    def export_lm(self) -> nn.Module:
        """The LM as a plain Hugging Face model for ``save_pretrained`` (LoRA adapters merged into a copy)."""
        return self.lm if self.peft_model is None else merged_lm(self.peft_model)

    def train(self, mode: bool = True) -> "TransformerPolicy":
        super().train(mode)
        if self.reference_lm is not None:
            self.reference_lm.eval()  # the reference never runs in training mode (dropout)
        return self

    # Set for one save by ``save(..., include_reference=True)``: the frozen reference copy is saved too.
    save_reference = False

    def _rebuilt_keys(self) -> set[str]:
        """State-dict keys rebuilt from ``model_name`` at load, so not saved: the frozen reference copy,
        and with LoRA the frozen base weights (see :mod:`agents.reference`)."""
        if self.model_config is not None:
            return set()  # a config-built model's random weights cannot be rebuilt: save them
        keys = set()
        if self.reference_lm is not None and not self.save_reference:
            keys |= {f"reference_lm.{name}" for name in self.reference_lm.state_dict(keep_vars=True)}
        if self.peft_model is not None:
            trainable = {name for name, p in self.lm.named_parameters(remove_duplicate=False) if p.requires_grad}
            keys |= {f"lm.{name}" for name in self.lm.state_dict(keep_vars=True) if name not in trainable}
        return keys

    def reference_can_be_rebuilt(self) -> bool:
        """Whether a save leaves the reference out (it comes back from ``model_name`` at load)."""
        return self.model_config is None and not self.save_reference

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """nn.Module's state dict without what ``model_name`` rebuilds (the reference; with LoRA the base weights)."""
        state = super().state_dict(*args, **kwargs)
        frozen = self._rebuilt_keys()
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        return type(state)((k, v) for k, v in state.items() if k[len(prefix):] not in frozen)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False):
        """Load a state dict from :meth:`state_dict`; what ``model_name`` rebuilds may be absent."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = sorted(set(result.missing_keys) - self._rebuilt_keys())
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"policy state dict does not match this policy (lora={self.lora}): missing "
                               f"{missing[:5]}, unexpected {sorted(result.unexpected_keys)[:5]}")
        return result

    # --- forward passes ------------------------------------------------------------------
    def uses_bf16(self) -> bool:
        """Whether forward passes run under bf16 autocast (see ``precision``)."""
        if self.precision != "auto":
            return self.precision == "bf16"
        return supports_bf16(self.device)

    def recomputes_log_probs(self) -> bool:
        """Whether rollouts take their log-probs and values from a teacher-forced pass (see ``recompute_log_probs``)."""
        if self.recompute_log_probs is not None:
            return self.recompute_log_probs
        return self.uses_bf16()

    def autocast(self):
        """bf16 autocast on this policy's device when :meth:`uses_bf16`; a no-op otherwise."""
        return th.autocast(self.device.type, dtype=th.bfloat16) if self.uses_bf16() else nullcontext()

    def _last_hidden(self, obs: dict[str, th.Tensor], actions: th.Tensor | None = None) -> tuple[th.Tensor, th.Tensor]:
        """Final hidden state at each row's last token, for actor and critic. ``-> (B, H), (B, H)``.

        ``obs`` (and ``actions``, from ``evaluate_actions``) are checked first, in one host sync."""
        check_token_obs(obs, self.obs_length, self.lm.get_input_embeddings().num_embeddings, actions)
        with self.autocast():
            actor = self.trunk_hidden(self.lm.base_model, obs)
            critic = actor if self.critic_trunk is None else self.trunk_hidden(self.critic_trunk, obs)
        return actor, critic

    @th.no_grad()
    def reference_log_prob(self, obs: dict[str, th.Tensor], actions: th.Tensor) -> th.Tensor:
        """Log-prob of ``actions`` under the frozen reference LM at this policy's temperature. ``-> (B,)``.

        See :meth:`reference_log_probs_from_hidden` for why top-k / top-p are not applied to the reference.
        """
        with self.reference() as reference:
            with self.autocast():
                hidden = self.trunk_hidden(reference.base_model, obs)
            return self.reference_log_probs_from_hidden(reference, hidden, actions.long().view(-1))

    def reference_log_probs_from_hidden(self, reference: nn.Module, hidden: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """Log-probs of ``actions`` from the reference's hidden states. ``(..., H), (...) -> (...)``.

        The reference distribution has this policy's temperature but full support: with top-k /
        top-p also applied here, a token the policy learned to prefer could fall outside the
        reference's kept set and get log-prob ~ -3e38, an overflowing KL penalty. Untruncated,
        ``log pi - log pi_ref`` stays finite and estimates the KL of the sampling policy from the
        initial model.
        """
        with self.autocast():
            logits = seq2seq.output_logits(reference, hidden)[..., : self.n_actions]
        return action_log_probs(sampling_logits(logits, self.temperature, None, None), actions)

    def logits_from_hidden(self, hidden: th.Tensor) -> th.Tensor:
        """LM-head logits over the env's tokens, with the sampling controls. ``(..., H) -> (..., V)``."""
        with self.autocast():
            logits = seq2seq.output_logits(self.lm, hidden)[..., : self.n_actions]
        return sampling_logits(logits, self.temperature, self.top_k, self.top_p)

    def values_from_hidden(self, hidden: th.Tensor) -> th.Tensor:
        """Value head. ``(..., H) -> (..., 1)``."""
        return self.value_head(hidden.float())

    def forward(self, obs: dict[str, th.Tensor], deterministic: bool = False):
        actor, critic = self._last_hidden(obs)
        distribution = self.action_dist.proba_distribution(action_logits=self.logits_from_hidden(actor))
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, self.values_from_hidden(critic), distribution.log_prob(actions)

    def evaluate_actions(self, obs: dict[str, th.Tensor], actions: th.Tensor):
        actor, critic = self._last_hidden(obs, actions)
        distribution = self.action_dist.proba_distribution(action_logits=self.logits_from_hidden(actor))
        entropy = distribution.entropy()
        self.record_entropy(entropy)
        return self.values_from_hidden(critic), distribution.log_prob(actions), entropy

    def record_entropy(self, entropy: th.Tensor, mask: th.Tensor | None = None) -> None:
        """Count the entropies of a training pass (``mask``: the steps that happened) into ``train/entropy``.

        SB3 logs only ``-entropy`` as a loss; the policy keeps the mean itself, so every algorithm and
        both paths log the same metric without bookkeeping of their own. Passes outside training mode
        (rollouts, evaluation) are not counted.
        """
        if not self.training:
            return
        values = entropy.detach() if mask is None else entropy.detach()[mask.bool()]
        self.entropy_sum += float(values.sum())
        self.entropy_count += values.numel()

    def pop_mean_entropy(self) -> float | None:
        """Mean entropy over the ``evaluate_actions`` calls since the last pop (``None`` if none)."""
        mean = self.entropy_sum / self.entropy_count if self.entropy_count else None
        self.entropy_sum, self.entropy_count = 0.0, 0
        return mean

    def get_distribution(self, obs: dict[str, th.Tensor]):
        actor, _ = self._last_hidden(obs)
        return self.action_dist.proba_distribution(action_logits=self.logits_from_hidden(actor))

    def predict_values(self, obs: dict[str, th.Tensor]) -> th.Tensor:
        return self.values_from_hidden(self._last_hidden(obs)[1])

    def obs_to_tensor(self, observation: Any):
        """SB3's conversion for ``predict``, after a shape check that names the key (no numpy reshape error)."""
        check_obs_shapes(observation, self.observation_space)
        return super().obs_to_tensor(observation)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False):
        """SB3's ``predict``, its arguments checked by their annotations (``deterministic="yes"`` is refused)."""
        check_arg_types(TransformerPolicy.predict, {"deterministic": deterministic}, "predict")
        return super().predict(observation, state, episode_start, deterministic)

    def _predict(self, observation: dict[str, th.Tensor], deterministic: bool = False) -> th.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)
