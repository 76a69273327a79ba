"""Dockerfile builds: the parser, the build context and the builder (through the engine)."""
