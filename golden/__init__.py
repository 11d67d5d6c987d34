"""Bit-exact integer reference of the VQ4ALL accelerator and the artifact formats it reads."""
