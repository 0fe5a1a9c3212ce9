"""Regenerate ``math_verify_cases.json`` from a checkout of huggingface/Math-Verify.

    python tests/data/extract_math_verify_cases.py GIT_DIR [COMMIT]

Reads the parametrized equivalence tests in ``tests/`` at COMMIT (default HEAD) with ``ast``
(nothing of them runs) and keeps the cases that use Math-Verify's default comparison options:
``float_rounding=6``, ``strict=True``, ``allow_set_relation_comp=False``. Each case keeps the
extraction targets its test used (``match_types``) for reference.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

FILES = ["tests/test_all.py", "tests/test_boxed.py", "tests/test_numina_cases.py", "tests/test_open_thoughts.py",
         "tests/test_strict.py", "tests/test_yujianll.py"]
DEFAULTS = {"precision": 6, "strict": True, "allow_set_relation_comp": False}


def _call_options(fn: ast.FunctionDef) -> tuple[dict, str] | None:
    """Keyword options of the compare call in a test body, and how the test compares."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "compare_strings":
            opts = {"match_types": ["latex", "expr"]}
            for kw in node.keywords:
                opts[kw.arg] = kw.value.id if isinstance(kw.value, ast.Name) else ast.literal_eval(kw.value)
            return opts, "compare_strings"
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "verify":
            return {"match_types": ["parse-defaults"]}, "parse+verify"
    return None


def cases_from(source: str, path: str) -> list[dict]:
    out = []
    for fn in ast.parse(source).body:
        if not isinstance(fn, ast.FunctionDef) or not fn.decorator_list:
            continue
        found = _call_options(fn)
        if found is None:
            continue
        opts, how = found
        if any(k in opts and not isinstance(opts[k], str) and opts[k] != d for k, d in DEFAULTS.items()):
            continue  # the whole test uses a non-default comparison option
        for deco in fn.decorator_list:
            if not (isinstance(deco, ast.Call) and getattr(deco.func, "attr", None) == "parametrize"):
                continue
            names = [n.strip() for n in ast.literal_eval(deco.args[0]).split(",")]
            for row in ast.literal_eval(deco.args[1]):
                case = dict(zip(names, row))
                options = {k: (case[v] if isinstance(v, str) and v in case else v) for k, v in opts.items()}
                if any(options.get(k, d) != d for k, d in DEFAULTS.items()):
                    continue  # a non-default comparison option
                expected = case.get("expected", case.get("result"))
                out.append({"file": path, "test": fn.name, "gold": case["gold"], "pred": case["pred"],
                            "expected": bool(expected), "match_types": options["match_types"], "via": how})
    return out


def main() -> None:
    git_dir, commit = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "HEAD"
    commit = subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", commit], capture_output=True, text=True,
                            check=True).stdout.strip()
    cases = []
    for path in FILES:
        src = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], capture_output=True,
                             text=True, check=True).stdout
        cases += cases_from(src, path)
    for i, case in enumerate(cases):
        case["id"] = i
    data = {"source": "https://github.com/huggingface/Math-Verify", "commit": commit,
            "selection": "parametrized equivalence cases with default comparison options "
                         "(float_rounding=6, strict=True, allow_set_relation_comp=False)",
            "generated_by": "tests/data/extract_math_verify_cases.py", "cases": cases}
    out = Path(__file__).with_name("math_verify_cases.json")
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(cases)} cases from {commit} -> {out}")


if __name__ == "__main__":
    main()
