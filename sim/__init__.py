"""Simulation of the accelerator, in three parts that depend one way:

- :mod:`~vq4all.sim.arch`: how a layer maps onto the accelerator and the closed-form cycles it
  takes (pure Python, no torch): the one formula the RTL tests assert and the reports use;
- :mod:`~vq4all.sim.rtl`: the RTL in Verilator, driven by cocotb or a C++ harness, checked
  bit-exactly against golden and cycle-exactly against :mod:`~vq4all.sim.arch`;
- :mod:`~vq4all.sim.energy`: the analytic cycle/energy model of codebook and weight traffic,
  priced by Accelergy-style energy tables.
"""
