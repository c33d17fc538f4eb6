"""Refuse shortcuts before grading: read the learner's function (and the helpers it calls) with
`ast` and name the first call that reaches the step through something else.

Refused, with one line naming the call:
  - the kit (any `patchcore_lite` module, class, option or object) except what the exercise
    text allows (`allow`: e.g. `patchcore_lite.knn.knn` in 04.2);
  - scikit-learn, scipy, torchvision's feature extraction, torchmetrics, faiss;
  - names that compute the whole step in one call (`forbid`: pooling for the aggregation,
    `cdist` for distances, ...), however they are reached (an alias made in another cell too);
  - private attributes (`x._name`, private torch ops) and dynamic access (`getattr`, `eval`,
    `exec`, `__import__`, `importlib`, `globals`), which could hide any of the above.
A function whose source cannot be read (made with `exec`) is refused too, and one that still
holds the stub (`raise NotImplementedError`) is "not solved yet".
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import textwrap
import types
from collections.abc import Callable, Iterable

from ..coding import fail, not_solved

FOREIGN = ("patchcore_lite", "sklearn", "scipy", "torchmetrics", "faiss",
           "torchvision.models.feature_extraction", "torchvision.ops")
DYNAMIC = {"eval", "exec", "__import__", "importlib", "globals", "locals", "vars",
           "compile", "setattr", "delattr", "__dict__", "__code__", "__globals__",
           "import_module", "attrgetter", "methodcaller", "getmembers"}
DISTANCES = {"cdist", "pdist", "distance_matrix", "pairwise_distances", "euclidean_distances",
             "KDTree", "cKDTree", "BallTree", "NearestNeighbors", "cosine_similarity"}


def _origin(obj) -> str:
    """'module.qualname' of a function, class or module (the object's type for instances)."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    if not isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType,
                            types.MethodType)) and not callable(obj):
        obj = type(obj)
    mod = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "")
    return f"{mod}.{name}" if mod else name


class Inspector:
    """Walks a learner's function and the notebook functions it uses; `check` refuses."""

    def __init__(self, exercise: str, forbid: Iterable[str], allow: Iterable[str]):
        self.exercise, self.forbid, self.allow = exercise, set(forbid), tuple(allow)
        self.seen: set[int] = set()
        self.local: set[str] = set()  # the learner's own variables: never the kit or a library

    def refuse(self, what: str, why: str = "write it yourself") -> None:
        """The one-line refusal naming the call."""
        fail(f"{self.exercise}: do not use {what}; {why}")

    def allowed(self, origin: str) -> bool:
        """The exercise text allows this kit name (or everything under it)."""
        return any(origin == a or origin.startswith(a + ".") for a in self.allow)

    def check_object(self, obj, shown: str) -> None:
        """Refuse an object the code refers to: the kit, a foreign library, a forbidden step."""
        if isinstance(obj, functools.partial):  # a partial of a forbidden call is that call
            self.check_object(obj.func, shown)
        origin = _origin(obj)
        name = getattr(obj, "__name__", "") if not isinstance(obj, types.ModuleType) else ""
        if name in self.forbid:
            self.refuse(shown if shown == origin else f"{shown} ({origin})")
        for lib in FOREIGN:
            if (origin == lib or origin.startswith(lib + ".")) and not self.allowed(origin):
                if not (isinstance(obj, types.ModuleType) and self.allowed_module(origin)):
                    self.refuse(shown if shown == origin else f"{shown} ({origin})")

    def allowed_module(self, module: str) -> bool:
        """A kit module some allowed name lives in (its allowed names are checked one by one)."""
        return any(a.startswith(module + ".") for a in self.allow)

    def visit(self, fn: Callable) -> None:
        """Inspect fn's source, then every notebook function or class it refers to."""
        fn = inspect.unwrap(fn)  # a decorated function: read the learner's own code
        if id(fn) in self.seen:
            return
        self.seen.add(id(fn))
        try:
            source = textwrap.dedent(inspect.getsource(fn))
        except (OSError, TypeError):
            fail(f"{self.exercise}: cannot read the source of {getattr(fn, '__name__', fn)}; "
                 "define it with `def` in a notebook cell")
        self.globals = fn.__globals__
        env = dict(fn.__globals__)
        tree = ast.parse(source)
        imported: set[str] = set()
        for node in ast.walk(tree):  # first the imports inside the function, as names
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imported |= _bind_imports(node, env)
        outer, self.local = self.local, _assigned(tree) - imported
        try:
            for node in ast.walk(tree):
                self.node(node, env)
        finally:
            self.local = outer

    def node(self, node: ast.AST, env: dict) -> None:
        """Check one syntax node against the rules."""
        if isinstance(node, ast.Import):
            for a in node.names:
                self.module_name(a.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            self.module_name(base)
            for a in node.names:
                self.module_name(f"{base}.{a.name}", a.name)
        elif isinstance(node, ast.Attribute):
            if node.attr in DYNAMIC or _dotted(node) == "sys.modules":
                self.refuse(f".{node.attr}", "dynamic access is not allowed here")
            if node.attr.startswith("_") and not node.attr.startswith("__"):
                self.refuse(f"{_dotted(node) or '.' + node.attr} (a private name)",
                            "use public APIs only")
            self.attribute(node, env)
            if node.attr in self.forbid:
                self.refuse(_dotted(node) or f".{node.attr}")
        elif isinstance(node, ast.Name):
            self.name(node.id, env)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                node.value in self.forbid or node.value in DYNAMIC
                or node.value.split(".")[0] in {f.split(".")[0] for f in FOREIGN}):
            self.refuse(repr(node.value))

    def module_name(self, module: str, name: str | None = None) -> None:
        """Refuse importing a foreign module or a forbidden name."""
        if module.split(".")[0] in DYNAMIC or name in DYNAMIC:
            self.refuse(module, "dynamic access is not allowed here")
        if name in self.forbid or module.rsplit(".", 1)[-1] in self.forbid:
            self.refuse(module)
        for lib in FOREIGN:
            if (module == lib or module.startswith(lib + ".")) and not self.allowed(module) \
                    and not self.allowed_module(module):
                self.refuse(module)

    def name(self, ident: str, env: dict) -> None:
        """A bare name: dynamic builtins, forbidden names, and what it refers to."""
        if ident in self.local:
            return
        if ident in DYNAMIC:
            self.refuse(f"{ident}()", "dynamic access is not allowed here")
        obj = env.get(ident)
        if ident in env and obj is not builtins and not isinstance(
                obj, (int, float, str, bool, type(None))):
            self.check_object(obj, ident)
            self.follow(obj, env)
        if ident in self.forbid and ident in env:
            self.refuse(f"{ident} ({_origin(obj)})")

    def follow(self, obj, env: dict) -> None:
        """Inspect the learner's own helpers (functions and classes of the same namespace)."""
        if isinstance(obj, types.FunctionType) and obj.__globals__ is self.globals:
            self.visit(obj)
        elif isinstance(obj, type) and obj.__module__ == env.get("__name__"):
            for member in vars(obj).values():
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, types.FunctionType):
                    self.visit(member)

    def attribute(self, node: ast.Attribute, env: dict) -> None:
        """`a.b.c` with `a` a module or object of the namespace: check what each step is."""
        parts = (_dotted(node) or "").split(".")
        if not parts[0] or parts[0] not in env:
            return
        obj = env[parts[0]]
        for i, part in enumerate(parts[1:], 2):
            try:
                obj = getattr(obj, part)
            except Exception:  # noqa: BLE001 - an attribute of a run-time value: not resolvable
                return
            self.check_object(obj, ".".join(parts[:i]))


def _bind_imports(node: ast.AST, env: dict) -> set[str]:
    """Add what an import statement binds to `env`; the names it binds."""
    import importlib

    names = {a.asname or a.name.split(".")[0] for a in node.names}
    try:
        if isinstance(node, ast.Import):
            for a in node.names:
                top = importlib.import_module(a.name.split(".")[0])
                env[a.asname or a.name.split(".")[0]] = (importlib.import_module(a.name)
                                                         if a.asname else top)
        elif node.module and not node.level:
            mod = importlib.import_module(node.module)
            for a in node.names:
                env[a.asname or a.name] = getattr(mod, a.name)
    except (ImportError, AttributeError):  # refused (or not there) by name in `module_name`
        pass
    return names


def _assigned(tree: ast.AST) -> set[str]:
    """Names the code binds itself: arguments, assignment and loop targets, nested defs."""
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.arguments):
            names |= {a.arg for a in n.posonlyargs + n.args + n.kwonlyargs}
            names |= {a.arg for a in (n.vararg, n.kwarg) if a is not None}
        elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            names.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.ExceptHandler)) and n.name:
            names.add(n.name)
    return names


def _dotted(node: ast.AST) -> str | None:
    """'a.b.c' of an attribute chain on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id] + parts[::-1])


def is_stub(fn: Callable) -> bool:
    """The function still raises NotImplementedError (the student version's stub)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return False
    return any(isinstance(n, ast.Raise) and n.exc is not None and "NotImplementedError" in
               ast.unparse(n.exc) for n in ast.walk(tree))


def inspect_solution(fn, exercise: str, forbid: Iterable[str] = (),
                     allow: Iterable[str] = ()) -> None:
    """Refuse a stub (not solved yet), a non-function, or any shortcut in fn's source."""
    if not isinstance(fn, types.FunctionType):
        fail(f"{exercise}: expected a function defined with `def`, got {type(fn).__name__}")
    if is_stub(fn):
        not_solved(exercise)
    Inspector(exercise, forbid, allow).visit(fn)
