"""The package's layers: every import (at module level or inside a function) points down
the stack below or stays in its own package, and no chain of imports comes back to where
it started. Read with `ast`, so nothing is imported."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "imgcls_cli"

# Top to bottom: a module may import its own layer and those below it, never above.
LAYERS = [
    {"__main__", "cli"},  # the Typer app; imported by nothing
    {"api"},  # the Python API: the commands as functions
    {"commands", "serve"},  # one module per subcommand; serve's HTTP app
    {"engine"},  # devices, the training loop, batch-norm statistics, logs
    {"report"},  # metrics and plots
    {"models"},  # the registry, CNNs, backbones, weights
    {"data"},  # sources, the one decoder, the tf.data pipeline
    {"augment"},  # the augmentation policy and layers
    {"rundir"},  # the run directory: layout, files, loading
    {"export"},  # other formats' writers and runtimes
    {"options"},  # flat option names (CLI flags, API keywords) ↔ configs
    {"config"},  # the options' schema
    {"backend"},  # TensorFlow's quiet import, versions, the cluster task
    {"errors", "reporting", ""},  # "": the package's __init__ (its version)
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports: `from a.b import c` is a.b.c when that is a
    module, else a.b; relative imports resolved against name's package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            elif node.module == "imgcls_cli" or (node.module or "").startswith("imgcls_cli."):
                module = node.module.removeprefix("imgcls_cli").removeprefix(".")
            else:
                continue
            for alias in node.names:
                child = f"{module}.{alias.name}" if module else alias.name
                targets.append(child if child in known else module)
        elif isinstance(node, ast.Import):
            targets = [
                a.name.removeprefix("imgcls_cli").removeprefix(".")
                for a in node.names
                if a.name == "imgcls_cli" or a.name.startswith("imgcls_cli.")
            ]
        found.update(t for t in targets if t in known and t != name)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def layer(name: str) -> str:
    return name.split(".")[0]


def test_every_module_belongs_to_a_layer(graph):
    assert sorted({layer(name) for name in graph} - set(RANK)) == []


def test_no_module_imports_a_layer_above_its_own(graph):
    upward = [
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if layer(target) != layer(name) and RANK[layer(target)] < RANK[layer(name)]
    ]
    assert upward == []


def test_no_chain_of_imports_comes_back_to_its_start(graph):
    cycles, state = [], {}

    def visit(name: str, stack: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_no_command_imports_another(graph):
    """A command module that another command imports is a library in the wrong room:
    what two commands share lives in a layer below them."""
    borrowed = [
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.startswith("commands.")
        for target in targets
        if target.startswith("commands.")
    ]
    assert borrowed == []


def test_the_package_root_holds_few_modules_and_the_layers_as_packages():
    root_modules = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(root_modules) <= 8, root_modules
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == {name for names in LAYERS for name in names} - set(root_modules) - {""}


def test_the_walk_sees_function_level_imports_and_would_catch_an_upward_one(tmp_path):
    """The checks above are only as good as the walk: a lazy import inside a function
    counts, and a planted upward import is reported."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "def later():\n    from imgcls_cli.commands import train\n    from ..cli import app\n"
    )
    known = {"commands", "commands.train", "cli", "cli.app", "data", "data.planted"}
    assert imports_of("data.planted", planted, known) == {"commands.train", "cli.app"}
