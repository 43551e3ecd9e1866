"""The packages' import graph: no cycles, the store below the assistant, and a question's
path from route to answer going down one layer at a time."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("assistant", "vectorstore")

# A question's path, top to bottom: each module imports only from layers below its own.
ANSWER_PATH = [
    {"assistant.http.answer_routes", "assistant.http.openai_routes"},
    {"assistant.http.schemas", "assistant.http.context", "assistant.http.starters"},
    {"assistant.http.input_checks", "assistant.runtime", "assistant.feedback.ratings"},
    {"assistant.answering.chain"},
    {
        "assistant.answering.condensing",
        "assistant.answering.retrieval",
        "assistant.answering.selection",
        "assistant.answering.generation",
    },
    {"assistant.answering.citations"},
    {"assistant.answering.decision", "assistant.answering.index"},
    {"assistant.answering.answer_types", "assistant.answering.lexical", "assistant.models", "assistant.http.guards"},
    {"assistant.answering.prompts", "assistant.config", "assistant"},
    {"vectorstore.ingest"},
    {"vectorstore.store"},
    {"vectorstore.chunking", "vectorstore.embeddings"},
    {"vectorstore.documents", "vectorstore.language", "vectorstore"},
]


def module_name(path: Path) -> str:
    """The dotted name of a module file of the project."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports (at any depth of its code)."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            imported: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    base = node.module
                    for alias in node.names:
                        # `from assistant.http import app` imports a module, not the package.
                        candidate = f"{base}.{alias.name}"
                        imported.add(candidate if (ROOT / f"{candidate.replace('.', '/')}.py").exists() else base)
                elif isinstance(node, ast.Import):
                    imported.update(alias.name for alias in node.names)
            name = module_name(path)
            graph[name] = {m for m in imported if m.split(".")[0] in PACKAGES and m != name}
    return graph


def test_the_import_graph_has_no_cycles() -> None:
    graph = import_graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for dependency in sorted(graph.get(module, ())):
            visit(dependency, [*path, module])
        done.add(module)

    for module in graph:
        visit(module, [])
    assert len(done) == len(graph) > 30


def test_the_store_never_imports_the_assistant() -> None:
    graph = import_graph()
    for module, imported in graph.items():
        if module.split(".")[0] == "vectorstore":
            assert not {m for m in imported if m.split(".")[0] == "assistant"}, module


def test_a_question_goes_down_one_layer_at_a_time() -> None:
    graph = import_graph()
    layer_of = {module: depth for depth, layer in enumerate(ANSWER_PATH) for module in layer}
    assert set(layer_of) <= set(graph), set(layer_of) - set(graph)
    for module, depth in layer_of.items():
        upward = sorted(m for m in graph[module] if m in layer_of and layer_of[m] <= depth)
        assert not upward, f"{module} (layer {depth}) imports {upward}, not below it"


# The layers of ``assistant``, bottom to top. A module imports only from its own package
# and from the layers below; two packages on one floor never import each other.
LAYERS = [
    {"assistant", "assistant.config", "assistant.models"},
    {"assistant.answering", "assistant.feedback"},
    {"assistant.runtime"},
    {"assistant.evaluation", "assistant.http"},
    {"assistant.cli"},
]


def layer_of(module: str) -> tuple[str, int]:
    """The unit a module belongs to (its subpackage, or itself) and that unit's floor."""
    for unit in sorted((u for layer in LAYERS for u in layer), key=len, reverse=True):
        if module == unit or (unit != "assistant" and module.startswith(unit + ".")):
            return unit, next(n for n, layer in enumerate(LAYERS) if unit in layer)
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of an ``assistant`` module from its own floor (another package) or above."""
    found = []
    for module in sorted(m for m in graph if m.split(".")[0] == "assistant"):
        unit, floor = layer_of(module)
        for imported in sorted(m for m in graph[module] if m.split(".")[0] == "assistant"):
            other, other_floor = layer_of(imported)
            if other != unit and other_floor >= floor:
                found.append(f"{module} ({unit}, floor {floor}) imports {imported} ({other}, floor {other_floor})")
    return found


def test_every_module_of_the_assistant_is_in_a_layer_and_imports_only_below_it() -> None:
    graph = import_graph()
    assert len([m for m in graph if m.split(".")[0] == "assistant"]) > 30
    assert upward_imports(graph) == []


def test_the_layer_check_catches_an_upward_or_sideways_import() -> None:
    assert upward_imports({"assistant.answering.chain": {"assistant.http.app"}})
    assert upward_imports({"assistant.answering.chain": {"assistant.feedback.ratings"}})
    assert upward_imports({"assistant.http.app": {"assistant.evaluation.scoring"}})
    assert upward_imports({"assistant.runtime": {"assistant.cli"}})
    assert not upward_imports({"assistant.http.app": {"assistant.answering.chain", "assistant.http.guards"}})
