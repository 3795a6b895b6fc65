"""Comparing agents (``codegym compare``): presets and studies as YAML (`plan`), data specs (`data`),
resumable runs (`runner`), tables, plots and report.md (`report`); speed benchmarks in `benchmarks`."""
