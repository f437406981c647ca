"""The user docs stay short and point at records that exist: README.md fits
in 200 lines, every ``results/...`` path the docs name exists, every number in
a table row that names a ``results/*.json`` file is in that file, and
docs/configuration.md lists every key of the recipe and model yamls."""

import glob
import json
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "RESULTS.md", *sorted((REPO / "docs").glob("*.md"))]
# a results/ path, not one inside recipes/<Dataset>/results/
RESULTS_PATH = re.compile(r"(?<![\w/])(?:\.\./)?results/[\w.{},*/-]*")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def expand_braces(pattern):
    """``a{b,c}d`` -> ``[abd, acd]`` (one level, as the docs write them)."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end():]
    return [p for option in match.group(1).split(",") for p in expand_braces(head + option + tail)]


def named_results(text):
    """The results/ paths a text names, with the path prefixes of commands
    (``--output results/x``) as they are written."""
    for token in RESULTS_PATH.findall(text):
        token = token.rstrip(".,").removeprefix("../")
        if token.rstrip("/") != "results":
            yield token


def test_readme_is_short():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines (at most 200): move detail to docs/"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_results_exist(doc):
    missing = []
    for token in named_results(doc.read_text()):
        for path in expand_braces(token):
            # an exact file, a glob, or an --output prefix of files
            if not (glob.glob(str(REPO / path)) or glob.glob(str(REPO / path) + "*")):
                missing.append(path)
    assert not missing, f"{doc.name} names results that do not exist: {missing}"


def json_numbers(path):
    """Every number in a JSON file, as the 2-decimal strings docs copy."""
    found = set()

    def walk(value):
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            found.update({f"{value:.2f}", f"{value:.1f}", str(value)})
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(path.read_text()))
    return found


@pytest.mark.parametrize("doc", [REPO / "README.md", REPO / "RESULTS.md"], ids=lambda p: p.name)
def test_table_numbers_come_from_the_named_json(doc):
    checked = 0
    for line in doc.read_text().splitlines():
        if not line.startswith("|"):
            continue
        files = {p for p in named_results(line) if p.endswith(".json")}
        if len(files) != 1:
            continue
        numbers = json_numbers(REPO / files.pop())
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        for cell in cells[1:]:
            if NUMBER.match(cell):
                assert cell in numbers, f"{doc.name}: {cell} is not in the JSON the row names: {line}"
                checked += 1
    assert checked > 0, f"no table row of {doc.name} names a results JSON"


def top_level_keys(path):
    return re.findall(r"^([A-Za-z_]\w*):", path.read_text(), flags=re.M)


def test_configuration_lists_every_yaml_key():
    documented = (REPO / "docs" / "configuration.md").read_text()
    yamls = sorted(REPO.glob("recipes/*/hparams/*.yaml")) + sorted(REPO.glob("hparams/*.yaml"))
    assert yamls
    missing = [
        f"{path.relative_to(REPO)}: {key}"
        for path in yamls
        for key in top_level_keys(path)
        if f"`{key}`" not in documented
    ]
    assert not missing, f"keys missing from docs/configuration.md: {missing}"


def heading_anchors(path):
    """GitHub's anchors of a Markdown file's headings."""
    anchors = set()
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)  # not code comments
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"^[a-z]+://", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
            broken.append(target)
    assert not broken, f"{doc.name} has broken links: {broken}"
