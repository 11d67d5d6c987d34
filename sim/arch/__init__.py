"""The architecture model that the RTL runs and the energy model prices: how a layer program
maps onto the accelerator (:mod:`~vq4all.sim.arch.mapping`) and how many cycles it takes
(:mod:`~vq4all.sim.arch.cycles`). Pure Python: no torch, no cocotb."""
