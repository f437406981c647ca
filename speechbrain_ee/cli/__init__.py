"""The ``sbee`` command line: one module per command (``sbee <command>``),
shared flags, argument types and error handling in :mod:`speechbrain_ee.cli.common`."""
