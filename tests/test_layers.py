"""The packages' import graph: no cycles, the store below the assistant, and a question's
path from route to answer going down one layer at a time."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("assistant", "vectorstore")

# A question's path, top to bottom: each module imports only from layers below its own.
ANSWER_PATH = [
    {"assistant.routes_answers", "assistant.routes_openai"},
    {"assistant.api_models", "assistant.request_context", "assistant.starters"},
    {"assistant.checks", "assistant.runtime", "assistant.feedback"},
    {"assistant.chain"},
    {"assistant.condensing", "assistant.retrieval", "assistant.selection", "assistant.generation"},
    {"assistant.citations"},
    {"assistant.decision", "assistant.index"},
    {"assistant.answer_types", "assistant.lexical", "assistant.models", "assistant.guards"},
    {"assistant.prompts", "assistant.config", "assistant"},
    {"vectorstore.ingest"},
    {"vectorstore.store"},
    {"vectorstore.chunking", "vectorstore.embeddings"},
    {"vectorstore.documents", "vectorstore.language", "vectorstore"},
]


def import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports (at any depth of its code)."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            imported: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    base = node.module
                    for alias in node.names:
                        # `from assistant import generation` imports a module, not the package.
                        candidate = f"{base}.{alias.name}"
                        imported.add(candidate if (ROOT / f"{candidate.replace('.', '/')}.py").exists() else base)
                elif isinstance(node, ast.Import):
                    imported.update(alias.name for alias in node.names)
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
