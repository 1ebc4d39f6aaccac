"""A shard job that crashes its process the first time it runs shard 2 (as a lost node would
end it) and runs normally after: imported by the launcher's job processes in
tests/test_shards.py, which put this folder on their PYTHONPATH."""

import os
from pathlib import Path

from bench.launch import run_shard


def crash_once(argv: list[str], visible: str | None = None) -> int:
    marker = Path(os.environ["ARCHBENCH_TEST_MARKER"])
    if "2/2" in argv and not marker.exists():
        marker.write_text("crashed once")
        os._exit(9)  # the process dies: no exception, no exit status from the shard
    return run_shard(argv, visible)
