"""No Jinja expression of 80 characters or more in the roles and playbooks: logic of that size belongs in Python (an action,
a module, a filter, module_utils), where it is tested."""

import glob
import os
import re

import pytest
import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
LIMIT = 79  # 80 characters or more is refused
CONDITIONS = ("when", "changed_when", "failed_when", "that", "until")
FILES = sorted(os.path.relpath(path, ROOT) for pattern in ("roles/**/*.yml", "playbooks/**/*.yml")
               for path in glob.glob(os.path.join(ROOT, pattern), recursive=True))


def expressions(node):
    """Every Jinja expression in a YAML document: the conditions, and each {{ }} or {% %} in a string."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CONDITIONS:
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str):
                        yield " ".join(item.split())
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)
    elif isinstance(node, str):
        for match in re.finditer(r"\{\{(.*?)\}\}|\{%(.*?)%\}", node, re.S):
            yield " ".join((match.group(1) or match.group(2) or "").split())


@pytest.mark.parametrize("path", FILES)
def test_no_long_jinja(path):
    with open(os.path.join(ROOT, path)) as handle:
        document = yaml.safe_load(handle)
    long = [text for text in expressions(document) if len(text) > LIMIT]
    assert long == []
