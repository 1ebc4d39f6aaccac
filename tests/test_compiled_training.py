"""Compiled training never runs eager unnoticed: every seed compiles its own graphs, however
many the process compiled before, and a full dynamo cache raises instead of falling back.

Every compiled module runs through one dynamo frame, whose cache holds at most
``recompile_limit`` entries (one per model structure, batch shape, train or eval). A run that
trains more models than that would, without a reset per seed, fall back to eager silently.
"""

import pytest
import torch
from torch import nn
from torch._dynamo.exc import FailOnRecompileLimitHit

import archs
from bench.measure import compiled
from bench.measure.modes import Mode
from bench.training.loader import to_device
from bench.training.loop import AccuracyConfig, Budget, train_model

CPU = torch.device("cpu")
COMPILED = Mode("fp32", False, "default")  # inductor, C++ on the CPU


@pytest.fixture(autouse=True)
def fresh_dynamo():
    compiled.reset(CPU)
    yield
    compiled.reset(CPU)  # leave no full cache to later tests


def fill_dynamo_cache() -> None:
    """Fill dynamo's cache as a run's earlier models and batch sizes would: a layer compiled at
    as many batch shapes as the limit allows (backend eager: dynamo's cache without the time of
    inductor's C++ compilation)."""
    layer = torch.compile(nn.Linear(4, 4), backend="eager", dynamic=False)
    for batch in range(1, torch._dynamo.config.recompile_limit + 1):
        layer(torch.randn(batch, 4))


def test_a_full_cache_raises_instead_of_running_eager():
    fill_dynamo_cache()
    graphs = compiled.compiled_graphs()
    model = compiled.compile_model(archs.get_entry("lenet").build(), COMPILED)
    x = torch.randn(2, 1, 28, 28)
    with compiled.no_eager_fallback(), pytest.raises(FailOnRecompileLimitHit):
        model(x)
    model(x)  # without the guard dynamo runs it eager, silently
    assert compiled.compiled_graphs() == graphs


@pytest.mark.slow
def test_every_seed_compiles_past_the_recompile_limit(fmnist):
    """After the cache filled up, three compiled seeds in a row each compile their graphs."""
    fill_dynamo_cache()
    cfg = AccuracyConfig(Budget("steps", 3), (0, 1, 2), CPU, COMPILED, batch_cap=32, eval_batch=64)
    train, test = to_device(fmnist, CPU, train_limit=64, eval_limit=64)
    results = [train_model(archs.get_entry("lenet"), train, test, cfg, seed) for seed in cfg.seeds]
    for r in results:
        assert r.compiled_graphs == 1  # the training step's graph, compiled by the first step
        assert r.steps == 3 and not r.diverged
    assert compiled.compiled_graphs() == 2  # the evaluation's graph too, for the last seed
    # same seed, same data: eager training reaches the same weights up to float rounding
    eager = train_model(
        archs.get_entry("lenet"),
        train,
        test,
        AccuracyConfig(Budget("steps", 3), (0,), CPU, Mode("fp32"), batch_cap=32, eval_batch=64),
        seed=0,
    )
    assert results[0].epochs[0].train_loss == pytest.approx(eager.epochs[0].train_loss, rel=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_training_marks_each_step(fmnist):
    """reduce-overhead replays CUDA graphs: without a step marker per step, reading the last
    step's outputs after the next replay fails."""
    cuda = torch.device("cuda")
    cfg = AccuracyConfig(
        Budget("steps", 6),
        (0, 1),
        cuda,
        Mode("bf16", True, "reduce-overhead"),
        batch_cap=64,
        eval_batch=100,
    )
    train, test = to_device(fmnist, cuda, train_limit=256, eval_limit=250)
    for seed in cfg.seeds:
        r = train_model(archs.get_entry("lenet_bn"), train, test, cfg, seed)
        assert r.compiled_graphs >= 1 and r.steps == 6 and not r.diverged
        assert int(r.confusion.sum()) == 250
