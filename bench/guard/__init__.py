"""The continuous guard's benchmark: false alarms per model-year and detection delays."""
