"""Amaranth HDL of the VQ4ALL decode + MAC accelerator (no torch, no cocotb here)."""
