"""The accelerator in Amaranth HDL: a codebook decode (ROM, or SRAM loaded per layer run) plus
a MAC array, its stream protocol and its Verilog. :mod:`~vq4all.hw.fpga` wraps it for a board
and runs the open synthesis flow. No torch and no cocotb here: only the file helpers of
:mod:`vq4all.golden.fileio` from the rest of the project.
"""
