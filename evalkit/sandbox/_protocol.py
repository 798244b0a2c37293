"""What evalkit.sandbox and its workers agree on: the exit statuses of a program's process.

Imported both as ``evalkit.sandbox._protocol`` and, by the workers (plain ``python -I -S`` scripts
of this folder), as ``_protocol``. Nothing here is secret: a program that exits with
``EXIT_PASSED`` itself is marked passed (see docs/code.md, "What a program can still do").
"""

EXIT_PASSED = 80  # the tests ran to their end: set by the worker after the program's last line
EXIT_RAISED = 81  # the program raised; its traceback is the last thing in its output
EXIT_SYSTEM_EXIT = 82  # it raised SystemExit (sys.exit, exit(), quit()) before the end
EXIT_MEMORY = 83  # it raised MemoryError (the address-space limit)
EXIT_SET_UP = 84  # the worker could not set up the program's process (a sandbox failure)

OUTPUT_HEAD = 2000  # characters of output kept in ExecResult.output
OUTPUT_TAIL = 4000  # bytes read from the end of the output to find the exception line
