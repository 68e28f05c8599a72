"""Imports flow one way (docs/layout.md): a module imports only from lower layers.

The layers, lowest first; units in one layer do not import each other. A new module
either fits a layer here or docs/layout.md and this list change together.
"""
import ast
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAYERS = (
    ("hgpipe.__init__", "hgpipe.joints", "hgpipe.atomic", "hgpipe.limits",
     "hgpipe.native_stderr", "hgpipe.cocotools"),
    ("hgpipe.tf_compat", "hgpipe.config", "hgpipe.codec", "hgpipe.draw", "hgpipe.lock",
     "hgpipe.staging"),
    ("hgpipe.data", "hgpipe.model"),
    ("hgpipe.eval", "hgpipe.interop"),
    ("hgpipe.train",),
    ("hgpipe.api",),
    ("hgpipe.bench",),
    ("hgpipe.cli",),
    ("hgpipe.__main__",),
)
LAYER = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def unit_of(module):
    """hgpipe.data.readers.common -> hgpipe.data; hgpipe -> hgpipe.__init__."""
    parts = module.split(".")
    return "hgpipe.__init__" if len(parts) == 1 else ".".join(parts[:2])


def package_imports():
    """(importing module, imported hgpipe module) for every import in the package."""
    found = []
    for root, _dirs, files in os.walk(os.path.join(REPO_ROOT, "hgpipe")):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            module = os.path.relpath(path, REPO_ROOT)[:-3].replace(os.sep, ".")
            with open(path) as handle:
                tree = ast.parse(handle.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hgpipe"):
                    if node.module == "hgpipe":  # from hgpipe import codec, __version__
                        found += [(module, "hgpipe." + alias.name) for alias in node.names]
                    else:
                        found.append((module, node.module))
                elif isinstance(node, ast.Import):
                    found += [(module, alias.name) for alias in node.names
                              if alias.name.startswith("hgpipe")]
    return found


def test_every_unit_has_a_layer():
    units = {unit_of(module) for pair in package_imports() for module in pair}
    units.discard("hgpipe.__version__")
    assert units <= set(LAYER), sorted(units - set(LAYER))


def test_imports_flow_one_way():
    wrong = []
    for module, imported in package_imports():
        here, there = unit_of(module), unit_of(imported)
        if there == "hgpipe.__version__":
            there = "hgpipe.__init__"
        if here != there and not LAYER[there] < LAYER[here]:
            wrong.append("%s imports %s" % (module, imported))
    assert not wrong, wrong


def _readme_layout():
    with open(os.path.join(REPO_ROOT, "docs", "layout.md")) as handle:
        return handle.read()


def test_readme_layout_names_every_module():
    """Every top-level module by path, every subpackage by path and each of its modules
    by name (readers/ as a whole)."""
    layout = _readme_layout()
    missing = []
    for entry in sorted(os.listdir(os.path.join(REPO_ROOT, "hgpipe"))):
        path = os.path.join(REPO_ROOT, "hgpipe", entry)
        if entry.endswith(".py") and entry not in ("__init__.py", "__main__.py"):
            if "hgpipe/%s" % entry not in layout:
                missing.append(entry)
        elif os.path.isfile(os.path.join(path, "__init__.py")):
            if "hgpipe/%s/" % entry not in layout:
                missing.append(entry + "/")
            for name in sorted(os.listdir(path)):
                stem = name[:-3]
                if name.endswith(".py") and name != "__init__.py":
                    named = stem in layout or (stem.endswith("_cmd") and "*_cmd.py" in layout)
                    if not named:
                        missing.append("%s/%s" % (entry, name))
                elif os.path.isdir(os.path.join(path, name)) and name != "__pycache__":
                    if name + "/" not in layout:
                        missing.append("%s/%s/" % (entry, name))
    assert not missing, missing
