"""Built-in w2sbench plugins.

Each module is registered through the ``w2sbench`` entry-point group in pyproject.toml, exactly
like a third-party plugin; the core never imports these modules by name.
"""
