# ruff: noqa: E501  (one program per line reads best)
"""Hostile programs for the sandbox: (name, program, expected statuses). `{canary}` is a file outside
the sandbox that no program may change; `{outside}` a folder outside it where none may write;
`{repo}` the checkout."""

from __future__ import annotations

HOSTILE: list[tuple[str, str, set[str]]] = [
    ("infinite loop", "while True:\n    pass", {"timeout"}),
    ("sleep forever", "import time\ntime.sleep(1000)", {"timeout"}),
    (
        "fork bomb",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        {"timeout", "error"},
    ),
    (
        "fork bomb in subprocesses",
        "import subprocess, sys\nwhile True:\n    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])",
        {"timeout", "error", "failed"},
    ),
    ("memory balloon", "x = []\nwhile True:\n    x.append(bytearray(50 << 20))", {"error"}),
    ("one huge allocation", "x = 'a' * (8 << 30)", {"error"}),
    (
        "deep recursion",
        "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1)\nf(0)",
        {"error", "failed", "timeout"},
    ),
    ("recursion error", "def f():\n    f()\nf()", {"failed"}),
    ("write outside", "open('{outside}/evil.txt', 'w').write('pwned')", {"failed"}),
    ("delete the canary", "import os\nos.remove('{canary}')", {"failed"}),
    ("overwrite the canary", "open('{canary}', 'w').write('pwned')", {"failed"}),
    ("chmod the canary", "import os\nos.chmod('{canary}', 0o777)", {"failed"}),
    ("symlink escape", "import os\nos.symlink('{outside}', 'link')\nopen('link/evil.txt', 'w').write('x')", {"failed"}),
    ("write to /tmp", "open('/tmp/evalkit-hostile.txt', 'w').write('x')", {"passed"}),
    ("write to /dev/shm", "open('/dev/shm/evalkit-hostile', 'w').write('x')", {"passed", "failed"}),
    ("read the home directory", "import os\nprint(os.listdir('/root'))", {"failed"}),
    ("read shadow", "print(open('/etc/shadow').read())", {"failed"}),
    ("rm -rf home", "import os\nassert os.system('rm -rf ~/ /root/* 2>/dev/null') is not None", {"passed", "failed"}),
    ("open a socket", "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)", {"failed"}),
    (
        "listen on a port",
        "import socket\ns = socket.socket()\ns.bind(('0.0.0.0', 8765))\ns.listen()\ns.accept()",
        {"failed", "timeout"},
    ),
    ("http request", "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)", {"failed"}),
    ("kill the parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", {"failed"}),
    ("kill everything", "import os, signal\nos.kill(-1, signal.SIGKILL)", {"passed", "error", "failed"}),
    ("kill pid 1", "import os, signal\nos.kill(1, signal.SIGKILL)", {"failed"}),
    ("sys.exit(0) before the tests", "import sys\nsys.exit(0)\nassert False", {"failed"}),
    ("os._exit(0) before the tests", "import os\nos._exit(0)\nassert False", {"failed"}),
    (
        "patched exit then exit",
        "import os, sys\nos._exit = lambda c: None\nos.write = lambda *a: 0\nsys.exit(0)",
        {"failed"},
    ),
    (
        "monkey-patched builtins",
        "import builtins\nbuiltins.AssertionError = type('Fake', (Exception,), {{}})\nbuiltins.print = None\nassert 1 == 2",
        {"failed"},
    ),
    (
        "deleted builtins",
        "import builtins\nfor k in list(vars(builtins)):\n    delattr(builtins, k)\nraise SystemExit(0)",
        {"failed", "error"},
    ),
    ("gigabytes of output", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", {"error", "failed"}),
    ("gigabytes to stderr", "import os\nwhile True:\n    os.write(2, b'y' * 65536)", {"error", "failed"}),
    ("write into the checkout", "open('{repo}/evil.txt', 'w').write('pwned')", {"failed"}),
    ("delete a file of the checkout", "import os\nos.remove('{repo}/pyproject.toml')", {"failed"}),
    (
        "huge file in its directory",
        "with open('big', 'wb') as f:\n    while True:\n        f.write(b'z' * (1 << 20))",
        {"error", "failed"},
    ),
    (
        "thread outlives the test",
        "import threading, time\nthreading.Thread(target=lambda: time.sleep(1000)).start()\nassert 1 + 1 == 2",
        {"passed"},
    ),
    (
        "daemonised child",
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\nassert True",
        {"passed"},
    ),
    (
        "background sleep",
        "import subprocess\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)\nassert True",
        {"passed"},
    ),
    ("segfault", "import ctypes\nctypes.string_at(0)", {"error"}),
    (
        "ignore the CPU limit signal",
        "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass",
        {"timeout"},
    ),
    ("raise the limits", "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))", {"failed"}),
    ("keyboard interrupt", "raise KeyboardInterrupt", {"failed"}),
    (
        "unicode garbage output",
        "import sys\nsys.stdout.buffer.write(bytes(range(256)) * 100)\nassert False, 'done'",
        {"failed"},
    ),
    # Reaching for the harness: its frames, descriptors, memory, files; each then fails its test.
    (
        "call the harness from the frame under the program",
        "import sys\nf = sys._getframe(1)\nf.f_locals['finish']('done ' + f.f_locals['req']['nonce'], 0)\nassert False",
        {"failed"},
    ),
    (
        "call the harness through a traceback",
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    e.__traceback__.tb_frame.f_back.f_locals['finish']('done', 0)\nassert False",
        {"failed"},
    ),
    (
        "exit 0 from __repr__ of a SystemExit argument",
        "import os\nclass E:\n    def __repr__(self):\n        os._exit(0)\n    __str__ = __repr__\nraise SystemExit(E())",
        {"failed"},
    ),
    (
        "report done on every descriptor",
        "import os\nfor fd in range(256):\n    try:\n        os.write(fd, b'done\\n')\n    except OSError:\n        pass\nos._exit(0)",
        {"failed"},
    ),
    ("kill itself", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", {"error"}),
    ("kill the fork server", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", {"failed"}),
    ("read the harness's environment", "import os\nprint(open('/proc/%d/environ' % os.getppid()).read())", {"failed"}),
    # Leaving things behind: links and FIFOs where output once was, setuid helpers, IPC, deep trees.
    (
        "plant links and FIFOs",
        "import os\nos.symlink('/etc/shadow', '.output')\nos.mkfifo('output')\nos.symlink('/proc/1/environ', 'stdout')",
        {"passed"},
    ),
    (
        "setuid helpers in new sessions",
        "import subprocess\nfor _ in range(8):\n    subprocess.Popen(['/usr/bin/su', '-c', 'sleep 1000', 'root'], start_new_session=True, stdin=subprocess.PIPE)\nassert True",
        {"passed", "failed"},
    ),
    (
        "System V and POSIX IPC left behind",
        "import ctypes\nlibc = ctypes.CDLL(None)\nfor key in range(4):\n    assert libc.shmget(0x4556 + key, 64 << 20, 0o1666) >= 0\n"
        "assert libc.msgget(0x4556, 0o1666) >= 0 and libc.semget(0x4556, 4, 0o1666) >= 0\n"
        "libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]\n"
        "assert libc.mq_open(b'/evalkit-hostile', 0o102, 0o666, None) >= 0",
        {"passed"},
    ),
    (
        "a tree deeper than the recursion limit",
        "import os\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')",
        {"passed"},
    ),
    (
        "a deep tree in the scratch folder",
        "import os\nos.chdir('/dev/shm')\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')",
        {"passed"},
    ),
]
