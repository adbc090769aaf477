"""Template of the repro `reprex check-serve` writes for a failed import of an application.

Ray Serve's import of the application's import_path, alone, without Ray. The repro is this
file with its docstring replaced and the block between the `reprex:` markers rendered from
the check (reprex.ray.repro_templates); everything else is copied as is. Standard library
only: the bundle's repro runs where Ray is not installed. The hyphen in the file name is on
purpose: linted like any module, never imported by accident (it runs on import).
"""
import importlib
import os
import sys

# reprex: parameters
IMPORT_PATH = "package.module:app"
HERE = os.path.dirname(os.path.abspath(__file__))
WORKING_DIR = os.path.normpath(os.path.join(HERE, "."))
# reprex: end


# ray._common.utils.import_module_and_attr / import_attr in Ray 2.60 (ray._private.utils in
# older releases), copied so the repro does exactly what Serve does, with no Ray installed.
def import_attr(full_path, *, reload_module=False):
    """Ray's import_attr (ray._common.utils in Ray 2.60), copied: 'pkg.mod:attr' or 'pkg.mod.attr'."""
    if ":" in full_path:
        if full_path.count(":") > 1:
            raise ValueError(
                f'Got invalid import path "{full_path}". An '
                "import path may have at most one colon."
            )
        module_name, attr_name = full_path.split(":")
    else:
        last_period_idx = full_path.rfind(".")
        module_name = full_path[:last_period_idx]
        attr_name = full_path[last_period_idx + 1 :]
    module = importlib.import_module(module_name)
    if reload_module:
        importlib.reload(module)
    return getattr(module, attr_name)


# The build task's view: cwd is the working_dir, and it comes first on sys.path.
os.chdir(WORKING_DIR)
sys.path[:] = [WORKING_DIR] + [p for p in sys.path if os.path.abspath(p or '.') != HERE]
app = import_attr(IMPORT_PATH)
print(f"{IMPORT_PATH} -> {app!r}")
