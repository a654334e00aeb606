"""Checkpoints that belong to one stored study, and checkpoint folders that fail (issue 11,
items 5 and 6). Each test runs one scenario of scenarios.py for real and fails with its
whole report."""

from __future__ import annotations

import pytest
from scenarios import check

pytestmark = pytest.mark.timeout(900)


def test_same_name_in_a_new_journal_file_trains_from_scratch(tmp_path):
    """(i) The old hpo-journal.log deleted, its checkpoints still there."""
    check("i-new-journal", tmp_path)


def test_same_name_in_a_new_database_trains_from_scratch(tmp_path):
    """(i) The study moved to a new PostgreSQL database."""
    check("i-new-database", tmp_path)


def test_col_slash_x_and_col_underscore_x_do_not_cross_over(tmp_path):
    """(i) One checkpoint folder, two names that map to one file name; col/x still resumes
    its own checkpoint."""
    check("i-names", tmp_path)


def test_300_character_name_works_and_dotdot_stays_inside(tmp_path):
    """(i) No 'File name too long'; a study named '..' writes nothing outside the folder."""
    check("i-odd-names", tmp_path)


def test_read_only_checkpoint_folder_exits_2_before_any_trial(tmp_path):
    """(i) A read-only bind mount, for hpo worker and hpo run."""
    check("i-read-only", tmp_path)


def test_full_checkpoint_disk_hands_trials_back(tmp_path):
    """(i) A 256 KiB tmpfs: trials handed back, none FAIL, no .partial file left."""
    check("i-full-disk", tmp_path)
