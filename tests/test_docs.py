"""The README and docs/: the generated metric reference is current, the README stays short and
starts with the two commands, and every relative link leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from reports import reference
from runfolder.reader import read_results
from runfolder.schema import METRICS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 210
COMMANDS = (
    "python3 -m pip install nox && python3 -m nox -s bench -- --models all",
    "python3 -m pip install nox && python3 -m nox -s tests",
)
FENCE = re.compile(r"^(```|~~~)")
# [text](target) and ![alt](target), the target up to the first space or closing parenthesis
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)")
INLINE_CODE = re.compile(r"`[^`]*`")


def prose_lines(text: str, inline_code: bool = False) -> list[str]:
    """The lines outside fenced code blocks, their inline code removed unless asked for."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line if inline_code else INLINE_CODE.sub("", line))
    return lines


def fenced_blocks(text: str) -> list[str]:
    blocks, current = [], None
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def links(text: str) -> list[str]:
    found = []
    for line in prose_lines(text):
        found += LINK.findall(line)
        found += REFERENCE_LINK.findall(line)
    return found


def anchors(path: Path) -> set[str]:
    """The anchors GitHub makes for a Markdown file's headings."""
    slugs = set()
    for line in prose_lines(path.read_text(), inline_code=True):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).lower())
            slugs.add(text.replace(" ", "-"))
    return slugs


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        dest = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target} (no heading #{fragment} in {dest.name})")
    return broken


def test_metrics_reference_is_current():
    expected = reference.metrics_markdown()
    current = reference.METRICS_MD.read_text() if reference.METRICS_MD.exists() else ""
    assert current == expected, (
        "docs/metrics.md is stale or missing: run `python -m reports.reference`"
    )


def test_every_metric_is_in_the_reference():
    text = (DOCS / "metrics.md").read_text()
    listed = set(re.findall(r"^\| `([^`]+)` \|", text, re.M))
    assert sorted(set(METRICS) - listed) == []
    described = {phase for phase, _ in reference.GROUPS}
    unknown = {m.phase or reference.EVERY_PHASE for m in METRICS.values()} - described
    assert not unknown, f"metrics of phases reports.reference.GROUPS does not describe: {unknown}"


def test_metric_groups_match_the_phases_of_committed_runs():
    """Each metric is listed under the phase whose rows hold it in the committed run folders
    (memory and error rows, which every phase writes, aside; the accuracy phase trained over
    processes writes the ddp figures too)."""
    allowed = {phase: {phase, "every phase"} for phase in ("static", "speed", "ddp", "profile")}
    allowed["accuracy"] = {"accuracy", "ddp", "every phase"}
    runs = sorted((ROOT / "tests" / "data").glob("*/results.csv"))
    assert runs, "no committed run folders"
    wrong = set()
    for results in runs:
        rows = read_results(results)
        for phase, metric in set(zip(rows["phase"], rows["metric"])):
            if reference.group_of(metric) not in allowed[phase]:
                wrong.add((metric, phase, reference.group_of(metric)))
    assert sorted(wrong) == []


def test_check_reports_a_stale_reference(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "metrics.md"
    stale.write_text(reference.metrics_markdown().replace("| `flops` |", "| `flops2` |"))
    monkeypatch.setattr(reference, "METRICS_MD", stale)
    monkeypatch.setattr(reference, "ROOT", tmp_path)
    assert reference.main(["--check"]) == 1
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "python -m reports.reference" in message
    assert reference.main([]) == 0
    assert reference.main(["--check"]) == 0
    assert stale.read_text() == reference.metrics_markdown()


def test_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text()
    lines = len(text.splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES})"
    blocks = fenced_blocks(text)
    assert blocks, "README.md has no fenced code block"
    first = blocks[0].splitlines()
    for command in COMMANDS:
        assert any(line.startswith(command) for line in first), (
            f"README.md's first code block lacks `{command}`"
        )


@pytest.mark.parametrize(
    "page",
    [README, *sorted(DOCS.glob("*.md"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_relative_links_lead_to_files(page):
    assert broken_links(page) == []


def test_link_checker_sees_links_and_catches_a_broken_one(tmp_path):
    assert len(links(README.read_text())) >= 5
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading\n")
    page.write_text(
        "[ok](there.md#a-heading) [gone](missing.md) ![img](img/none.png) "
        "[anchor](there.md#nowhere) [web](https://example.org/x.md) `[code](nope.md)`\n"
        "```\n[fenced](nope.md)\n```\n"
    )
    assert broken_links(page) == [
        "missing.md (no such file)",
        "img/none.png (no such file)",
        "there.md#nowhere (no heading #nowhere in there.md)",
    ]
