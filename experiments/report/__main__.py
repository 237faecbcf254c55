"""python -m experiments.report: re-render a directory's results files, or the docs' rendered blocks."""

import sys

from absl import flags

from experiments import report
from weightspace import cli


def check_flags(flag_values) -> list[str]:
    """One of the two modes: --outdir=DIR, or --docs [--check]."""
    if bool(flag_values.outdir) == flag_values.docs or (flag_values.check and not flag_values.docs):
        return ["Pass --outdir=DIR (re-render its results files) or --docs [--check] (the docs' blocks)"]
    return []


def main(argv):
    del argv
    if flags.FLAGS.outdir:
        report.rerender_directory(flags.FLAGS.outdir)
    elif flags.FLAGS.check:
        stale = report.check_docs()
        for line in stale:
            print(f"{line}; run python -m experiments.report --docs")
        sys.exit(1 if stale else 0)
    else:
        for line in report.rewrite_docs():
            print(f"Rewrote {line}")


if __name__ == "__main__":
    flags.DEFINE_string("outdir", "", "Re-render every results file in this directory into its markdown.")
    flags.DEFINE_bool("docs", False, "Rewrite every rendered block of the docs from its results file.")
    flags.DEFINE_bool("check", False, "With --docs: write nothing, name each block that differs, exit status 1.")
    cli.run_command(main, check_flags)
