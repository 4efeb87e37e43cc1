"""Strategies propose configurations; they never decide when a trial stops (that is the scheduler's job)."""
