"""A shard job that crashes its process the first time it runs shard 2 (as a lost node would
end it) and runs normally after: imported by the launcher's job processes in
tests/test_shards.py, which put this folder on their PYTHONPATH."""

import os
from pathlib import Path

from bench.run.launchers import run_shard
from bench.spec import RunSpec


def crash_once(spec: RunSpec, out: Path, resume: bool, visible: str | None = None) -> int:
    marker = Path(os.environ["ARCHBENCH_TEST_MARKER"])
    if spec.shard == (2, 2) and not marker.exists():
        marker.write_text("crashed once")
        os._exit(9)  # the process dies: no exception, no exit status from the shard
    return run_shard(spec, out, resume, visible)
