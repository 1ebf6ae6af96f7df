"""The package's shape, kept by CI: no import cycle, layers import only downward, no module over ~500 lines and no
function over ~80 lines (code, not docstring) unless it is listed here with the reason."""

import ast
from pathlib import Path

import hf_diverse

PACKAGE = Path(hf_diverse.__file__).parent
# bottom to top; a module may import its own layer or lower ones only
LAYERS = [
    {"errors", "utils"},
    {"provenance", "lineage", "textviews", "models", "io", "data", "tokens", "clustering", "quota"},
    {"facility"},
    {"metrics"},
    {"scorers"},
    {"scoring"},
    {"embeddings"},
    {"selection"},
    {"plots"},
    {"report"},
    {"card", "card_sections", "publish", "hub", "train"},
    {"compare"},
    {"cli"},
]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# function -> why it is longer (none today)
LONG_FUNCTIONS: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("hf_diverse", *parts))
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """hf_diverse modules imported by `name` (module and function level), relative imports resolved."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{a.name}" for a in node.names] + [prefix]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != "hf_diverse" and target != name:
                found.add(target)
    return found


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items() if name != "hf_diverse"}


def _layer(name: str) -> int:
    top = name.split(".")[1]
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def test_no_import_cycle():
    graph = _graph()
    # a package's __init__ importing its own submodules is not a cycle of the code; drop those edges
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_layers_import_only_downward():
    upward = [
        (module, target)
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward, upward


def test_module_and_function_sizes():
    too_long = []
    for name, path in _modules().items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append((name, len(text.splitlines())))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                doc_lines = len(doc.splitlines()) + 1 if doc else 0
                length = node.end_lineno - node.lineno + 1 - doc_lines
                key = f"{name}.{node.name}"
                if length > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS:
                    too_long.append((key, length))
    assert not too_long, too_long
