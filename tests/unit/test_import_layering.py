"""Import layering of the project's own packages, read from the source with `ast` (nothing is imported).

Every import counts: at module level, inside functions (lazy ones) and under `if TYPE_CHECKING:`,
since each is a dependency a reader has to follow. Importing `a.b.c` runs the `__init__` of `a` and
`a.b` too, but that is how packages work, not a dependency of the importing module's own, so the
graph has one edge per import, to the module named (or, for `from a.b import name`, to `a.b.name`
when that is a module, else to `a.b`).

- No module of `upscale_cli`, `local` or `upscaler` takes part in an import cycle.
- Between the `upscale_cli` and `local` packages, imports run one way: the operator command may
  import the local stack (lazily, for `--local`); the local stack never imports the command.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"upscale_cli": ROOT / "upscale_cli", "local": ROOT / "local", "upscaler": ROOT / "layers/common/upscaler"}


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    modules: dict[str, Path] = {}
    for package, directory in PACKAGES.items():
        for path in sorted(directory.rglob("*.py")):
            parts = [package, *path.relative_to(directory).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `module` imports, anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in known else source)
    return {name for name in found if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {module: imported_modules(module, path, set(modules)) for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                lowlink[node] = min(lowlink[node], lowlink[target])
            elif target in on_stack:
                lowlink[node] = min(lowlink[node], index[target])
        if lowlink[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def top_package(module: str) -> str:
    return module.split(".", 1)[0]


def test_the_graph_sees_every_package_and_its_imports() -> None:
    graph = import_graph()
    assert {top_package(module) for module in graph} == set(PACKAGES)
    assert "upscale_cli.target" in graph["upscale_cli.main"]
    assert "upscaler.jobs" in graph["upscale_cli.jobs_query"]
    assert "local.runware_emulator" in graph["local.stack"], "`from package import name` names the package"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_takes_part_in_an_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(component) for component in found)


def imports_across(importer: str, imported: Callable[[str], bool]) -> list[str]:
    """Every import from a module of the package `importer` of a module `imported` accepts."""
    return sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if top_package(module) == importer
        for target in targets
        if imported(top_package(target))
    )


def test_imports_between_upscale_cli_and_local_run_one_way() -> None:
    local_to_cli = imports_across("local", lambda package: package == "upscale_cli")
    assert not local_to_cli, "the local stack imports the operator command: " + ", ".join(local_to_cli)


def test_the_library_imports_neither_the_command_nor_the_local_stack() -> None:
    upward = imports_across("upscaler", lambda package: package != "upscaler")
    assert not upward, "the library imports what is built on it: " + ", ".join(upward)


def test_upscale_cli_and_local_never_import_each_other_both_ways() -> None:
    graph = import_graph()
    directions = {
        (top_package(module), top_package(target))
        for module, targets in graph.items()
        for target in targets
        if {top_package(module), top_package(target)} == {"upscale_cli", "local"}
    }
    assert len(directions) <= 1, f"imports run both ways between upscale_cli and local: {sorted(directions)}"
