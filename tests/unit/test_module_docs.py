"""Every module's DOCUMENTATION, EXAMPLES and RETURN parse, and the options match the code."""

import ast
import glob
import os

import pytest
import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
MODULES = sorted(glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")))


def docs(path):
    found = {}
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            found[node.targets[0].id] = node.value.value
    return found


def spec_options(path):
    """The argument_spec keys main() passes to AnsibleModule; for a module that is an action plugin (its file only
    documents it), the task options the action takes (its _VALID_ARGS)."""
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.keyword) and node.arg == "argument_spec":
            return sorted(k.arg for k in node.value.keywords)
    action = os.path.join(ROOT, "plugins", "action", os.path.basename(path))
    if os.path.exists(action):
        for node in ast.walk(ast.parse(open(action).read())):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_VALID_ARGS":
                return sorted(element.value for element in node.value.args[0].elts)
    return []


@pytest.mark.parametrize("path", MODULES, ids=os.path.basename)
def test_docs_parse_as_yaml(path):
    found = docs(path)
    assert set(found) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    for text in found.values():
        yaml.safe_load(text)


@pytest.mark.parametrize("path", MODULES, ids=os.path.basename)
def test_documented_options_are_the_real_ones(path):
    documented = sorted(yaml.safe_load(docs(path)["DOCUMENTATION"]).get("options") or {})
    assert documented == spec_options(path)
