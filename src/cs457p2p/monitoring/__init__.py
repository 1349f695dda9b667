"""Watching a tracker: structured logs and the tick that drives the sans-I/O
:mod:`cs457p2p.core.monitor` (:mod:`.reporting`), and the HTTP dashboard with
``/metrics`` (:mod:`.dashboard`, needs the ``dashboard`` extra; imported only by
``tracker --http``)."""
