"""The modules of vlprune_nb import one another without a circle, counting imports inside functions too: a circle
means two modules that cannot be understood (or loaded) one without the other."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "vlprune_nb"

def imports_of(path: Path) -> set[str]:
    "The vlprune_nb modules `path` imports, anywhere in it (relative or absolute imports)."
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1 or base.startswith("vlprune_nb"):
                base = base.removeprefix("vlprune_nb").lstrip(".")
                out |= {base} if base else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("vlprune_nb.")}
    return out

def graph() -> dict[str, set[str]]:
    mods = {p.stem for p in PKG.glob("*.py") if not p.stem.startswith("_")}
    return {m: {i.split(".")[0] for i in imports_of(PKG / f"{m}.py")} & mods - {m} for m in mods}

def find_circle(g: dict[str, set[str]]) -> list[str] | None:
    "A circle of `g` as a list of modules (first = last), or None."
    state = {}
    def visit(m, path):
        state[m] = "open"
        for n in sorted(g[m]):
            if state.get(n) == "open": return path[path.index(n):] + [n]
            if n not in state and (c := visit(n, path + [n])): return c
        state[m] = "done"
    for m in sorted(g):
        if m not in state and (c := visit(m, [m])): return c
    return None

def test_the_checker_finds_a_circle():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None

def test_no_circle_in_vlprune_nb():
    g = graph()
    assert {"families", "data", "pruning", "structured", "tasks"} <= set(g)
    assert (c := find_circle(g)) is None, " → ".join(c)
