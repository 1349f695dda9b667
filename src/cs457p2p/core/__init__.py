"""The sans-I/O core: every rule of the protocol as pure code. Bytes and the time go in;
bytes, decisions and deadlines come out. Nothing here opens a socket, starts a thread or
a task, or reads a clock (import-linter's contracts in pyproject.toml hold it to that);
the transports in :mod:`cs457p2p.tracker` and :mod:`cs457p2p.client` only move bytes.

* :mod:`.decoder`: the restricted pickle decoder, the only reader of network bytes;
* :mod:`.wire`: every Part 1 message's bytes; :mod:`.requests` and :mod:`.answers`:
  the two sides' stream parsers;
* :mod:`.errors`: ``ProtocolError``, and beneath it ``RemoteProtocolError`` (the other
  side broke the protocol) and ``LocalProtocolError`` (a core object driven wrongly);
* :mod:`.database`: the items, stored shuffled, answers pre-encoded;
* :mod:`.connection_rules`: one TCP connection's rules (framing, budgets, timeouts)
  over a responder: :mod:`.tracker_responder` (the database's and the ring's answers)
  or :mod:`.peer_port` (a peer's state's); :mod:`.datagram_rules`: one UDP datagram's;
* :mod:`.ring`: the tracker's ring (Part 2); :mod:`.peer_state`: a peer's decisions
  and timers (:mod:`.peer_talk`: its REGISTERs and HELD reports);
* :mod:`.collection` and :mod:`.fetch`: the client's N slots and its session's
  decisions; :mod:`.reliability`: UDP attribution and retransmission timeouts;
* :mod:`.monitor`: what the tracker has seen, for the dashboard and the logs;
* :mod:`.faults`: injected faults, configured and decided;
* :mod:`.trace`: what ``--trace`` prints, each message as one line;
* :mod:`.addresses`: ``HOST:PORT`` as text; :mod:`.speedups`: the optional C loops.
"""
