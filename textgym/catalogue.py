"""The catalogue of tasks: one record per registered id, and the limits every layer shares.

A :class:`Task` holds everything textgym knows about one data set: its id and family, its preset
(instruction, default reward, metrics, lengths), its files in a local data folder and the format
that parses them, its Hugging Face hub source, and the splits that ship. The rest is derived from
:data:`TASKS`: the Gymnasium registration (``textgym/__init__.py``), the families' ``PRESETS``,
the loaders' layout (:mod:`textgym.data.loaders`), the hub tables (:mod:`textgym.data.hub`),
``textgym list`` and the metrics every evaluation reports. Adding a task is one record here (and
a parser, when its files are in a format no other data set uses).

Only the standard library is imported: ``import textgym`` reads this module.

>>> find_task("textgym/SAMSum-v0").dataset
'samsum'
>>> dataset_task("imdb").heldout
('train[90%:]', 'train[:90%]')
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

MAX_TOKENS = 8192  # a sanity bound on lengths; a typo like 1e9 would otherwise allocate forever
REWARD_MODES = ("terminal", "dense")
SPLITS = ("train", "validation", "test")
#: family -> its environment class, as a Gymnasium entry point (imported when an id is made)
FAMILIES: Mapping[str, str] = MappingProxyType({
    "generation": "textgym.tasks.generation:GenerationEnv",
    "summarization": "textgym.tasks.summarization:SummarizationEnv",
    "dialogue": "textgym.tasks.dialogue:DialogueEnv",
})


@dataclass(frozen=True)
class TaskPreset:
    """Defaults of one data set within a task family."""

    instruction: str
    reward: Any
    metrics: tuple[str, ...]
    max_prompt_length: int
    max_new_tokens: int
    truncation_side: str = "right"


@dataclass(frozen=True)
class SplitFiles:
    """The files of one split in a local data folder, and their format.

    Attributes:
        names: File names inside the data set's folder, handed to the parser in this order.
        parser: The format: a key of :data:`textgym.data.loaders.PARSERS`.
    """

    names: tuple[str, ...]
    parser: str


@dataclass(frozen=True)
class HubSource:
    """Where the Hugging Face hub keeps a data set.

    Attributes:
        repo: Repository id.
        rows: The row format: a key of :data:`textgym.data.hub.ROW_MAPPERS`.
        config: Configuration name, for a repository that has several.
        splits: The splits the repository has.
    """

    repo: str
    rows: str
    config: str | None = None
    splits: tuple[str, ...] = SPLITS


@dataclass(frozen=True)
class Task:
    """One registered environment id and the data set behind it.

    Attributes:
        name: The id reads ``textgym/<name>-v<version>``.
        family: A key of :data:`FAMILIES`.
        dataset: The data set's key, as ``load_samples`` and the env's ``dataset=`` take it.
        preset: The env's defaults: instruction, default reward, metrics, lengths.
        files: Split -> its files in a local data folder; ``None`` for a corpus packaged with
            textgym (:mod:`textgym.data.builtin`).
        shipped: The splits whose files ship (in ``shared/data``; all three for a packaged
            corpus). A split that does not ship reads a file in the format of one that does.
        hub: The hub source, or ``None``.
        heldout: For a data set without a validation split: (the slice of ``train`` that
            ``"validation"`` loads instead, the complementary slice to train on).
        version: The id's version; a change to spaces, dynamics, rewards or defaults bumps it.
    """

    name: str
    family: str
    dataset: str
    preset: TaskPreset
    files: Mapping[str, SplitFiles] | None = None
    shipped: tuple[str, ...] = SPLITS
    hub: HubSource | None = None
    heldout: tuple[str, str] | None = None
    version: int = 0

    @property
    def env_id(self) -> str:
        """The registered id, e.g. ``textgym/SAMSum-v0``."""
        return f"textgym/{self.name}-v{self.version}"

    @property
    def packaged(self) -> bool:
        """Whether the data ships inside the package (no download, no data folder)."""
        return self.files is None

    def same_format_as(self, split: str) -> str | None:
        """The shipped file whose format ``split``'s first file has (None if ``split`` ships).

        >>> dataset_task("commongen").same_format_as("test"), dataset_task("samsum").same_format_as("train")
        ('commongen.dev.jsonl', 'validation.json')
        """
        if self.files is None or split in self.shipped:
            return None
        parser = self.files[split].parser
        return next((self.files[s].names[0] for s in self.shipped if self.files[s].parser == parser), None)


def _one_file_per_split(ext: str, parser: str) -> dict[str, SplitFiles]:
    return {split: SplitFiles((f"{split}.{ext}",), parser) for split in SPLITS}


_CONCEPTS = "Write one short, natural sentence that uses all of these words: {source}"
_ARTICLE = "Summarize this news article in a few sentences.\n\n{source}"
_DIALOGUE = "Summarize this dialogue in one sentence.\n\n{source}"
_NEXT_TURN = "Here is a conversation. Write the next reply, one or two sentences.\n\n{source}"
_REVIEW = "Continue this movie review: {source}"
_SUMMARY_METRICS = ("rouge1", "rouge2", "rougeL")

TASKS: tuple[Task, ...] = (
    Task("Generation", "generation", "builtin_generation", TaskPreset(_CONCEPTS, "bleu", ("bleu", "rougeL"), 64, 24)),
    Task("Summarization", "summarization", "builtin_summarization",
         TaskPreset(_ARTICLE, "rougeL", _SUMMARY_METRICS, 320, 48)),
    Task("Dialogue", "dialogue", "builtin_dialogue", TaskPreset(_NEXT_TURN, "rougeL", ("bleu", "rougeL"), 192, 32, "left")),
    Task("CommonGen", "generation", "commongen", TaskPreset(_CONCEPTS, "bleu", ("bleu", "rouge2", "rougeL"), 64, 24),
         files={"train": SplitFiles(("commongen.train.src_alpha.txt", "commongen.train.tgt.txt"), "commongen_pair"),
                "validation": SplitFiles(("commongen.dev.jsonl",), "commongen_jsonl"),
                "test": SplitFiles(("commongen.test.jsonl",), "commongen_jsonl")},
         shipped=("train", "validation"), hub=HubSource("allenai/common_gen", "commongen")),
    # Default reward "sentiment" since before any release; see GenerationEnv's Version History.
    Task("IMDB", "generation", "imdb", TaskPreset(_REVIEW, "sentiment", ("sentiment", "bleu", "rougeL"), 64, 40),
         files=_one_file_per_split("csv", "imdb_csv"), shipped=("train",),
         hub=HubSource("stanfordnlp/imdb", "imdb", splits=("train", "test")), heldout=("train[90%:]", "train[:90%]")),
    Task("CNNDailyMail", "summarization", "cnn_dailymail",
         TaskPreset(_ARTICLE, "rougeLsum", ("rouge1", "rouge2", "rougeLsum"), 512, 96),
         files=_one_file_per_split("csv", "cnn_csv"), shipped=("validation",),
         hub=HubSource("abisee/cnn_dailymail", "cnn", config="3.0.0")),
    Task("SAMSum", "summarization", "samsum", TaskPreset(_DIALOGUE, "rougeL", _SUMMARY_METRICS, 384, 48),
         files=_one_file_per_split("json", "summary_json"), shipped=("validation",),
         hub=HubSource("knkarthick/samsum", "summary")),
    Task("DialogSum", "summarization", "dialogsum", TaskPreset(_DIALOGUE, "rougeL", _SUMMARY_METRICS, 384, 64),
         files=_one_file_per_split("json", "summary_json"), shipped=("validation",),
         hub=HubSource("knkarthick/dialogsum", "summary")),
    Task("DailyDialog", "dialogue", "dailydialog", TaskPreset(_NEXT_TURN, "rougeL", ("bleu", "rougeL"), 192, 32, "left"),
         files={"train": SplitFiles(("dialogues_text_En.txt",), "dailydialog_text"),
                "validation": SplitFiles(("en_dev_human.txt",), "dailydialog_tsv"),
                "test": SplitFiles(("en_test_human.txt",), "dailydialog_tsv")},
         shipped=("train", "validation"), hub=HubSource("li2017dailydialog/daily_dialog", "dailydialog")),
)


def _check(tasks: tuple[Task, ...]) -> None:
    """Raise ValueError on a record that the derived tables could not use."""
    for key in ("env_id", "dataset"):
        values = [getattr(t, key) for t in tasks]
        if len(set(values)) != len(values):
            raise ValueError(f"catalogue: duplicate {key} in {values}")
    for t in tasks:
        problems = [
            f"family {t.family!r} is not one of {sorted(FAMILIES)}" if t.family not in FAMILIES else "",
            f"shipped {t.shipped} must be splits of {SPLITS}" if not set(t.shipped) <= set(SPLITS) else "",
            f"files must name every split of {SPLITS}" if t.files is not None and set(t.files) != set(SPLITS) else "",
            f"lengths must be in [1, {MAX_TOKENS}]" if not all(
                1 <= n <= MAX_TOKENS for n in (t.preset.max_prompt_length, t.preset.max_new_tokens)) else "",
        ]
        if any(problems):
            raise ValueError(f"catalogue: {t.env_id}: " + "; ".join(p for p in problems if p))


_check(TASKS)
_BY_ID = {t.env_id: t for t in TASKS}
_BY_DATASET = {t.dataset: t for t in TASKS}


def find_task(env_id: str) -> Task | None:
    """The record of a registered textgym id, or None for any other id."""
    return _BY_ID.get(env_id)


def dataset_task(dataset: str) -> Task:
    """The record of a data set key; ValueError naming the known keys for any other."""
    if dataset not in _BY_DATASET:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(_BY_DATASET)}")
    return _BY_DATASET[dataset]


def presets(family: str) -> dict[str, TaskPreset]:
    """``{dataset: preset}`` of one family, in catalogue order (its env class's ``PRESETS``)."""
    return {t.dataset: t.preset for t in TASKS if t.family == family}
