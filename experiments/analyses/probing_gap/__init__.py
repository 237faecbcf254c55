"""The probing gap: interactive probing against any fixed probing sequence, on combination locks.

  python -m experiments.analyses.probing_gap --preset=quick --outdir=/tmp/probing_gap    # m = 1..4, 128 LSTMs a zoo
  python -m experiments.analyses.probing_gap --preset=medium --outdir=/tmp/probing_gap   # m = 2..4, 1024 LSTMs a zoo
  python -m experiments.analyses.probing_gap --preset=m5 --outdir=/tmp/probing_gap       # m = 5, L = 64, 1024 LSTMs

The paper proves that a prober which chooses its next input after seeing the last answer can need
exponentially fewer probing steps than any fixed probing sequence. A combination lock
(`weightspace.tasks.combination_lock`) is such a case: its label shows only once its code has been
entered, so a fixed sequence of L symbols reads the label of the locks whose code it contains (at most
L - m + 1 of the |Σ|^m codes), while a prober that reads the progress after each symbol finds any code
of m symbols in (|Σ| - 1) m (m + 1) / 2 + m.

For every code length m of the preset this builds (or finds) a zoo of LSTMs trained on their locks
(`<outdir>/zoos/m<m>`), trains the interactive and non-interactive probing encoders (same sizes, same
probe budget L, same training; by default each started on and held to the best prober of its kind,
`DEFAULT_VARIANTS` and `DEFAULT_OVERRIDES`) and DWSNet on it (`<outdir>/runs/...`, each an
`experiments.main` run with its downstream evaluation), and reads the label and the code of LSTMs of
held-out codes (the OOD split) that implement their lock. Beside the encoders, two references with no
learning read the same LSTMs within the same budget: the adaptive search
(`combination_lock.adaptive_search`) and the best fixed sequence (a de Bruijn prefix,
`combination_lock.fixed_read`). Between the two: the fixed sequence's answers read by the downstream
probe the encoders are scored with, fitted on the training codes (`READERS`): what a learned reader of
the best fixed probe reads of held-out codes; each probing encoder's own trained probes read the same way
(their answers counted, `<encoder>_pooled_by_probe`), apart from its learned reader. The same is done for
several budgets L at one m.
`--encoders=interactive,noninteractive` trains only those. With `--heldout_locks=N` a point whose OOD
split holds out fewer than N distinct locks trains every encoder on further OOD folds too (`split.ood_fold`,
each holding out other codes) until together they hold out N, and pools their reads.

A learned encoder always answers (an MLP probe on its embedding); a reference reads a label or
nothing, and is scored as if it guessed uniformly where it read nothing (read + (1 - read) / K), so
every row is on the same accuracy scale, with chance at 1 / K. The bounds drawn beside them hold for
any LSTM that implements its lock: the fraction of codes the budget covers (exactly, over all codes:
every code the adaptive search finds within L symbols; the codes a de Bruijn prefix of L holds),
guess-adjusted the same way.

Writes into `outdir`: `probing_gap.json` (every row, and the command, machine and wall time),
`probing_gap.md` (the tables, rendered from it by `experiments.report`), `probing_gap_m.png`
(accuracy against m) and `probing_gap_budget.png` (accuracy against L). Runs and zoos are reused
when finished, so an interrupted invocation resumes.
"""

from experiments.analyses.probing_gap.plans import (
    DEFAULT_OVERRIDES,
    DEFAULT_VARIANTS,
    ENCODERS,
    PLANS,
    Options,
    Plan,
    run_config,
    zoo_config,
)
from experiments.analyses.probing_gap.points import make, mean_rows, run_point
from experiments.analyses.probing_gap.readers import PREDICTOR, READERS, REFERENCES, SUBSET

__all__ = [
    "DEFAULT_OVERRIDES",
    "DEFAULT_VARIANTS",
    "ENCODERS",
    "PLANS",
    "PREDICTOR",
    "READERS",
    "REFERENCES",
    "SUBSET",
    "Options",
    "Plan",
    "make",
    "mean_rows",
    "run_config",
    "run_point",
    "zoo_config",
]
