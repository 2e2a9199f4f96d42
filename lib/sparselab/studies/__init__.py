"""Per-study orchestration: the steps a study's rules run, composed from the library's pieces."""
