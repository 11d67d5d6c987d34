"""The accelerator on an FPGA: a pin-folding board wrapper and the open Yosys/nextpnr flow that
reports resources and Fmax (``vq4all synth``)."""
