"""The feature cache: frozen-backbone features computed once, content-addressed, kept on disk."""
