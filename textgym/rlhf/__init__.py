"""The RLHF loop: collect human preferences on a local web page, train a reward model on them.

* :mod:`textgym.rlhf.store`: the append-only SQLite preference store;
* :mod:`textgym.rlhf.collect`: sample candidate pairs from a policy, serve the labelling page;
* :mod:`textgym.rlhf.train`: fit a :class:`~textgym.rewards.reward_model.RewardModel` on
  preferences (Bradley-Terry) or on labelled texts;
* :mod:`textgym.rlhf.sentiment`: the IMDB sentiment reward model (``rm:imdb-sentiment``);
* :mod:`textgym.rlhf.cli`: ``textgym rlhf collect|import|train-rm|train-sentiment``.

Importing this package is cheap (torch loads when a model is used).
"""

from textgym.rlhf.store import CHOICES, Pair, Preference, PreferenceStore

__all__ = ["CHOICES", "Pair", "Preference", "PreferenceStore"]
