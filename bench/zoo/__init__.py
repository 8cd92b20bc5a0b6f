"""The zoo: a wide benchmark of headstart's defaults on 15 small offline sets (``python -m bench.zoo``)."""
