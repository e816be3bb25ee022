"""The public fixture is loaded by the top-level conftest, as users load it."""
