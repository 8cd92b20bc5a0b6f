"""The items nobody has labelled yet: which to label next (``select``), read from a pool (``pool``), and how much
more labelling buys (``forecast``); ``suggest`` puts them together for ``headstart suggest``."""
