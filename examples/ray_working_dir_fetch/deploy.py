#!/usr/bin/env python3
"""Deploy a Ray Serve config's applications the way Serve's controller builds them.

For each application Serve runs a task, `build_serve_application`, with the application's
runtime_env; the task's first act is `import_attr(import_path)` in the working_dir
(ray/serve/_private/application_state.py). This driver runs that same step on a local
cluster with plain `ray` (no `ray[serve]` web stack needed), so working_dir and import_path
problems surface exactly as they do when Serve deploys the config.

    python deploy.py serve_config.yaml
"""

import sys

import ray
import yaml

try:
    from ray._common.utils import import_attr  # Ray >= 2.47
except ImportError:  # older releases
    from ray._private.utils import import_attr


@ray.remote(num_cpus=0, max_retries=0)
def build_serve_application(import_path: str, name: str) -> str:
    app = import_attr(import_path)
    return f"{name}: imported {import_path} -> {app!r}"


def main(config_path: str) -> None:
    with open(config_path) as fh:
        config = yaml.safe_load(fh)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    for app in config["applications"]:
        task = build_serve_application.options(runtime_env=app.get("runtime_env") or {})
        print(ray.get(task.remote(app["import_path"], app["name"])))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "serve_config.yaml")
