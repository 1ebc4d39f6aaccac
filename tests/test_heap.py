import subprocess
import sys
import textwrap

import pytest

# Each probe runs in its own process: keeping freed memory is process-wide and for good.
PROBE = textwrap.dedent("""
    import resource, sys, torch
    from bench.measure.heap import keep_freed_memory
    torch.set_num_threads(1)
    if sys.argv[1] == "keep":
        print(keep_freed_memory(), file=sys.stderr)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, padding=1))
    x = torch.randn(5, 4, 512, 512)  # activations of 40 MiB: above glibc's largest mmap threshold
    def faults_of_one_step():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        with torch.no_grad():
            net(x)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    [faults_of_one_step() for _ in range(2)]  # warm-up: the first steps fault their memory in
    print(min(faults_of_one_step() for _ in range(3)))
""")


def faults_per_step(how: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, how], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_step_does_not_fault_its_memory_in_again():
    assert faults_per_step("plain") >= 10240  # glibc maps such blocks anew for every step
    assert faults_per_step("keep") < 256
