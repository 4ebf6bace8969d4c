"""Command-line interface: ``svdyn <command> ...`` (see ``main.py``)."""
