"""The package's imports run one way: every module belongs to a layer, a
module imports only its own layer or a lower-ranked one, and no import
circle exists. Imports are read with ``ast`` (every import, inside
functions too; none are executed)."""

import ast
import pathlib

import pytest

PACKAGE = "speechbrain_ee"
ROOT = pathlib.Path(__file__).resolve().parents[1] / PACKAGE

#: layer -> rank. A module may import its own layer and any layer of a lower
#: rank; layers of equal rank ignore each other (nnet and data stand apart).
LAYERS = {
    "base": -1,         # the shared option checks: nothing of the package
    "nnet": 0,          # the networks: nothing of the package but nnet itself
    "data": 0,          # corpora, manifests, audio
    "runtime": 0,       # the torch-free ONNX runtime: nothing of the package but itself
    "utils": 0,         # checkpoints, time budget, tokenizers, plotting
    "losses": 1,
    "features": 1,
    "root": 1.5,        # speechbrain_ee/__init__.py: the version and the core classes
    "decoding": 2,      # exit posteriors -> text
    "selection": 3,     # exit selectors, their measures, the offline sweep (never inference)
    "inference": 4,     # dynamic-depth runs, the EarlyExitASR interface, text decoders
    "brains": 5,        # training and test stages
    "recipe": 6,        # the training flow and the export
    "testing": 7,       # test support (tiny random models): nothing in the library imports it
    "cli": 8,           # the sbee commands: nothing in the library imports them
    "main": 9,          # speechbrain_ee/__main__.py (python -m speechbrain_ee = sbee)
}

#: name under the package (its first part, or a longer dotted one for a
#: module that sits apart from its package) -> layer; a module not listed
#: here fails the test: classify it.
MODULE_LAYERS = {
    "nnet": "nnet", "data": "data", "runtime": "runtime",
    "checkpoints": "utils", "time_budget": "utils", "machine": "utils", "tokenizers": "utils", "plotting": "utils",
    "warm_start": "utils", "checks": "base",
    "losses": "losses", "features": "features",
    "decoding": "decoding", "aed_decoding": "decoding",
    "selection": "selection", "inference": "inference", "brains": "brains",
    "recipe": "recipe", "training": "recipe", "training_checks": "recipe", "export": "recipe",
    "selection.robust": "cli",  # the degraded-audio measurement command
    "testing": "testing", "cli": "cli", "export.cli": "cli", "__init__": "root", "__main__": "main",
}


def module_name(path):
    """Dotted module name of a file of the package."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module):
    """The layer of a dotted module name of the package: that of the longest
    key of :data:`MODULE_LAYERS` it starts with."""
    parts = module.split(".")[1:] or ["__init__"]
    for end in range(len(parts), 0, -1):
        key = ".".join(parts[:end])
        if key in MODULE_LAYERS:
            return MODULE_LAYERS[key]
    pytest.fail(f"{module}: not classified; add {parts[0]!r} to MODULE_LAYERS in {__file__}")


def package_imports(path, module):
    """Modules of the package that ``path`` imports (absolute and relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module.split(".")
                is_package = path.name == "__init__.py"
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == PACKAGE:
                found.add(target)
    return found


def import_graph():
    """``{module: set of imported package modules}`` of every module of the package."""
    graph = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = module_name(path)
        graph[name] = package_imports(path, name)
    return graph


def resolve(target, graph):
    """The module a name refers to: itself, or the module a ``from X import
    name`` reaches when ``X.name`` is not a module (then ``X``)."""
    while target not in graph and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def violations(graph):
    """``"module (layer) imports target (layer)"`` for each import against the layers."""
    wrong = []
    for module, targets in graph.items():
        layer = layer_of(module)
        for target in sorted(targets):
            other = layer_of(target)
            if other != layer and LAYERS[other] >= LAYERS[layer]:
                wrong.append(f"{module} ({layer}) imports {target} ({other})")
    return wrong


def circles(graph):
    """Every import circle found by a depth-first walk, as ``a -> b -> a``."""
    graph = {m: {resolve(t, graph) for t in ts} for m, ts in graph.items()}
    done, path, found = set(), [], []

    def visit(node):
        if node in path:
            found.append(" -> ".join(path[path.index(node):] + [node]))
            return
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt != node:
                visit(nxt)
        path.pop()
        done.add(node)

    for module in sorted(graph):
        visit(module)
    return found


def test_every_import_goes_down_the_layers():
    wrong = violations(import_graph())
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_circle():
    found = circles(import_graph())
    assert not found, "import circles:\n" + "\n".join(found)


def test_the_checker_reports_wrong_directions_and_circles(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from speechbrain_ee.inference.dynamic import run_dynamic\n"
                      "def f():\n    import speechbrain_ee.cli.main\n    from .measures import x\n")
    found = package_imports(source, "speechbrain_ee.selection.m")
    assert found == {"speechbrain_ee.inference.dynamic", "speechbrain_ee.cli.main", "speechbrain_ee.selection.measures"}
    wrong = violations({"speechbrain_ee.selection.m": found, "speechbrain_ee.nnet.x": {"speechbrain_ee.data.audio"}})
    assert wrong == [
        "speechbrain_ee.selection.m (selection) imports speechbrain_ee.cli.main (cli)",
        "speechbrain_ee.selection.m (selection) imports speechbrain_ee.inference.dynamic (inference)",
        "speechbrain_ee.nnet.x (nnet) imports speechbrain_ee.data.audio (data)",
    ]
    assert layer_of("speechbrain_ee.export.cli") == "cli" and layer_of("speechbrain_ee.export.onnx") == "recipe"
    assert circles({"speechbrain_ee.a": {"speechbrain_ee.b.f"}, "speechbrain_ee.b": {"speechbrain_ee.a"}}) == [
        "speechbrain_ee.a -> speechbrain_ee.b -> speechbrain_ee.a"]
