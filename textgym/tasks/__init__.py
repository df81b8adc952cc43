"""Task families: one module each."""

from textgym.tasks.dialogue import DialogueEnv
from textgym.tasks.generation import GenerationEnv
from textgym.tasks.summarization import SummarizationEnv

__all__ = ["DialogueEnv", "GenerationEnv", "SummarizationEnv"]
