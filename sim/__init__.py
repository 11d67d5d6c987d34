"""Simulation: stream encoding of layer programs, cocotb testbenches on Verilator, cycle model."""
