"""The project's studies, each a question answered by a Ray Tune study (:mod:`raympa.study`).

* :mod:`raympa.studies.margin_sweep` -- how much do the contrastive loss's settings matter?
* :mod:`raympa.studies.paper_replication` -- the paper's grid of models, criteria and bands.
* :mod:`raympa.studies.options` -- the options every study shares, and the common run.
* :mod:`raympa.studies.data` -- the study's data: simulated auditions (rendered and tracked on
  first use) or a ratings table with its contours.

``raympa study margin-sweep|paper-replication`` and ``studies/*.py`` run them.
"""

from __future__ import annotations

from raympa.studies import margin_sweep, paper_replication
from raympa.studies.options import StudyOptions

STUDIES = {"margin-sweep": margin_sweep, "paper-replication": paper_replication}  # CLI name -> module

__all__ = ["STUDIES", "StudyOptions", "margin_sweep", "paper_replication"]
