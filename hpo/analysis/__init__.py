"""Playbook diagnostics: what the results of a study say, and how sure we can be."""
