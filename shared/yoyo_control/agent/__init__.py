"""The VM agent: heartbeats, the idle backstop and the dead-man switch (DESIGN.md §3, stop path 2).

Run as ``python -m yoyo_control.agent --config FILE`` (systemd on a GPU VM; a child of the
VM's process group locally). ``policy`` is the pure decision, ``loop`` the thin I/O shell,
``config`` documents every configuration key.
"""
