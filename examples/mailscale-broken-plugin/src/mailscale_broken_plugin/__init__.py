"""A deliberately broken mailscale transport plugin (see README.md)."""
