"""The basics every layer uses: configuration, errors, atomic file I/O, locks, metrics, progress."""
