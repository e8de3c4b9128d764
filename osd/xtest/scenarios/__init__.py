"""Every scenario the runner knows, in the order it runs them (reads first, then writes by
object lifecycle, storage last), and the METHOD:CASE keys profiles may refine."""

from ..engine import Scenarios
from . import bridges, btrfs, filtering, raid, reads, routing, storage

SCENARIOS = Scenarios(reads.scenario, bridges.scenario, routing.scenario, filtering.scenario, storage.scenario,
                      btrfs.scenario, raid.scenario)
CASES = frozenset(case for s in SCENARIOS for case in s.cases)
