"""The ``wif`` command line for operators and developers."""
