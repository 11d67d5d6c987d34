"""The RTL in simulation: the Verilator toolchain and builds, the stream encoding of layer
programs, cocotb testbenches and a C++ harness, and the host loop that runs whole networks and
checks every layer output against golden and every layer's cycles against
:mod:`vq4all.sim.arch.cycles`."""
