#!/usr/bin/env python3
"""Write each role's README.md from its meta/argument_specs.yml, so the variable tables
can never drift from what the roles accept. `--check` exits 1 when a README is stale.

Usage: python tests/tools/role_readmes.py [--check]
"""

import glob
import os
import re
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MARKUP = [(re.compile(r"[CIV]\(([^)]*)\)"), r"`\1`"), (re.compile(r"O\(([^)=]*)(=[^)]*)?\)"), r"`\1\2`"),
          (re.compile(r"M\(([^)]*)\)"), r"`\1`")]


def text(value):
    """Ansible doc markup to Markdown, one line, pipes escaped for tables."""
    value = " ".join(value) if isinstance(value, list) else str(value or "")
    for pattern, repl in MARKUP:
        value = pattern.sub(repl, value)
    return " ".join(value.split()).replace("|", "\\|")


def default(spec):
    if "default" not in spec:
        return "required" if spec.get("required") else ""
    value = spec["default"]
    if isinstance(value, str):
        shown = '""' if value == "" else " ".join(value.split())
    else:
        shown = yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip()
        shown = shown[:-4].strip() if shown.endswith("...") else shown
    # A long default, or one computed from the role's private variables, means nothing in a table.
    if len(shown) > 70 or re.search(r"\{\{.*\b_\w", shown):
        return "see `defaults/main.yml`"
    return "`%s`" % shown.replace("|", "\\|")


def table(options, heading="Variable"):
    lines = ["| %s | Type | Default | Description |" % heading, "|---|---|---|---|"]
    for name, spec in options.items():
        kind = spec.get("type", "str") + ("/" + spec["elements"] if spec.get("elements") else "")
        if spec.get("choices"):
            kind += " (%s)" % ", ".join(str(c) for c in spec["choices"])
        lines.append("| `%s` | %s | %s | %s |" % (name, kind, default(spec), text(spec.get("description"))))
    return lines


def render(role):
    with open(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")) as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    main = specs["main"]
    out = ["# Role `elms.queue_workers.%s`" % role, "",
           "<!-- Written by tests/tools/role_readmes.py from meta/argument_specs.yml: edit those, then run it. -->", "",
           text(main.get("short_description")) + ".", "", text(main.get("description")), "",
           "Use it as `elms.queue_workers.%s`; see the collection README for playbooks and examples." % role]
    for entry in ["main"] + sorted(name for name in specs if name != "main"):
        spec = specs[entry]
        out += ["", "## Entry point `%s`" % entry, ""]
        if entry != "main":
            out += ["%s. %s" % (text(spec.get("short_description")), text(spec.get("description"))), "",
                    "`include_role: {name: elms.queue_workers.%s, tasks_from: %s.yml}`" % (role, entry), ""]
        out += table(spec.get("options") or {})
        for name, option in (spec.get("options") or {}).items():
            if entry == "main" and option.get("options"):
                out += ["", "### Keys of each `%s` entry" % name, ""] + table(option["options"], "Key")
    return "\n".join(out) + "\n"


def main():
    stale = []
    for path in sorted(glob.glob(os.path.join(ROOT, "roles", "*", "meta", "argument_specs.yml"))):
        role = path.split(os.sep)[-3]
        readme = os.path.join(ROOT, "roles", role, "README.md")
        wanted = render(role)
        current = open(readme).read() if os.path.exists(readme) else None
        if current != wanted:
            stale.append(readme)
            if "--check" not in sys.argv:
                with open(readme, "w") as handle:
                    handle.write(wanted)
    if stale and "--check" in sys.argv:
        print("stale (run python tests/tools/role_readmes.py): " + ", ".join(os.path.relpath(p, ROOT) for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
