"""What the book trains, declared once, and how to train it.

- :mod:`~lsnotes.zoo.settings`: each paper's set-ups and the quick profile, as data;
- :mod:`~lsnotes.zoo.book`: the one declaration of the models each chapter asks for
  (:func:`chapter_models`), its attack settings and its fixed evaluation examples;
- :mod:`~lsnotes.zoo.schedule`: ``lsnotes zoo plan/train``: the cache state and GPU hours of that
  declaration, sequential training;
- :mod:`~lsnotes.zoo.cluster`: the same on a Ray cluster.
"""

from lsnotes.zoo.book import (AT_LABELS, CHAPTERS, FU, GOIBERT, PAPER_TITLES, PAPERS,  # noqa: F401
                              QUICK, SETTINGS, YU, Request, Setting, attack_setting_notes,
                              attack_settings, best_checkpoint, chapter_models, chapter_setting,
                              chapter_trained, config, eval_examples, load_results, ls_label, requests,
                              save_results, setting, settings, sglr_start_epoch, trained,
                              with_overrides)
from lsnotes.zoo.schedule import PlanEntry, format_plan, is_cached, plan, train_sequential  # noqa: F401
from lsnotes.zoo.cluster import train_ray  # noqa: F401
