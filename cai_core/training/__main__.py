"""``python -m cai_core.training RUN_DIR``: the training process of one run.

It is the job worker (status, lock, stop on SIGTERM; see cai_core.jobs). With ``--rank`` it is one
process of a distributed run, started by ``accelerate launch`` from that worker.
"""

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--rank":
        from .trainer import run_rank

        return run_rank(Path(argv[1]))
    from ..jobs import main as job_main

    return job_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
