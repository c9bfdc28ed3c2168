"""python-pkcs11's encoding helpers (``pkcs11.util.*``), loaded when first used.

``pkcs11/__init__.py`` (python-pkcs11 0.10) imports ``pkcs11.util.dh, dsa, ec, rsa, x509`` on
every ``import pkcs11``; they bring asn1crypto, and asn1crypto brings socket, selectors,
decimal and fractions: ~30 ms of every ``keystead`` command's start-up (issue 17,
``python -X importtime``) for helpers Keystead uses in two places (EC public keys in backup
wraps and transfers). ``defer_pkcs11_util`` registers those five modules with the standard
library's lazy loader (``importlib.util.LazyLoader``, the recipe in the ``importlib``
documentation) before ``pkcs11`` is imported: each is a module object at once and runs its
code on first attribute access, so the behaviour is unchanged and the cost is paid by the
commands that use them. Where the modules cannot be found as files (another importer, or
``pkcs11`` already imported) nothing is deferred and they load as python-pkcs11 wrote it.

Not thread-safe on first use before Python 3.12, as every lazy module: only the core thread
uses PKCS#11 (``app.services.executor``).
"""

from __future__ import annotations

import importlib.util
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

# What python-pkcs11's ``__init__`` imports from ``pkcs11.util`` (0.10.x).
UTIL_MODULES = ("dh", "dsa", "ec", "rsa", "x509")


def _spec(name: str, path: str) -> ModuleSpec | None:
    """The spec of module ``name`` in directory ``path``, found as the import system would
    find a submodule there, without importing its parent packages."""
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        spec: ModuleSpec | None = find(name, [path])
        if spec is not None:
            return spec
    return None


def defer_pkcs11_util() -> list[str]:
    """Register ``pkcs11.util`` (the package: one small module, run now) and
    ``pkcs11.util.<name>`` for each of ``UTIL_MODULES`` as a lazy module, then import
    ``pkcs11``, whose ``from pkcs11.util import dh, …`` finds them bound. Returns the names
    deferred (empty: none were, because ``pkcs11`` was imported already or its files are not
    where the import system's finders see them). Idempotent."""
    if "pkcs11" in sys.modules:
        return []
    package = importlib.util.find_spec("pkcs11")  # (finds it; does not import it)
    if package is None or not package.submodule_search_locations:
        return []
    package_dir = next(iter(package.submodule_search_locations))
    util_dir = os.path.join(package_dir, "util")
    util_spec = _spec("pkcs11.util", package_dir)
    specs = [_spec(f"pkcs11.util.{short}", util_dir) for short in UTIL_MODULES]
    loaders = [spec.loader if spec is not None else None for spec in (util_spec, *specs)]
    if util_spec is None or util_spec.loader is None or None in loaders:
        return []
    try:
        deferred = _register(util_spec, specs)
    except Exception:  # (a loader without exec_module, …): import them as python-pkcs11 does
        for name in ["pkcs11.util", *(f"pkcs11.util.{short}" for short in UTIL_MODULES)]:
            sys.modules.pop(name, None)
        return []
    import pkcs11

    pkcs11.util = sys.modules["pkcs11.util"]  # (as importing a submodule binds it)
    return deferred


def _register(util_spec: ModuleSpec, specs: list[ModuleSpec | None]) -> list[str]:
    """Run ``pkcs11.util`` (the package) and register each of ``specs`` as a lazy module bound
    on it. Raises what a loader raises (the caller then undoes the registration)."""
    if util_spec.loader is None:
        return []
    # The package first, as a normal module: an attribute look-up on a lazy module (even the
    # import system's own ``__spec__`` check) would run it.
    util = importlib.util.module_from_spec(util_spec)
    sys.modules["pkcs11.util"] = util
    util_spec.loader.exec_module(util)
    deferred = []
    for short, spec in zip(UTIL_MODULES, specs, strict=True):
        if spec is None or spec.loader is None:  # (refused by the caller; for the type checker)
            continue
        spec.loader = importlib.util.LazyLoader(spec.loader)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)  # the lazy loader only arms the module here
        setattr(util, short, module)  # bound, so ``from pkcs11.util import ec`` looks no further
        deferred.append(spec.name)
    return deferred
