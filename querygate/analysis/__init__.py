"""Pure query analysis: SQL + dialect + catalog snapshot -> report. No Django, no I/O."""
