"""The search: ask/tell loop, executors (local and Ray), checkpoint, history, run directory and
ranking."""
