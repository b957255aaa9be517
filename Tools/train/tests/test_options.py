"""Every command-line option of the tools under Tools/ says what it does in --help."""
from __future__ import annotations

import ast
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2]


def options_without_help(path: Path, root: Path = TOOLS) -> list[str]:
    """"FILE:LINE NAMES" for each `add_argument` call in `path` that gives no help text."""
    missing = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument" \
                and not any(k.arg == "help" for k in node.keywords):
            names = [a.value for a in node.args if isinstance(a, ast.Constant)]
            # A name built at run time (an f-string) is reported by its line alone.
            missing.append(f"{path.relative_to(root)}:{node.lineno} {' '.join(names) or '(computed name)'}")
    return missing


def tool_sources() -> list[Path]:
    return sorted(p for p in TOOLS.rglob("*.py")
                  if not {"tests", "runs", "__pycache__"} & set(p.relative_to(TOOLS).parts))


def test_every_option_has_help_text():
    sources = tool_sources()
    assert {"train.py", "export.py", "evaluate.py", "speed.py"} <= {p.name for p in sources}
    missing = [m for p in sources for m in options_without_help(p)]
    assert not missing, "options without help text:\n" + "\n".join(missing)


def test_the_check_finds_an_option_without_help(tmp_path):
    (tmp_path / "tool.py").write_text('import argparse\np = argparse.ArgumentParser()\n'
                                      'p.add_argument("--fine", help="says what it does")\n'
                                      'p.add_argument("--bare", type=int)\n'
                                      'for f in ("x",):\n    p.add_argument(f"--{f}")\n')
    assert options_without_help(tmp_path / "tool.py", tmp_path) == ["tool.py:4 --bare", "tool.py:6 (computed name)"]
