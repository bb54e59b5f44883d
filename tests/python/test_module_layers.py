"""No import cycle between the modules of any crate (issue 15: "no import cycle is left in any
crate, and no import runs from a lower module up to a higher one").

A module's imports are the top-level modules of its own crate it names through `crate::`
(`use crate::{a, b::C}`, `crate::a::f()`), outside comments and `#[cfg(test)]` code. The
modules and those imports must form a DAG: then the modules have an order in which every
import points down. A cycle is reported with the imports that make it.
"""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRATES = sorted(p for p in (ROOT / "crates").iterdir() if (p / "src").is_dir())


def _strip(src: str) -> str:
    # Test code may reach anywhere; it is not part of the layering.
    src = re.split(r"#\[cfg\(test\)\]", src)[0]
    return "\n".join(line for line in src.split("\n") if not line.strip().startswith("//"))


def _names_in_group(group: str) -> set[str]:
    """Top-level names of a `crate::{...}` use group (nested groups included)."""
    names, depth, token = set(), 0, ""
    for ch in group + ",":
        if ch == "{":
            if depth == 0:
                names.add(token.strip().split("::")[0])
            depth += 1
            token = ""
        elif ch == "}":
            depth -= 1
            token = ""
        elif ch == "," and depth == 0:
            if token.strip():
                names.add(token.strip().split("::")[0].split(" as ")[0].strip())
            token = ""
        elif depth == 0:
            token += ch
    return {n for n in names if n}


def module_graph(src_dir: pathlib.Path) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in src_dir.rglob("*.rs"):
        parts = path.relative_to(src_dir).with_suffix("").parts
        top = parts[0]
        if top in ("lib", "main") or (len(parts) == 1 and top == "mod"):
            continue
        src = _strip(path.read_text())
        deps: set[str] = set()
        for m in re.finditer(r"crate::\{(.*?)\};", src, re.S):
            deps |= _names_in_group(m.group(1))
        deps |= set(re.findall(r"crate::([a-z_][a-z0-9_]*)", src))
        deps.discard(top)
        graph.setdefault(top, set()).update(deps)
    for deps in graph.values():
        deps &= set(graph)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert _names_in_group("a, b::{C, d::E}, f::g as h") == {"a", "b", "f"}


def test_no_module_import_cycle_in_any_crate():
    assert len(CRATES) >= 4, CRATES
    found = {}
    for crate in CRATES:
        graph = module_graph(crate / "src")
        for comp in cycles(graph):
            found[crate.name] = {m: sorted(graph[m] & set(comp)) for m in comp}
    assert found == {}, f"import cycles (module -> the modules of its cycle it imports): {found}"
