"""Plans: the diff between current and desired state, its guards, renderers and plan files."""
