"""The simulated cloud's vocabulary: the tasks it runs, their steps, timing and message templates.

Each task (``create``, ``pause``, ``delete``, ...) is a small directed acyclic graph of *steps*. A
step happens a random delay after the latest of its parents (lognormal jitter around a median), in
one of the threads of a nova compute service, and usually prints one message. Steps that are not
ordered by the graph run concurrently and may be logged in either order; the graph is built so that
every such pair really does race (and everything that never races is ordered), which makes the
graph the ground truth a workflow-mining step can be scored against.

This module is data only (the steps, the steps an anomaly changes, the lines of the API and of the
periodic background work); :mod:`workbench.simulate.engine` runs it.

>>> [s.event for s in TASKS["pause"]]
['pause.pausing', 'pause.vm_paused', 'pause.sync_pending']
"""

from __future__ import annotations

from dataclasses import dataclass

# Threads decide the ``[ADDR]`` field of a line: the user's request context, the compute service's
# lifecycle-event handler (one fixed request id for the whole host), the libvirt driver ("-"), or a
# hidden step that prints nothing and only carries time (a wait for an external event).
USER, EVENT, DRIVER, HIDDEN = "user", "event", "driver", "hidden"

MANAGER = "nova.compute.manager"
CLAIMS = "nova.compute.claims"
LIBVIRT = "nova.virt.libvirt.driver"


@dataclass(frozen=True)
class Step:
    """One step of a task: when it happens, which thread logs it and what it prints.

    ``took_from`` marks a "Took X seconds to ..." message: ``{took}`` is then the time elapsed since
    the step named there, so the reported duration is exactly the sum of the simulated delays it
    spans.
    """

    event: str  # stable simulator event name, "<task>.<what>"
    parents: tuple[str, ...]  # steps that must be done first; empty for the task's first step
    median: float  # median delay after the latest parent, seconds
    sigma: float  # lognormal shape of that delay (0 = exact)
    thread: str  # USER, EVENT, DRIVER or HIDDEN
    component: str = MANAGER
    template: str = ""  # message after "[instance: <uuid>] "; {fields} filled in by the simulator
    level: str = "INFO"
    took_from: str | None = None


def _chain(
    task: str, thread: str, component: str, items: list[tuple[str, float, str]]
) -> list[Step]:
    """Sequential steps that follow each other in one thread a few milliseconds apart."""
    steps, parent = [], ()
    for name, median, template in items:
        steps.append(Step(f"{task}.{name}", parent, median, 0.3, thread, component, template))
        parent = (f"{task}.{name}",)
    return steps


_SYNC_PENDING = "During sync_power_state the instance has a pending task ({0}). Skip."
_STARTED, _PAUSED = "VM Started (Lifecycle Event)", "VM Paused (Lifecycle Event)"
_RESUMED, _STOPPED = "VM Resumed (Lifecycle Event)", "VM Stopped (Lifecycle Event)"
_SHUTDOWN = "Instance shutdown successfully after {took:.0f} seconds."

# One step a row: Step(event, parents, median s, sigma, thread, component, template, ...).
# fmt: off
TASKS: dict[str, tuple[Step, ...]] = {
    # Boot: resource claim, then image creation racing the network allocation, the image copy
    # from the controller to the compute node, the domain launched paused until neutron plugs the
    # port, and the resume racing the driver's "spawned" report.
    "create": (
        *_chain("create", USER, CLAIMS, [
            ("claim", 0.0, "Attempting claim: memory {mem} MB, disk {disk} GB, vcpus {vcpus} CPU"),
            ("claim_memory", 0.002, "Total memory: {total_mem} MB, used: {used_mem:.2f} MB"),
            ("claim_memory_limit", 0.001,
             "memory limit: {mem_limit:.2f} MB, free: {free_mem:.2f} MB"),
            ("claim_disk", 0.001, "Total disk: {total_disk} GB, used: {used_disk:.2f} GB"),
            ("claim_disk_limit", 0.001, "disk limit not specified, defaulting to unlimited"),
            ("claim_vcpu", 0.001, "Total vcpu: {total_vcpu} VCPU, used: {used_vcpu:.2f} VCPU"),
            ("claim_vcpu_limit", 0.001, "vcpu limit not specified, defaulting to unlimited"),
            ("claim_successful", 0.03, "Claim successful"),
        ]),
        Step("create.image", ("create.claim_successful",), 0.6, 0.25, USER, LIBVIRT,
             "Creating image"),
        Step("create.network", ("create.claim_successful",), 0.6, 0.45, USER, MANAGER,
             "Took {took:.2f} seconds to allocate network for instance.",
             took_from="create.claim_successful"),
        # the image copy: the transition a throttled controller -> compute network slows down
        Step("create.vm_started", ("create.image", "create.network"), 12.9, 0.05, EVENT, MANAGER,
             _STARTED),
        Step("create.vm_paused", ("create.vm_started",), 0.06, 0.3, EVENT, MANAGER, _PAUSED),
        Step("create.sync_pending", ("create.vm_paused",), 0.13, 0.3, EVENT, MANAGER,
             _SYNC_PENDING.format("spawning")),
        Step("create.vif_plugged", ("create.sync_pending",), 6.4, 0.06, HIDDEN),
        Step("create.vm_resumed", ("create.vif_plugged",), 0.015, 0.6, EVENT, MANAGER, _RESUMED),
        Step("create.spawned", ("create.vif_plugged",), 0.015, 0.6, DRIVER, LIBVIRT,
             "Instance spawned successfully."),
        Step("create.took_spawn", ("create.spawned",), 0.002, 0.5, USER, MANAGER,
             "Took {took:.2f} seconds to spawn the instance on the hypervisor.",
             took_from="create.image"),
        Step("create.took_build", ("create.took_spawn", "create.vm_resumed"), 0.13, 0.3, USER,
             MANAGER, "Took {took:.2f} seconds to build instance.", took_from="create.claim"),
    ),
    "pause": (
        Step("pause.pausing", (), 0.0, 0.0, USER, MANAGER, "Pausing"),
        Step("pause.vm_paused", ("pause.pausing",), 0.25, 0.3, EVENT, MANAGER, _PAUSED),
        Step("pause.sync_pending", ("pause.vm_paused",), 0.12, 0.3, EVENT, MANAGER,
             _SYNC_PENDING.format("pausing")),
    ),
    "unpause": (
        Step("unpause.unpausing", (), 0.0, 0.0, USER, MANAGER, "Unpausing"),
        Step("unpause.vm_resumed", ("unpause.unpausing",), 0.22, 0.3, EVENT, MANAGER, _RESUMED),
        Step("unpause.sync_pending", ("unpause.vm_resumed",), 0.12, 0.3, EVENT, MANAGER,
             _SYNC_PENDING.format("unpausing")),
    ),
    # suspend = save the guest memory to disk; the lifecycle event races the driver's report
    "suspend": (
        Step("suspend.suspending", (), 0.0, 0.0, USER, MANAGER, "Suspending"),
        Step("suspend.saved", ("suspend.suspending",), 1.6, 0.3, HIDDEN),
        Step("suspend.vm_suspended", ("suspend.saved",), 0.01, 0.6, EVENT, MANAGER,
             "VM Suspended (Lifecycle Event)"),
        Step("suspend.suspended", ("suspend.saved",), 0.01, 0.6, DRIVER, LIBVIRT,
             "Instance suspended successfully."),
    ),
    "resume": (
        Step("resume.resuming", (), 0.0, 0.0, USER, MANAGER, "Resuming"),
        Step("resume.restored", ("resume.resuming",), 1.8, 0.3, HIDDEN),
        Step("resume.vm_started", ("resume.restored",), 0.01, 0.6, EVENT, MANAGER, _STARTED),
        Step("resume.vm_resumed", ("resume.vm_started",), 0.02, 0.5, EVENT, MANAGER, _RESUMED),
        Step("resume.running", ("resume.restored",), 0.02, 0.6, DRIVER, LIBVIRT,
             "Instance running successfully."),
    ),
    "stop": (
        Step("stop.stopping", (), 0.0, 0.0, USER, MANAGER, "Stopping instance"),
        Step("stop.off", ("stop.stopping",), 2.5, 0.4, HIDDEN),
        Step("stop.shutdown", ("stop.off",), 0.01, 0.6, DRIVER, LIBVIRT, _SHUTDOWN,
             took_from="stop.stopping"),
        Step("stop.vm_stopped", ("stop.off",), 0.01, 0.6, EVENT, MANAGER, _STOPPED),
        Step("stop.power_sync", ("stop.shutdown", "stop.vm_stopped"), 0.3, 0.3, EVENT, MANAGER,
             "During _sync_instance_power_state the DB power_state (1) does not match the "
             "vm_power_state from the hypervisor (4). Updating power_state in the DB to match "
             "the hypervisor.", "WARNING"),
    ),
    "start": (
        Step("start.starting", (), 0.0, 0.0, USER, MANAGER, "Starting instance"),
        Step("start.booted", ("start.starting",), 1.2, 0.3, HIDDEN),
        Step("start.vm_started", ("start.booted",), 0.01, 0.6, EVENT, MANAGER, _STARTED),
        Step("start.running", ("start.booted",), 0.01, 0.6, DRIVER, LIBVIRT,
             "Instance running successfully."),
    ),
    "reboot": (
        Step("reboot.rebooting", (), 0.0, 0.0, USER, MANAGER, "Rebooting instance"),
        Step("reboot.shutdown", ("reboot.rebooting",), 2.8, 0.4, DRIVER, LIBVIRT, _SHUTDOWN,
             took_from="reboot.rebooting"),
        Step("reboot.destroyed", ("reboot.shutdown",), 0.2, 0.2, DRIVER, LIBVIRT,
             "Instance destroyed successfully."),
        Step("reboot.booted", ("reboot.destroyed",), 1.0, 0.3, HIDDEN),
        Step("reboot.vm_started", ("reboot.booted",), 0.01, 0.6, EVENT, MANAGER, _STARTED),
        Step("reboot.rebooted", ("reboot.booted",), 0.01, 0.6, DRIVER, LIBVIRT,
             "Instance rebooted successfully."),
    ),
    # Delete always ends a lifecycle.
    "delete": (
        Step("delete.terminate", (), 0.0, 0.0, USER, MANAGER, "Terminating instance"),
        Step("delete.destroyed", ("delete.terminate",), 0.21, 0.1, DRIVER, LIBVIRT,
             "Instance destroyed successfully."),
        Step("delete.files", ("delete.destroyed",), 0.7, 0.05, USER, LIBVIRT,
             "Deleting instance files /var/lib/nova/instances/{uuid}_del"),
        Step("delete.files_complete", ("delete.files",), 0.001, 0.5, USER, LIBVIRT,
             "Deletion of /var/lib/nova/instances/{uuid}_del complete"),
        Step("delete.took_destroy", ("delete.files_complete",), 0.11, 0.2, USER, MANAGER,
             "Took {took:.2f} seconds to destroy the instance on the hypervisor.",
             took_from="delete.terminate"),
        Step("delete.took_deallocate", ("delete.took_destroy",), 0.46, 0.05, USER, MANAGER,
             "Took {took:.2f} seconds to deallocate network for instance.",
             took_from="delete.took_destroy"),
        Step("delete.vm_stopped", ("delete.took_deallocate",), 13.5, 0.05, DRIVER, MANAGER,
             _STOPPED),
    ),
}
# fmt: on

# Execution anomalies. The cleanup error replaces "Deleting instance files" (and its completion).
CLEANUP_ERROR = Step(
    "delete.cleanup_error",
    ("delete.destroyed",),
    0.7,
    0.05,
    USER,
    LIBVIRT,
    "Error during cleanup of instance files /var/lib/nova/instances/{uuid}_del: "
    "[Errno 16] Device or resource busy",
    "ERROR",
)
MISSING_CANDIDATES = ("create.image", "create.spawned", "delete.destroyed")
SWAP_CANDIDATES = (
    ("create.vm_started", "create.vm_paused"),
    ("delete.terminate", "delete.destroyed"),
    ("delete.took_destroy", "delete.took_deallocate"),
)
# Parameter anomalies: one of these reported durations is far out of range.
PARAMETER_CANDIDATES = (
    "create.took_spawn",
    "create.took_build",
    "delete.took_destroy",
    "delete.took_deallocate",
)

# What an instance may do next in each power state: (task, state after it).
OPERATIONS = {
    "active": (
        ("pause", "paused"),
        ("suspend", "suspended"),
        ("stop", "shutoff"),
        ("reboot", "active"),
    ),
    "paused": (("unpause", "active"),),
    "suspended": (("resume", "active"),),
    "shutoff": (("start", "active"),),
}
OPERATION_WEIGHTS = {"pause": 0.3, "suspend": 0.2, "stop": 0.3, "reboot": 0.2}

# Host facts printed in claims and periodic reports.
HOST = {
    "total_mem": 64172,
    "reserved_mem": 512,
    "mem_ratio": 1.5,
    "total_disk": 450,
    "total_vcpu": 16,
}
FLAVORS = ((512, 1, 1), (2048, 20, 1), (4096, 40, 2))  # (memory MB, disk GB, vcpus)
FLAVOR_WEIGHTS = (0.2, 0.6, 0.2)

# Lines of the API service that belong to an operation but carry no "[instance: ...]" tag; they are
# labelled like background noise (instance None).
API_CREATE = '{ip} "POST /v2/{tenant}/servers HTTP/1.1" status: 202 len: 733 time: {secs:.7f}'
API_SHOW = '{ip} "GET /v2/{tenant}/servers/{uuid} HTTP/1.1" status: 200 len: 1708 time: {secs:.7f}'
API_ACTION = (
    '{ip} "POST /v2/{tenant}/servers/{uuid}/action HTTP/1.1" status: 202 len: 193 time: {secs:.7f}'
)
API_DELETE = (
    '{ip} "DELETE /v2/{tenant}/servers/{uuid} HTTP/1.1" status: 204 len: 203 time: {secs:.7f}'
)
API_EVENTS = (
    '{ip} "POST /v2/{service_tenant}/os-server-external-events HTTP/1.1" status: 200 len: 380 '
    "time: {secs:.7f}"
)
API_VIF = "Creating event network-vif-plugged:{port} for instance {uuid}"
API_LIST = (
    '{ip} "GET /v2/{tenant}/servers/detail HTTP/1.1" status: 200 len: {size} time: {secs:.7f}'
)

# Periodic background tasks of the node and the scheduler: (event, component, level, template).
IMAGECACHE = "nova.virt.libvirt.imagecache"
TRACKER = "nova.compute.resource_tracker"
PERIODIC_IMAGECACHE = (
    ("imagecache.checking", IMAGECACHE, "INFO", "image {image} at ({base}): checking"),
    (
        "imagecache.in_use",
        IMAGECACHE,
        "INFO",
        "image {image} at ({base}): in use: on this node {active} local, 0 on other nodes sharing "
        "this instance storage",
    ),
    ("imagecache.active", IMAGECACHE, "INFO", "Active base files: {base}"),
)
PERIODIC_IMAGECACHE_IDLE = (
    ("imagecache.removable", IMAGECACHE, "INFO", "Removable base files: {base}"),
    ("imagecache.too_young", IMAGECACHE, "INFO", "Base or swap file too young to remove: {base}"),
)
PERIODIC_TRACKER = (
    (
        "tracker.audit",
        TRACKER,
        "INFO",
        "Auditing locally available compute resources for node {host}",
    ),
    (
        "tracker.vcpus",
        TRACKER,
        "INFO",
        "Total usable vcpus: {total_vcpu}, total allocated vcpus: {vcpus}",
    ),
    (
        "tracker.final_view",
        TRACKER,
        "INFO",
        "Final resource view: name={host} phys_ram={total_mem}MB used_ram={used_mem}MB "
        "phys_disk={total_disk}GB used_disk={used_disk}GB total_vcpus={total_vcpu} "
        "used_vcpus={vcpus} pci_stats=[]",
    ),
    ("tracker.updated", TRACKER, "INFO", "Compute_service record updated for {host}:{host}"),
)
PERIODIC_POWER_SYNC = (
    (
        "compute.power_sync",
        MANAGER,
        "WARNING",
        "While synchronizing instance power states, found {active} instances in the database and "
        "{active} instances on the hypervisor.",
    ),
)
PERIODIC_SCHEDULER = (
    (
        "scheduler.synced",
        "nova.scheduler.host_manager",
        "INFO",
        "Successfully synced instances from host '{host}'.",
    ),
)

# Every step of every task, plus the cleanup error, indexed once at import.
STEPS: list[Step] = [s for steps in TASKS.values() for s in steps] + [CLEANUP_ERROR]
STEP_ID = {s.event: i for i, s in enumerate(STEPS)}
TASK_OF = {s.event: s.event.split(".", 1)[0] for s in STEPS}


def transitions() -> list[tuple[str, str]]:
    """Return every (parent, step) pair whose delay can be throttled, as event names.

    Examples
    --------
    >>> ("create.image", "create.vm_started") in transitions()
    True
    """
    return [(p, s.event) for steps in TASKS.values() for s in steps for p in s.parents]
