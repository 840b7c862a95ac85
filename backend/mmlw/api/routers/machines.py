from __future__ import annotations

from fastapi import APIRouter

from mmlw.api.deps import AliasesDep, RegistryDep, StoreDep
from mmlw.registry.base import CHAMPION
from mmlw.schemas.resources import MachineOut
from mmlw.store.tables import Machine

router = APIRouter(prefix="/machines", tags=["machines"])


def machine_out(machine: Machine, champion: int | None) -> MachineOut:
    return MachineOut(
        id=machine.id,
        columns=list(machine.columns),
        first_seen=machine.first_seen,
        last_seen=machine.last_seen,
        last_reading_at=machine.last_reading_at,
        n_readings=machine.n_readings,
        n_scored=machine.n_scored,
        champion_version=champion,
    )


@router.get("")
def list_machines(store: StoreDep, aliases: AliasesDep) -> list[MachineOut]:
    """Every machine that has sent readings, with counters and its champion version: one
    query, and at most one registry search for all of them however many there are
    (:class:`~mmlw.services.alias_snapshot.AliasSnapshot`: none while no alias moved)."""
    machines = store.machines.list()
    champions = aliases.alias_versions(CHAMPION) if machines else {}
    return [machine_out(m, champions.get(m.id)) for m in machines]


@router.get("/{machine_id}")
def get_machine(machine_id: str, store: StoreDep, registry: RegistryDep) -> MachineOut:
    machine = store.machines.get(machine_id)
    return machine_out(machine, registry.alias_version(machine_id, CHAMPION))
