#!/usr/bin/python3
# boxvirt nested host: supervisord, woken by signals instead of its clock.
#
# supervisord's main loop sleeps in poll() for up to 1 s before it looks at
# anything: the programs start 1 s after supervisord does, a SIGTERM (docker
# stop) is acted on up to 1 s late, and a shutdown waits up to 1 s more for
# every program group that has already stopped (net-default) or has closed
# its pipes before it was reaped. Measured: up to 1 s added to every start
# and 1-3 s to most stops.
#
# This wrapper changes only the poll: signals (SIGTERM, SIGCHLD, ...) wake it
# through a self-pipe (signal.set_wakeup_fd), the very first poll does not
# wait, and during a shutdown it waits at most 50 ms. Everything else is the
# distribution's supervisord. If supervisor's internals ever differ from
# what is patched here, it runs unpatched (correct, only slower).
import os
import signal
import sys

SHUTDOWN_POLL = 0.05


def patch():
    from supervisor import poller
    from supervisor.states import SupervisorStates

    cls = poller.Poller
    original = cls.poll
    if not callable(original) or not hasattr(cls, "register_readable"):
        raise RuntimeError("unexpected supervisor poller")

    def wake_fd(self):
        fd = getattr(self, "_boxvirt_wake", None)
        if fd is not None:
            try:
                os.fstat(fd)
                return fd
            except OSError:  # closed by a reload's cleanup_fds()
                pass
        fd, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(write_end)
        self._boxvirt_wake = fd
        self._boxvirt_started = False
        return fd

    def poll(self, timeout):
        fd = wake_fd(self)
        self.register_readable(fd)
        if not self._boxvirt_started:
            self._boxvirt_started = True
            timeout = 0
        elif self.options.mood < SupervisorStates.RUNNING:
            timeout = min(timeout, SHUTDOWN_POLL)
        readable, writable = original(self, timeout)
        if fd in readable:
            readable = [r for r in readable if r != fd]
            try:
                while os.read(fd, 512):
                    pass
            except OSError:  # drained (EAGAIN)
                pass
        return readable, writable

    cls.poll = poll


def main():
    try:
        patch()
    except Exception as e:  # run as the distribution made it
        print("supervisord-fast: not patched (%s); plain supervisord" % e, file=sys.stderr)
    from supervisor.supervisord import main as supervisord_main

    supervisord_main()


if __name__ == "__main__":
    main()
