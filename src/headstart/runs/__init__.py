"""Run folders: writing and loading a fitted run, what an --out may replace, exports, trackers."""
