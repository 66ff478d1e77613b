"""Lines that belong to no instance step: the API lines of each operation and background noise.

The API lines mention an instance only in a URL (no ``[instance: ...]`` tag), so they are labelled
like background (instance None). Noise is API polling (Poisson) and the periodic work of the node
and the scheduler (image cache, resource tracker, power-state sync, scheduler sync), its rate
scaled by ``SimulatorConfig.noise``.
"""

from __future__ import annotations

import numpy as np

from workbench.simulate import vocabulary as tpl
from workbench.simulate.config import SimulatorConfig
from workbench.simulate.draws import lognormal, uuids
from workbench.simulate.plan import Fleet, Records, Timeline, Usage

__all__ = ["API_IP", "add_api_lines", "add_noise"]

API_IP = "10.20.0.1"
_API = ("nova-api", "INFO", "nova.osapi_compute.wsgi.server")


def add_api_lines(
    cfg: SimulatorConfig,
    rng: np.random.Generator,
    fleet: Fleet,
    timeline: Timeline,
    records: Records,
) -> None:
    """The API lines of every task (their durations are drawn even when ``cfg.api_lines`` is
    off, so the noise that follows stays the same)."""
    secs = lognormal(rng, 0.25, 0.2, 4 * fleet.n_tasks)
    if not cfg.api_lines:
        return
    user, tenant, task_req, start = fleet.user, fleet.tenant, fleet.task_req, timeline.start
    user_ctx = f"{user} {tenant} - - -"
    for ti in range(fleet.n_tasks):
        t, i, req = fleet.task_type[ti], int(fleet.task_inst[ti]), task_req[ti]
        kw = {"ip": API_IP, "tenant": tenant, "uuid": fleet.uuids[i], "secs": secs[4 * ti]}
        addr = f"req-{req} {user_ctx}"
        if t == "create":
            records.extra(start[ti] - 1.2 * secs[4 * ti + 1] / 0.25, *_API, addr,
                          tpl.API_CREATE.format(**kw), "api.create_server")  # fmt: skip
            kw["secs"] = secs[4 * ti + 2]
            records.extra(start[ti] + 0.3, *_API, f"req-{task_req[ti - 1]} {user_ctx}",
                          tpl.API_SHOW.format(**kw), "api.show_server")  # fmt: skip
            offset = timeline.offsets[t]["create.vif_plugged"][timeline.pos_in_type[ti]]
            vif = start[ti] + offset - 0.02
            ev_addr = (
                f"req-{task_req[(ti + 7) % fleet.n_tasks]} {user} {fleet.service_tenant} - - -"
            )
            kw.update(service_tenant=fleet.service_tenant, secs=secs[4 * ti + 3] / 3)
            records.extra(vif, *_API, ev_addr, tpl.API_EVENTS.format(**kw), "api.external_events")
            records.extra(vif + 0.001, "nova-api-events", "INFO",
                          "nova.api.openstack.compute.server_external_events", ev_addr,
                          tpl.API_VIF.format(port=task_req[(ti + 3) % fleet.n_tasks],
                                             uuid=fleet.uuids[i]),
                          "api.vif_plugged")  # fmt: skip
        elif t == "delete":
            text = tpl.API_DELETE.format(**kw)
            records.extra(start[ti] - 0.04, *_API, addr, text, "api.delete_server")
        else:
            text = tpl.API_ACTION.format(**kw)
            records.extra(start[ti] - 0.08, *_API, addr, text, "api.server_action")


def add_noise(
    cfg: SimulatorConfig,
    rng: np.random.Generator,
    fleet: Fleet,
    records: Records,
    horizon: float,
    in_use: Usage,
) -> None:
    """Background lines until ``horizon``: API polling (Poisson) and the periodic tasks of the
    node and scheduler."""
    image, base = uuids(rng, 1)[0], "/var/lib/nova/instances/_base/" + rng.bytes(20).hex()
    periodic_req = f"req-{uuids(rng, 1)[0]} - - - - -"
    n_polls = rng.poisson(0.3 * cfg.noise * horizon)
    poll_t = np.sort(rng.uniform(0, horizon, n_polls))
    poll_secs = lognormal(rng, 0.26, 0.15, n_polls)
    poll_size = rng.choice([1759, 1893, 2027, 2161], n_polls)
    poll_req = uuids(rng, n_polls)
    user_ctx = f"{fleet.user} {fleet.tenant} - - -"
    for t, s, size, req in zip(poll_t, poll_secs, poll_size, poll_req, strict=True):
        text = tpl.API_LIST.format(ip=API_IP, tenant=fleet.tenant, size=size, secs=s)
        records.extra(t, *_API, f"req-{req} {user_ctx}", text, "api.list_servers")
    groups = (
        (tpl.PERIODIC_IMAGECACHE, 40.0, "nova-compute"),
        (tpl.PERIODIC_TRACKER, 60.0, "nova-compute"),
        (tpl.PERIODIC_SCHEDULER, 120.0, "nova-scheduler"),
        (tpl.PERIODIC_POWER_SYNC, 600.0, "nova-compute"),
    )
    for group, period, service in groups:
        period = period / cfg.noise
        times = np.arange(rng.uniform(0, period), horizon, period)
        times = times + rng.uniform(0, 0.5, len(times))
        used, active = in_use(times, strict=False)
        for t, u, k in zip(times, used, active, strict=True):
            lines = group
            if group is tpl.PERIODIC_IMAGECACHE and k == 0:
                lines = tpl.PERIODIC_IMAGECACHE_IDLE[int(rng.integers(2)) :][:1]
            values = {
                "image": image,
                "base": base,
                "host": "compute-1.sim.cloud",
                "active": int(k),
                "vcpus": int(u[2]),
                "used_mem": int(tpl.HOST["reserved_mem"] + u[0]),
                "used_disk": int(u[1]),
                **tpl.HOST,
            }
            for j, (event, comp, level, template) in enumerate(lines):
                if service == "nova-scheduler":
                    req = f"req-{uuids(rng, 1)[0]} - - - - -"
                else:
                    req = periodic_req
                text = template.format(**values)
                records.extra(t + 0.002 * j, service, level, comp, req, text, event)
