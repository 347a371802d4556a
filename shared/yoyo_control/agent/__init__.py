"""The VM agent: heartbeats, the idle backstop and the dead-man switch (DESIGN.md §3, stop path 2).

Run as ``python -m yoyo_control.agent --config FILE`` (``__main__``; systemd on a GPU VM,
a child of the VM's process group locally), composed by the VM's root (machine.py).
Modules: ``policy`` (the pure decision), ``loop`` (the thin I/O shell), ``config`` (every
configuration key), ``deadline`` (bounded reads), ``identity`` (the heartbeat's identity
token), ``preemption`` (the metadata server's preemption notice).
Invariant: nothing here imports ``local`` (the VM knows the local stack only as URLs and
files in its configuration).
"""
