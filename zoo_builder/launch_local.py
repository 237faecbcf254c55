"""Runs an entry point as several local processes of one JAX job (distributed runtime, gloo collectives).

  python -m zoo_builder.launch_local --processes=2 --devices_per_process=2 -- \
      --config=configs/formal_languages.py:smoke --workdir=/tmp/zoo_fl_smoke

Everything after `--` goes to every process of `--module` (default `zoo_builder.main`), with
`--cpu_devices`, `--coordinator_address` (process 0, on a free local port), `--num_processes` and
`--process_id` added. The processes share the workdir. If one of them fails or is killed, the others
are stopped and the launcher exits with the failed process's code, naming it; rerunning the same
command resumes from the last complete checkpoint.
"""

import socket
import subprocess
import sys
import time

from absl import flags

from weightspace import cli


def free_port() -> int:
    """A TCP port on localhost that is free now (for the job's coordinator)."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch(module: str, processes: int, devices_per_process: int, args: list[str]) -> int:
    """Runs `processes` copies of `python -m module args`; returns 0, or the first failed process's exit code."""
    coordinator = f"localhost:{free_port()}"
    common = [f"--cpu_devices={devices_per_process}", f"--coordinator_address={coordinator}"]
    children = [
        subprocess.Popen(
            [sys.executable, "-m", module, *args, *common, f"--num_processes={processes}", f"--process_id={index}"]
        )
        for index in range(processes)
    ]
    try:
        while True:
            codes = [child.poll() for child in children]
            failed = [(index, code) for index, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                index, code = failed[0]
                print(f"launch_local: process {index} exited with code {code}; stopping the others.", file=sys.stderr)
                return code
            if all(code == 0 for code in codes):
                return 0
            time.sleep(0.5)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def main(argv):
    sys.exit(launch(flags.FLAGS.module, flags.FLAGS.processes, flags.FLAGS.devices_per_process, list(argv[1:])))


if __name__ == "__main__":
    flags.DEFINE_integer("processes", 2, "Local processes.", lower_bound=1)
    flags.DEFINE_integer("devices_per_process", 1, "CPU devices each process exposes.", lower_bound=1)
    flags.DEFINE_string("module", "zoo_builder.main", "Entry point every process runs.")
    cli.run_command(main)
