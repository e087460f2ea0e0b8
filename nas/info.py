"""What `nas info` shows: a spec's cost as a dict (for --json) and as a per-stage table."""

from __future__ import annotations

from .cost import Cost, count_cost
from .spec import Spec
from .units import human


def info_dict(spec: Spec, resolution: int | None = None) -> dict:
    cost = count_cost(spec, resolution)
    return {"name": spec.name, "params": cost.params, "flops": cost.flops, "mac": cost.mac,
            "resolution": cost.resolution}


def info_table(spec: Spec, resolution: int | None = None, measured: dict | None = None) -> str:
    cost: Cost = count_cost(spec, resolution, per_stage=True)
    lines = [f"{spec.name}: {cost.params:,} params, {human(cost.flops)} FLOPs (multiply-adds), "
             f"{human(cost.mac)} MAC (elements), resolution {cost.resolution}",
             f"{'stage':<9} {'block':<16} {'n':>3} {'out':>6} {'size':>9} {'params':>11} {'FLOPs':>9} {'MAC':>9}"]
    for row in cost.stages:
        size = f"{row.out_size[0]}x{row.out_size[1]}"
        lines.append(f"{row.name:<9} {row.kind:<16} {row.repeats:>3} {row.out_channels:>6} {size:>9} "
                     f"{row.params:>11,} {human(row.flops):>9} {human(row.mac):>9}")
    measured = measured or {}
    if "latency_ms" in measured:
        lines.append(f"latency: {measured['latency_ms']:.2f} ms median (IQR {measured['latency_spread_ms']:.2f} ms) "
                     f"at batch {measured['latency_batch']} on {measured['latency_hardware']} "
                     f"({measured.get('latency_clock', 'wall clock')}); "
                     f"{measured['fps']:.1f} images/s")
    if "latency_predicted_ms" in measured:
        lines.append(f"predicted latency: {measured['latency_predicted_ms']:.2f} ms (latency table, same device "
                     f"and threads)")
    if "energy_j_per_image" in measured:
        lines.append(f"energy: {measured['energy_j_per_image']:.4f} J/image from {measured['energy_power_samples']} "
                     f"power samples on {measured['energy_hardware']}")
    if spec.notes:
        lines.append(f"notes: {spec.notes}")
    return "\n".join(lines)
