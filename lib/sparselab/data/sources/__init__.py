"""Dataset sources; each module registers one or more builders with :func:`register_source`."""
