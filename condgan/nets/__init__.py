"""Plain nn.Modules with explicit keyword arguments; no global options are read here."""
