"""`sigint_flag`: a Ctrl-C swallowed inside an object finalizer is still seen by the loop that checks the flag.

Each case runs in a fresh interpreter so the real SIGINT never reaches pytest itself.
"""

import subprocess
import sys
import textwrap

PRELUDE = textwrap.dedent("""
    import os, signal, threading, time
    from omni_rl.interrupts import sigint_flag

    class SlowFinalizer:  # Python runs pending signal handlers inside __del__ and ignores what they raise
        def __del__(self):
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                pass

    def press_ctrl_c_in(seconds):
        threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
""")


def _run(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], capture_output=True, text=True,
                          timeout=60)


def test_ctrl_c_lost_in_a_finalizer_is_seen_by_check():
    out = _run("""
        with sigint_flag() as flag:
            press_ctrl_c_in(0.3)
            obj = SlowFinalizer()
            del obj  # the KeyboardInterrupt is raised (and swallowed) in here
            print("after finalizer, pressed =", flag.pressed)
            try:
                flag.check()
                print("check did not raise")
            except KeyboardInterrupt:
                print("check raised KeyboardInterrupt")
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["after finalizer, pressed = True", "check raised KeyboardInterrupt"]
    assert "Exception ignored in" in out.stderr and "KeyboardInterrupt" in out.stderr  # it really was swallowed


def test_ctrl_c_outside_a_finalizer_raises_at_once_and_the_previous_handler_comes_back():
    out = _run("""
        def mine(signum, frame):
            print("previous handler called")
        signal.signal(signal.SIGINT, mine)
        with sigint_flag() as flag:
            press_ctrl_c_in(0.2)
            try:
                time.sleep(5)
                print("slept through")
            except KeyboardInterrupt:
                print("KeyboardInterrupt, pressed =", flag.pressed)
        print("restored:", signal.getsignal(signal.SIGINT) is mine)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["KeyboardInterrupt, pressed = True", "restored: True",
                                       "previous handler called"]


def test_flag_without_ctrl_c_does_not_raise():
    out = _run("""
        with sigint_flag() as flag:
            flag.check()
            print("pressed =", flag.pressed)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pressed = False"
