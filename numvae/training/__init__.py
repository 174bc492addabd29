"""Training: the loop (``loop.fit``), the optimisers (``optim``: the textbook Adam and SGD;
``optim_fast``: the fast path of Adam, tested equal), learning-rate ``schedules``, and
``checkpoint`` files that resume a run exactly (their fields checked in
``checkpoint_fields``)."""
