"""Lint hgpipe's TensorFlow usage against the real TF 1.15.0 ``tf.compat.v1`` API.

The Ascend target runs TF 1.15.0, which nobody runs day to day; a symbol added in TF 2.x
(or removed from it) would only fail there.  This test parses every module under
``hgpipe/``, finds the names bound to ``import_tf()``, collects every attribute chain used
on them (``tf.nn.conv2d``, ``tf.GraphKeys.UPDATE_OPS``, ``getattr(tf, "x")``) and checks
each against ``../shared/tf115_v1_api.txt`` (one ``tf.X.Y`` per line, meaning
``tf.compat.v1.X.Y``; classes are listed without their members).  It also resolves every
chain on the TensorFlow that runs the test, so the TF 2.x lane checks 2.x too.

Keras, ``tf.layers``, ``tf.contrib`` and ``tf.estimator`` are refused even where 1.15 has
them: they are gone or broken in TF 2.16+ ``compat.v1`` (Keras 3).  Modules other than
``hgpipe/tf_compat.py`` may not import ``tensorflow`` directly, except its generated
protobuf modules (``tensorflow.core.*``: message definitions, same path in 1.x and 2.x),
which the runtime check imports.
"""
import ast
import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(REPO_ROOT, "hgpipe")
API_FILE = os.path.join(os.path.dirname(REPO_ROOT), "shared", "tf115_v1_api.txt")
TF_COMPAT_MODULE = os.path.join("hgpipe", "tf_compat.py")

FORBIDDEN_NAMESPACES = ("tf.keras", "tf.layers", "tf.contrib", "tf.estimator")
# Module attributes the API listing leaves out (it lists public symbols only); present in
# compat.v1 of TF 1.15 and 2.x (the runtime check below re-verifies them).
EXTRA_SYMBOLS = frozenset(["tf.__version__"])
# Generated protobuf modules: plain message classes, importable by the same path in 1.x/2.x.
ALLOWED_TENSORFLOW_MODULES = ("tensorflow.core.",)


# ----------------------------------------------------------------------------- the lint

def load_api(path):
    """The set of ``tf.X.Y`` names listed in the API file."""
    with open(path) as handle:
        names = {line.strip() for line in handle if line.strip()}
    bad = sorted(name for name in names if not name.startswith("tf."))
    if bad:
        raise ValueError("%s: lines not of the form tf.X: %s" % (path, bad[:3]))
    return frozenset(names)


def namespaces_of(api):
    """Names that have listed children (modules): their members are all enumerated."""
    spaces = {"tf"}
    for name in api:
        parts = name.split(".")
        for end in range(2, len(parts)):
            spaces.add(".".join(parts[:end]))
    return frozenset(spaces)


def _string_constant(node):
    value = getattr(node, "value", getattr(node, "s", None))
    if type(node).__name__ in ("Constant", "Str") and isinstance(value, str):
        return value
    return None


def _import_tf_aliases(tree):
    """Local names under which ``import_tf`` itself is available in a module."""
    aliases = {"import_tf"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "import_tf":
                    aliases.add(alias.asname or alias.name)
    return aliases


def _is_import_tf_call(node, aliases):
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id in aliases
    return isinstance(func, ast.Attribute) and func.attr == "import_tf"


def tf_bound_names(tree):
    """Names bound to ``import_tf()``'s result anywhere in the module: assigned from a call
    (module or function level), or imported as ``tf`` from another hgpipe module."""
    aliases = _import_tf_aliases(tree)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hgpipe"):
            names.update(alias.asname or alias.name for alias in node.names
                         if alias.name == "tf")
            continue
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        else:
            continue
        if value is not None and _is_import_tf_call(value, aliases):
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def tf_chains(tree, tf_names):
    """Yield ``(line, 'tf.a.b')`` for each maximal attribute chain rooted at a tf name."""
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            attrs = []
            base = node
            while isinstance(base, ast.Attribute):
                attrs.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in tf_names:
                yield node.lineno, "tf." + ".".join(reversed(attrs))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "getattr" and len(node.args) >= 2
              and isinstance(node.args[0], ast.Name) and node.args[0].id in tf_names):
            member = _string_constant(node.args[1])
            if member is not None:
                yield node.lineno, "tf." + member


def check_chain(chain, api, namespaces):
    """None if ``chain`` is valid TF 1.15 compat.v1 usage, else the reason it is not."""
    for banned in FORBIDDEN_NAMESPACES:
        if chain == banned or chain.startswith(banned + "."):
            return "%s is forbidden (%s breaks on TF 2.x compat.v1 / Keras 3)" % (chain, banned)
    if chain in api or chain in EXTRA_SYMBOLS:
        return None
    parts = chain.split(".")
    for end in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in namespaces:
            # a module: its public members are all listed, so this member does not exist
            return "%s is not in the TF 1.15 compat.v1 API" % chain
        if prefix in api:
            return None  # attribute of a class/object, e.g. tf.GraphKeys.UPDATE_OPS
    return "%s is not in the TF 1.15 compat.v1 API" % chain


def tensorflow_imports(tree):
    """Yield ``(line, module)`` for each import of tensorflow or one of its submodules."""
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module]
        for module in modules:
            if module == "tensorflow" or module.startswith("tensorflow."):
                yield node.lineno, module


def lint_source(source, filename, api, allow_tensorflow_import=False):
    """Problems (``'file:line: message'``) in one module's TensorFlow usage, and its chains."""
    tree = ast.parse(source, filename)
    problems = []
    if not allow_tensorflow_import:
        for line, module in tensorflow_imports(tree):
            if not module.startswith(ALLOWED_TENSORFLOW_MODULES):
                problems.append("%s:%d: imports %s directly; use hgpipe.tf_compat.import_tf()"
                                % (filename, line, module))
    namespaces = namespaces_of(api)
    chains = sorted(set(tf_chains(tree, tf_bound_names(tree))))
    for line, chain in chains:
        reason = check_chain(chain, api, namespaces)
        if reason:
            problems.append("%s:%d: %s" % (filename, line, reason))
    return problems, [chain for _, chain in chains]


def package_modules():
    """Paths (relative to the repo root) of every .py file under hgpipe/."""
    found = []
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                found.append(os.path.relpath(os.path.join(folder, name), REPO_ROOT))
    return sorted(found)


def read_module(relpath):
    with open(os.path.join(REPO_ROOT, relpath)) as handle:
        return handle.read()


def lint_package(api):
    problems, chains_by_file = [], {}
    for relpath in package_modules():
        source = read_module(relpath)
        file_problems, chains = lint_source(
            source, relpath, api, allow_tensorflow_import=(relpath == TF_COMPAT_MODULE))
        problems.extend(file_problems)
        chains_by_file[relpath] = chains
    return problems, chains_by_file


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def api():
    if not os.path.isfile(API_FILE):
        pytest.skip("../shared/tf115_v1_api.txt is not available")
    return load_api(API_FILE)


# ----------------------------------------------------------------------------- the package

def test_package_uses_only_tf115_compat_v1_symbols(api):
    problems, chains_by_file = lint_package(api)
    assert problems == []
    # not vacuous: the model's layers were seen and their ops collected
    layer_chains = chains_by_file[os.path.join("hgpipe", "model", "layers.py")]
    assert "tf.nn.fused_batch_norm" in layer_chains
    assert "tf.GraphKeys.UPDATE_OPS" in layer_chains


def test_package_symbols_resolve_on_running_tensorflow(api):
    """Every chain the package uses exists in this interpreter's tf.compat.v1 as well, and
    every allowed direct protobuf import imports."""
    import importlib
    from hgpipe.tf_compat import import_tf
    tf = import_tf()
    _, chains_by_file = lint_package(api)
    missing = []
    for relpath in package_modules():
        for _, module in tensorflow_imports(ast.parse(read_module(relpath), relpath)):
            if module.startswith(ALLOWED_TENSORFLOW_MODULES):
                try:
                    importlib.import_module(module)
                except ImportError as exc:
                    missing.append("%s: import %s (%s)" % (relpath, module, exc))
    for relpath, chains in sorted(chains_by_file.items()):
        for chain in chains:
            target = tf
            for part in chain.split(".")[1:]:
                if not hasattr(target, part):
                    missing.append("%s: %s" % (relpath, chain))
                    break
                target = getattr(target, part)
    assert missing == []


# ----------------------------------------------------------------------------- the lint itself

GOOD_SNIPPET = '''
from hgpipe.tf_compat import import_tf
tf = import_tf()

def step(loss):
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(updates):
        return tf.train.RMSPropOptimizer(2.5e-4).minimize(loss)

y = tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME")
z = getattr(tf, "float32")
version = tf.__version__
'''


def test_lint_accepts_valid_usage_including_class_attributes(api):
    problems, chains = lint_source(GOOD_SNIPPET, "good.py", api)
    assert problems == []
    assert {"tf.GraphKeys.UPDATE_OPS", "tf.train.RMSPropOptimizer", "tf.nn.conv2d",
            "tf.control_dependencies", "tf.float32", "tf.__version__"} <= set(chains)


@pytest.mark.parametrize("snippet, bad_symbol", [
    # module-level binding, Keras (present in 1.15 but refused)
    ("from hgpipe.tf_compat import import_tf\ntf = import_tf()\n"
     "dense = tf.keras.layers.Dense(3)\n", "tf.keras.layers.Dense"),
    # function-level binding through the module attribute, contrib
    ("from hgpipe import tf_compat\n\ndef build(x):\n    tf = tf_compat.import_tf()\n"
     "    return tf.contrib.layers.batch_norm(x)\n", "tf.contrib.layers.batch_norm"),
    # aliased import and an unusual local name, tf.layers
    ("from hgpipe.tf_compat import import_tf as get_tf\nT = get_tf()\n"
     "y = T.layers.dense(x, 3)\n", "tf.layers.dense"),
    # a TF 2-only member of a listed module
    ("from hgpipe.tf_compat import import_tf\ntf = import_tf()\n"
     "y = tf.nn.silu(x)\n", "tf.nn.silu"),
    # an unknown top-level name, reached through getattr
    ("from hgpipe.tf_compat import import_tf\ntf = import_tf()\n"
     "f = getattr(tf, 'function_v9')\n", "tf.function_v9"),
    # tf re-imported from another hgpipe module
    ("from hgpipe.model.layers import tf as T\nT.estimator.Estimator\n",
     "tf.estimator.Estimator"),
])
def test_lint_catches_bad_symbols(api, snippet, bad_symbol):
    problems, _ = lint_source(snippet, "bad.py", api)
    assert len(problems) == 1
    assert bad_symbol in problems[0] and problems[0].startswith("bad.py:")


def test_lint_flags_direct_tensorflow_import_and_ignores_other_modules(api):
    snippet = ("import numpy as np\nimport tensorflow as tf\n"
               "from tensorflow.core.protobuf import rewriter_config_pb2\n"
               "a = np.keras\nb = tf.contrib.foo\n")
    problems, chains = lint_source(snippet, "direct.py", api)
    # tf here is not import_tf()'s result: only the direct import is reported, and the
    # protobuf module import is allowed
    assert chains == []
    assert problems == ["direct.py:2: imports tensorflow directly; "
                        "use hgpipe.tf_compat.import_tf()"]
    assert lint_source(snippet, "hgpipe/tf_compat.py", api,
                       allow_tensorflow_import=True)[0] == []


def test_api_file_shape(api):
    """Sanity of the reference list the lint trusts."""
    assert "tf.nn.conv2d" in api and "tf.GraphKeys" in api
    assert not any(name.startswith("tf.contrib") for name in api)
    assert "tf.nn" in namespaces_of(api) and "tf.GraphKeys" not in namespaces_of(api)
