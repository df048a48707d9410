"""Use cases between the entrypoints (API, CLI, console) and the workflows."""
