"""Shared vocabulary at the bottom of the house: settings, table ids, partitioning and partition keys."""
