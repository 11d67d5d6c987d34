"""The vq4all command line."""
