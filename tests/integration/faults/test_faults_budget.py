"""The budget the database enforces (issue 11, item 1): a lost layout lock duplicates
nothing. Runs scenarios.py's e-layout for real; fails with its whole report."""

from __future__ import annotations

import pytest
from scenarios import check

pytestmark = pytest.mark.timeout(900)


def test_lost_layout_lock_lays_out_each_of_4000_slots_once(tmp_path):
    """(e) Two workers lay out 4,000 slots at once while the backend laying them out is
    terminated; then --trials 100 (400 in full): 4,000 slots, each once, exactly the
    budget complete."""
    check("e-layout", tmp_path)
