"""Training throughput over N processes against one: the rows both the ddp phase and the
accuracy phase's training across processes write, and the scaling efficiency's one formula."""

from __future__ import annotations

from runfolder.rows import Row, result_row

START_S = 10.0  # starting torchrun's processes and importing torch, per launch (estimate)


def efficiency(total: float, alone: float, processes: int) -> float:
    """Throughput over ``processes`` processes against ``processes`` times one's (1: perfect)."""
    return total / (processes * alone)


def scaling_rows(
    facts: dict[str, object],
    processes: int,
    total: float,
    alone: float,
    method: str,
    single_method: str,
) -> list[Row]:
    """Training throughput over ``processes`` processes (``total`` samples/s) against one
    process (``alone``): in all, per process, and the scaling efficiency."""
    return [
        result_row(facts, "ddp_processes", processes, method),
        result_row(facts, "ddp_throughput", total, method),
        result_row(facts, "ddp_throughput_per_process", total / processes, method),
        result_row(facts, "ddp_single_throughput", alone, single_method),
        result_row(
            facts,
            "ddp_scaling_efficiency",
            100 * efficiency(total, alone, processes),
            f"throughput with {processes} processes / ({processes} x with 1); {method}",
        ),
    ]
