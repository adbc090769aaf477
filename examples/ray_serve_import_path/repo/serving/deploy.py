#!/usr/bin/env python3
"""Deploy a Ray Serve config the way `serve run --working-dir DIR CONFIG` does.

`serve run` uploads DIR as the job's working_dir (ray.init(runtime_env=...)), then Serve's
controller builds each application in a task, `build_serve_application`, whose first act is
`import_attr(import_path)` inside that working_dir (ray/serve/_private/application_state.py).
This driver runs those same steps on a local cluster with plain `ray` (no `ray[serve]` web
stack needed), so import_path problems surface exactly as they do when Serve deploys.

    python serving/deploy.py serving/config.yaml                 # from the repository root
    python serving/deploy.py serving/config.yaml --working-dir .
"""

import argparse

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--working-dir", default=".", help="uploaded as the job's working_dir (as serve run does)")
    args = parser.parse_args()
    with open(args.config) as fh:
        config = yaml.safe_load(fh)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"working_dir": args.working_dir})
    for app in config["applications"]:
        task = build_serve_application.options(runtime_env=app.get("runtime_env") or {})
        print(ray.get(task.remote(app["import_path"], app["name"])))


if __name__ == "__main__":
    main()
