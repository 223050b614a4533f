//! Starter workspaces laid down by `statecraft lessons init` (being written).
