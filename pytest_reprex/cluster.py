"""`--reprex-ray [ADDRESS]`: collected bundles replay as Ray tasks, pytest still reports one item each.

Each bundle item's replay is submitted to the cluster ahead of its turn (reprex.scale's
`replay_remote`: the bundle's bytes through the object store, the task asks for what the bundle
needs), so the cluster works on many while pytest walks the items in order; each item's setup
then waits for its own result and judges it as a local replay would.

Which items are submitted ahead, at each bundle item's setup, up to a window of twice the cluster's
CPUs (enough to keep it busy; big bundles don't all sit in the object store at once): without xdist,
the session's next bundle items (after deselection). Under xdist each worker submits only what it
will run: its own item, the next one, and the indices the controller has already queued for it
(read from xdist's worker queue when it is there; a test stolen by another worker is replayed
twice, and the orphan is cancelled at the end of the session).

Trust is unchanged: a node replays a bundle as `reprex replay` would there: in Docker unless the
user chose `--reprex-backend local` (never the bundle). Host Docker is not asked for: the nodes'
daemons are (their `reprex_docker` resource). Ray is imported only when a bundle item runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

RAY = pytest.StashKey["Dispatch"]()
BUILT = ("reproduced", "different", "fixed", "flaky")
WINDOW_MIN = 8  # verdicts that mean the node built the environment


@dataclass
class Dispatch:
    """One session's (one xdist worker's) submitted replays."""

    address: str
    pending: dict = field(default_factory=dict)  # nodeid -> handle of a submitted replay
    error: str | None = None  # the cluster could not be reached: every item fails with this line
    window: int = 0  # how many items may be out ahead (twice the cluster's CPUs), once connected
    order: list | None = None  # without xdist: the session's bundle items, in their order
    at: dict = field(default_factory=dict)  # nodeid -> its place in `order`
    prefer: dict = field(default_factory=dict)  # lock hash -> the node that built it (soft affinity)

    # -- submitting ------------------------------------------------------------------------
    def submit(self, item, merged: dict, pass_env: dict) -> None:
        """Submit `item`'s replay unless it is already in flight. Problems with the item itself
        (options, a malformed bundle) are left for its own setup to report."""
        if item.nodeid in self.pending or self.error is not None:
            return
        from reprex.bundle import Bundle, BundleError

        from pytest_reprex import options as opts

        try:
            data = Bundle.read(item.bundle_path).to_zip_bytes()
        except (BundleError, OSError):
            return
        merged = dict(merged, backend=remote_backend(merged["backend"]))
        from reprex.errors import ReprexError

        try:
            from reprex.scale.dispatch import replay_remote

            self.pending[item.nodeid] = replay_remote(data, opts.replay_options(merged, pass_env),
                                                      address=self.address, source=str(item.bundle_path),
                                                      prefer=self.prefer)
        except ReprexError as exc:  # no Ray here, no cluster at that address: one line, every item
            self.error = exc.message
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.error = f"--reprex-ray {self.address}: cannot submit to the cluster: {type(exc).__name__}: {detail}"

    def submit_ahead(self, item) -> None:
        """Submit `item` and the next bundle items this process will run, up to the window: a
        corpus of big bundles must not sit in the object store all at once, and the cluster
        needs only enough to stay busy."""
        for other in [item, *self.upcoming(item)]:
            merged = options_of(other)
            if merged is not None:
                self.submit(other, merged, pass_env_of(other))
            if not self.window:
                self.window = window_size()

    def upcoming(self, item) -> list:
        """The bundle items this process runs after `item`, as far as it knows them, up to the window."""
        most = max(0, (self.window or WINDOW_MIN) - 1)
        if not hasattr(item.config, "workerinput"):  # one process runs them all, in this order
            if self.order is None:
                self.order = [i for i in item.session.items if _is_bundle_item(i)]
                self.at = {i.nodeid: k for k, i in enumerate(self.order)}
            start = self.at.get(item.nodeid, len(self.order)) + 1
            return self.order[start:start + most]
        return queued_under_xdist(item)[:most]

    # -- waiting ----------------------------------------------------------------------------
    def wait(self, item):
        """`item`'s ScaleResult (submitting it first if it is not in flight)."""
        if item.nodeid not in self.pending and self.error is None:
            merged = options_of(item)
            if merged is not None:
                self.submit(item, merged, pass_env_of(item))
        if self.error is not None:
            return None
        handle = self.pending.get(item.nodeid)
        if handle is None:
            return None
        from reprex.interrupt import Interrupted, on_signals

        try:
            with on_signals():  # SIGTERM unwinds like Ctrl-C: the session ends and cancels the rest
                value = handle.result()
        except Interrupted as exc:
            raise KeyboardInterrupt(str(exc)) from None
        except SystemError as exc:  # the handler raised inside ray.wait's C code, which wraps it
            if isinstance(exc.__cause__ or exc.__context__, Interrupted):
                raise KeyboardInterrupt(str(exc.__cause__ or exc.__context__)) from None
            raise
        self.pending.pop(item.nodeid, None)
        if value.lock_hash and value.node and value.verdict in BUILT:
            self.prefer[value.lock_hash] = value.node
        return value

    def result_for(self, item, bundle):
        """The item's ReplayResult from the cluster; the node that ran it goes into the item's
        properties (junitxml, the summary's per-node line)."""
        from pytest_reprex.report import inert

        self.submit_ahead(item)
        value = self.wait(item)
        if value is None:
            pytest.fail(inert(f"reprex {item.name}: {self.error or 'could not submit the replay to the cluster'}"),
                        pytrace=False)
        result, node = as_replay_result(value, bundle)
        if node:
            item.user_properties.append(("reprex_node", node))
        return result

    def cancel_all(self) -> int:
        """Cancel what is still in flight (Ctrl-C, -x, stolen items): each task gets a few
        seconds to remove its container, then is killed (reprex.scale.dispatch.cancel_all).
        Never raises."""
        handles, self.pending = list(self.pending.values()), {}
        if not handles:
            return 0
        try:
            import ray

            from reprex.scale.dispatch import cancel_all

            cancel_all(ray, handles)
        except Exception:
            return 0
        return len(handles)


def remote_backend(backend: str) -> str:
    """`auto` on a cluster is Docker on the node (the sandbox); `local` only when the user said so."""
    return "local" if backend == "local" else "docker"


# -- which items, with which options --------------------------------------------------------

def options_of(item) -> dict | None:
    """The item's merged options, or None when it can't run (it reports why in its own setup)."""
    if getattr(item, "_load_error", None) or item.get_closest_marker("skip") is not None:
        return None
    from pytest_reprex import options as opts

    try:
        return item._merged()
    except opts.OptionError:
        return None


def pass_env_of(item) -> dict:
    from pytest_reprex.state import state_of

    return state_of(item.config).pass_env


def _is_bundle_item(item) -> bool:
    from pytest_reprex.items import ReprexItem

    return isinstance(item, ReprexItem)


def window_size() -> int:
    """Twice the cluster's CPUs (as reprex.scale's replay_many), at least WINDOW_MIN."""
    try:
        import ray

        return max(WINDOW_MIN, int(2 * ray.cluster_resources().get("CPU", 0)))
    except Exception:
        return WINDOW_MIN


def queued_under_xdist(item) -> list:
    """The bundle items xdist has queued for this worker after `item` (its next one, at least)."""
    items = item.session.items
    queued: list[int] = []
    for plugin in item.config.pluginmanager.get_plugins():
        torun = getattr(plugin, "torun", None)
        if torun is not None and hasattr(torun, "lock"):  # xdist's WorkerInteractor
            nxt = getattr(plugin, "nextitem_index", None)
            if isinstance(nxt, int):
                queued.append(nxt)
            try:
                with torun.lock() as pending:
                    queued.extend(i for i in pending if isinstance(i, int))
            except Exception:  # another xdist: only the next item is known
                pass
            break
    return [items[i] for i in queued if 0 <= i < len(items) and _is_bundle_item(items[i])]


# -- the verdict, as a local replay's ---------------------------------------------------------

def as_replay_result(value, bundle):
    """A ReplayResult (what the item and the report read) from a ScaleResult: the node's
    replay result (ReplayResult.to_dict), or only a verdict and reason when none ran there."""
    from reprex.replay import ReplayResult
    from reprex.signature import Signature

    data = value.result if isinstance(value.result, dict) else {}
    expected = Signature.from_dict(bundle.manifest["expect"]["signature"])
    observed = Signature.from_dict(data.get("signature"))
    node = value.node or ""
    backend = str(data.get("backend") or "ray")
    result = ReplayResult(
        verdict=value.verdict or "infra-error", signature=observed, expected_signature=expected,
        runs=int(data.get("runs") or 0), reproduced_runs=int(data.get("reproduced_runs") or 0),
        backend=f"{backend} on ray node {node}" if node else backend, image=data.get("image"),
        duration_s=float(data.get("duration_s") or value.seconds or 0.0), reason=value.reason or "",
        diff=list(data.get("diff") or []), logs=str(data.get("logs") or ""),
        run_verdicts=list(data.get("run_verdicts") or []))
    if observed is not None and expected.message != observed.message:
        result.message_diff = (expected.message, observed.message)
    return result, node


def dispatch_of(config) -> Dispatch | None:
    return config.stash.get(RAY, None)


def install(config, address: str) -> None:
    config.stash[RAY] = Dispatch(address=address)


def finish(config) -> None:
    dispatch = dispatch_of(config)
    if dispatch is not None:
        dispatch.cancel_all()

