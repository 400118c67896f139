"""``bench leaderboard``: run records -> tables, comparisons and plots (markdown, CSV, HTML).

Everything comes from the records under ``<results>/runs`` and the predictions saved beside
them; nothing is trained or downloaded, and nothing here imports torch or Lightning. The steps,
one module each, data flowing one way (each module imports only those before it):

1. :mod:`.collect` reads every record (a :class:`benchmark.run_record.RunRecord`, found through
   the results folder's :class:`benchmark.layout.RunLayout`). Unreadable, malformed and failed
   ones become :class:`Problem` rows that the page lists: nothing is dropped silently.
2. Runs are grouped into *settings*: the same task, protocol, subset and every other config
   field except the backbone (a hash of them), so only like is compared with like.
3. Per backbone: the mean of each metric over seeds with a Student-t interval.
4. :mod:`.pairs`: each non-original backbone (``blurred``, ``overlayed``) with the
   original-data backbone of the same architecture, from the pretraining data kept in the
   record (the registry's ``data``, or ``bench run --backbone-data`` for a checkpoint file);
   ``--pair A:B`` adds any other pair.
5. :mod:`.compare`: per pair and metric, a paired bootstrap over test examples, pooled over
   seeds, from the per-example scores of :mod:`benchmark.analysis.kinds`, plus a Welch interval
   over seeds; per class / attribute / group: the same per column with Holm-adjusted p-values.
   Pairs of evaluation runs (protocol eval) also get :mod:`.imagenet`'s per-category
   comparison (the paper's Table 4 arithmetic), the one ``bench imagenet-compare`` prints.
6. :mod:`.plots` draws the per-column deltas; :mod:`.render` writes markdown, CSV and HTML
   (a Jinja2 template shipped in ``templates/``); :mod:`.build` runs the steps in order.

:mod:`.model` holds the dataclasses every step shares; :mod:`.cache` keeps, in
``<results>/.cache``, what steps 1, 3 and 5 derived from unchanged runs (each record's reading,
the t quantiles, each comparison's statistics), so a rebuild redoes only what changed and gives
the same pages byte for byte (``--no-cache``: none of it).
"""

from benchmark.errors import BenchError
from benchmark.leaderboard.build import build, write
from benchmark.leaderboard.model import (
    ColumnDeltas,
    Comparison,
    Leaderboard,
    MetricDelta,
    Problem,
    Row,
    Run,
    Setting,
)

__all__ = [
    "BenchError",
    "ColumnDeltas",
    "Comparison",
    "Leaderboard",
    "MetricDelta",
    "Problem",
    "Row",
    "Run",
    "Setting",
    "build",
    "write",
]
